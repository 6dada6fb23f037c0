#!/usr/bin/env python3
"""Helpers for bench/run, standard library only.

tokens SECRET COUNT PROJECTS USERS   print COUNT distinct HS256 tokens, one a line, for
                                     random (project, user) pairs that the seed created
wait-ready URL TIMEOUT_S             poll URL every millisecond until it answers 200;
                                     print the wall clock then, in nanoseconds
splice FILE PART                     put PART's text between FILE's two markers, keeping
                                     the hand-written analysis around them
"""
import base64
import hashlib
import hmac
import json
import pathlib
import random
import sys
import time
import urllib.error
import urllib.request


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


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    print(time.time_ns())
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.001)
    sys.exit(f"error: {url} did not answer 200 within {timeout_s}s")


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


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "tokens" and len(args) == 4:
        tokens(args[0], *map(int, args[1:]))
    elif command == "wait-ready" and len(args) == 2:
        wait_ready(args[0], float(args[1]))
    elif command == "splice" and len(args) == 2:
        splice(*args)
    else:
        sys.exit(__doc__)
