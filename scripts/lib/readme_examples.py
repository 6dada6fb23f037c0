#!/usr/bin/env python3
"""Runs the README's curl examples against a running service and compares each answer
with the `# {...}` line the README shows under it (`...` matches anything).

Only the ```sh blocks that call the API at http://127.0.0.1:8080/api/ are run, top to
bottom, in one environment: `NAME=$(command)` lines are run and set NAME for the lines
after them (so `TOKEN=$(scripts/dev token)` works in a checkout), curl commands are run
with http://127.0.0.1:8080 replaced by --base. Anything else in such a block is an error,
and so is a curl without an expected answer under it.

Usage: readme_examples.py --readme README.md --base http://127.0.0.1:PORT --cwd DIR
                          [--require TEXT]...   (TEXT must be in some command that ran)
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

README_BASE = "http://127.0.0.1:8080"
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=\$\((.*)\)(?:\s+#.*)?$", re.S)


def sh_blocks(text):
    block, lang = None, None
    for line in text.splitlines():
        if block is None:
            m = re.match(r"^```(\w*)\s*$", line)
            if m:
                block, lang = [], m.group(1)
        elif line.startswith("```"):
            if lang in ("sh", "bash", "console", "shell"):
                yield block
            block = None
        else:
            block.append(line)


def complete(statement):
    if statement.endswith("\\"):
        return False
    try:
        shlex.split(statement, comments=True)
    except ValueError:
        return False
    return True


def statements(block):
    """(statement, expected answer or None) pairs of one block."""
    result, current = [], None
    for line in block:
        if current is not None:
            current += "\n" + line
            if complete(current):
                result.append([current, None])
                current = None
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            comment = stripped[1:].strip()
            if result and result[-1][1] is None and result[-1][0].lstrip().startswith("curl") \
                    and comment.startswith(("{", "[")):
                result[-1][1] = comment
            continue
        if complete(line):
            result.append([line, None])
        else:
            current = line
    if current is not None:
        raise SystemExit(f"README: an unfinished command: {current!r}")
    return result


def matches(expected, actual):
    pattern = ".*?".join(re.escape(part) for part in re.split(r"\.\.\.|…", expected))
    return re.fullmatch(pattern, actual, re.S) is not None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--readme", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--require", action="append", default=[])
    args = parser.parse_args()
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    env = dict(os.environ)
    ran, failures = [], 0
    for block in sh_blocks(text):
        if README_BASE + "/api/" not in "\n".join(block):
            continue
        for statement, expected in statements(block):
            command = statement.replace(README_BASE, args.base)
            first = statement.splitlines()[0].strip()
            assignment = ASSIGNMENT.match(statement.strip())
            if assignment:
                name, inner = assignment.groups()
                out = subprocess.run(["bash", "-c", inner], cwd=args.cwd, env=env, capture_output=True,
                                     text=True, timeout=300)
                if out.returncode != 0 or not out.stdout.strip():
                    print(f"FAIL {first}\n     exit {out.returncode}: {out.stderr.strip()[-500:]}")
                    failures += 1
                    continue
                env[name] = out.stdout.strip()
                print(f"ok   {first}")
            elif statement.lstrip().startswith("curl"):
                out = subprocess.run(["bash", "-c", command], cwd=args.cwd, env=env, capture_output=True,
                                     text=True, timeout=60)
                actual = out.stdout.strip()
                if expected is None:
                    print(f"FAIL {first}\n     README shows no answer (a `# {{...}}` line) under it")
                    failures += 1
                elif out.returncode != 0 or not matches(expected, actual):
                    print(f"FAIL {first}\n     expected {expected}\n     got      {actual} (curl exit {out.returncode})")
                    failures += 1
                else:
                    print(f"ok   {first}\n     -> {actual}")
            else:
                print(f"FAIL {first}\n     not a curl nor NAME=$(...): the check cannot run it")
                failures += 1
                continue
            ran.append(statement)
    for text_required in args.require:
        if not any(text_required in statement for statement in ran):
            print(f"FAIL no README example that ran contains {text_required!r}")
            failures += 1
    print(f"README examples: {len(ran)} ran, {failures} failed")
    return 1 if failures or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
