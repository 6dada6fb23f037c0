#!/usr/bin/env python3
"""Helpers for bench/run, standard library only.

tokens SECRET COUNT PROJECTS USERS   print COUNT distinct HS256 tokens, one a line, for
                                     random (project, user) pairs that the seed created
breakdown FOLDED                     share of the service's CPU samples per part (JWT,
                                     database, Stripe client, logging, framework...) in
                                     perf's folded stacks, as bench/run --flamegraph saves
latency LOG                          the service's own latency percentiles from its
                                     log (bench/run --log), per second of the run and
                                     overall, to tell a cold start from a steady tail
probe                                until killed, every second: the CPU time a fixed
                                     loop takes, one figure (ms) a line; it tells a host
                                     that got slower mid-run from a slower service
speed IDLE RUN                       summary of two probe outputs: the run's median and
                                     slowest samples against the idle median
splice FILE PART                     put PART's text between FILE's two markers, keeping
                                     the hand-written analysis around them
webhooks SECRET COUNT PROJECT        print COUNT signed checkout.session.completed events
                                     for distinct new users of PROJECT, one a line:
                                     the Stripe-Signature header, a tab, the raw body
syscalls NAME FILE N [NAME FILE N]...  `strace -c` summaries, each over N requests, as
                                     one table of system calls per request, a column
                                     per NAME
"""
import base64
import collections
import hashlib
import hmac
import json
import pathlib
import random
import sys
import time


def webhooks(secret: str, count: int, project: int) -> None:
    """Signed as Stripe signs: HMAC-SHA256 over "{t}.{body}" with the whole whsec_ secret."""
    now = int(time.time())
    out = sys.stdout
    for n in range(count):
        event = {
            "id": f"evt_bench_{now}_{n}",
            "object": "event",
            "type": "checkout.session.completed",
            "created": now - 1,
            "livemode": False,
            "data": {"object": {
                "id": f"cs_test_bench_{n}",
                "object": "checkout.session",
                "client_reference_id": f"wh-user-{now}-{n}",
                "customer": f"cus_wh_{now}_{n}",
                "status": "complete",
                "metadata": {},
            }},
        }
        body = json.dumps(event, separators=(",", ":"))
        signature = hmac.new(secret.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
        out.write(f"t={now},v1={signature}\t{body}\n")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def project_id(n: int) -> str:
    # The same formula as the seed in bench/run.
    return f"00000000-0000-4000-8000-{n:012x}"


def tokens(secret: str, count: int, projects: int, users: int) -> None:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    pairs = random.sample(range(projects * users), count)
    out = []
    for pair in pairs:
        claims = {
            "sub": f"user-{pair % users + 1}",
            "project_id": project_id(pair // users + 1),
            "iat": now,
            "exp": now + 86400,
        }
        signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
        signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        out.append(f"{signing_input}.{b64(signature)}")
    print("\n".join(out))


# The first rule whose frames appear anywhere in a stack claims its sample, so a
# syscall made by the Stripe client counts as the Stripe client's.
PARTS = [
    ("JWT (jsonwebtoken)", ["jsonwebtoken::", "customer_portal::auth::"]),
    ("logging (tracing, fmt to stderr)", ["tracing_subscriber::", "tracing_core::", "tracing::span"]),
    ("metrics (prometheus-client)", ["prometheus_client::", "customer_portal::metrics"]),
    ("Stripe client (reqwest, hyper client)", ["reqwest::", "hyper_util::client", "hyper::client",
                                                "customer_portal::stripe::"]),
    ("database (sqlx)", ["sqlx_core::", "sqlx_postgres::", "customer_portal::lookup"]),
    ("key decryption (AES-GCM)", ["aes_gcm::", "customer_portal::secrets"]),
    ("framework (axum, hyper server, tower)", ["axum::", "hyper::", "tower::", "tower_http::"]),
    ("tokio scheduler, epoll, idle", ["tokio::"]),
]


def breakdown(path: str) -> None:
    shares = collections.Counter()
    in_kernel = collections.Counter()
    for line in open(path):
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        part = next((name for name, keys in PARTS if any(k in f for f in frames for k in keys)), "other")
        shares[part] += int(count)
        if "entry_SYSCALL_64_after_hwframe" in frames:
            in_kernel[part] += int(count)
    total = sum(shares.values())
    print("| part | share of service CPU | of which in system calls |")
    print("| --- | --- | --- |")
    for part, count in shares.most_common():
        print(f"| {part} | {100 * count / total:.1f}% | {100 * in_kernel[part] / total:.1f}% |")


def percentile(sorted_values: list, p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def latency(path: str) -> None:
    from datetime import datetime

    # Text log lines: `2026-11-29T23:41:07.123456Z  INFO request{...}: ... latency_ms=301.2`
    seconds = collections.defaultdict(list)
    first = None
    for line in open(path, errors="replace"):
        if "request finished" not in line or "/api/v1/payments/" not in line:
            continue
        at = datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()
        first = at if first is None else first
        seconds[int(at - first)].append(float(line.rsplit("latency_ms=", 1)[1].split()[0]))
    every = sorted(v for values in seconds.values() for v in values)
    if not every:
        sys.exit(f"{path}: no portal requests logged")
    print("| second | requests | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    for second in sorted(seconds):
        values = sorted(seconds[second])
        print(f"| {second} | {len(values)} | {percentile(values, 50):.1f} | {percentile(values, 99):.1f} | {values[-1]:.1f} |")
    steady = sorted(v for s, values in seconds.items() if s >= 2 for v in values)
    print(f"\nall: {len(every)} requests, p50 {percentile(every, 50):.1f} ms, p90 {percentile(every, 90):.1f} ms, "
          f"p99 {percentile(every, 99):.1f} ms, max {every[-1]:.1f} ms")
    if steady:
        print(f"from second 2 on: {len(steady)} requests, p50 {percentile(steady, 50):.1f} ms, "
              f"p99 {percentile(steady, 99):.1f} ms, max {steady[-1]:.1f} ms")


def probe() -> None:
    # CPU time, not wall time: waiting for a core under load does not count, so only a
    # slower core (frequency, a busy neighbour on the host) raises the figure.
    while True:
        started = time.thread_time()
        x = 0
        for i in range(200_000):
            x += i * i
        print(f"{(time.thread_time() - started) * 1000:.2f}", flush=True)
        time.sleep(1)


def speed(idle_path: str, run_path: str) -> None:
    def samples(path: str) -> list:
        return sorted(float(v) for v in open(path).read().split())

    idle, run = samples(idle_path), samples(run_path)
    if not idle or not run:
        print("not measured")
        return
    base = percentile(idle, 50)
    slow = sum(1 for v in run if v > 1.5 * base)
    print(f"{percentile(run, 50) / base:.2f}x idle at the median, {run[-1] / base:.2f}x at the slowest, "
          f"{slow} of {len(run)} samples over 1.5x")


BEGIN = "<!-- bench/run writes from here -->"
END = "<!-- bench/run writes up to here -->"


def splice(path: str, part: str) -> None:
    target = pathlib.Path(path)
    text = target.read_text() if target.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    target.write_text(f"{head}{BEGIN}\n{pathlib.Path(part).read_text().strip()}\n{END}{tail}")


def strace_counts(path: str) -> dict:
    """Calls per system call from `strace -c` output (the `calls` column)."""
    counts = {}
    for line in pathlib.Path(path).read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


def syscalls(*triples: str) -> None:
    names = triples[0::3]
    counts = [strace_counts(path) for path in triples[1::3]]
    requests = [max(int(n), 1) for n in triples[2::3]]
    per = [{call: n / r for call, n in c.items()} for c, r in zip(counts, requests)]
    calls = sorted(set().union(*per), key=lambda call: -per[-1].get(call, 0))
    print("| system call | " + " | ".join(f"{name} per request" for name in names) + " |")
    print("| --- |" + " --- |" * len(names))
    for call in calls:
        row = [p.get(call, 0) for p in per]
        if any(v >= 0.01 for v in row):
            print(f"| {call} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    print("| all | " + " | ".join(f"{sum(p.values()):.2f}" for p in per) + " |")


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "tokens" and len(args) == 4:
        tokens(args[0], *map(int, args[1:]))
    elif command == "breakdown" and len(args) == 1:
        breakdown(args[0])
    elif command == "latency" and len(args) == 1:
        latency(args[0])
    elif command == "probe" and not args:
        probe()
    elif command == "speed" and len(args) == 2:
        speed(*args)
    elif command == "splice" and len(args) == 2:
        splice(*args)
    elif command == "webhooks" and len(args) == 3:
        webhooks(args[0], int(args[1]), int(args[2]))
    elif command == "syscalls" and args and len(args) % 3 == 0:
        syscalls(*args)
    else:
        sys.exit(__doc__)
