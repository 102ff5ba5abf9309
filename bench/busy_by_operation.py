#!/usr/bin/env python3
"""Where the server's time went between two scrapes of its /metrics: the
time each GraphQL operation kept a worker thread busy (computed or served
kept), and password hashing on the blocking pool.

    python3 bench/busy_by_operation.py BEFORE.txt AFTER.txt

Operations are labelled by name when the server was told the names
(`METRICS_OPERATIONS`); see bench/mixed_cpu.sh.
"""

import re
import sys

SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})?\s+([0-9.eE+-]+)$")


def parse(path):
    values = {}
    with open(path) as f:
        for line in f:
            match = SAMPLE.match(line.strip())
            if not match:
                continue
            name, labels, value = match.groups()
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels or "")))
            values[(name, labels)] = float(value)
    return values


def main():
    before, after = parse(sys.argv[1]), parse(sys.argv[2])

    def delta(key):
        return after.get(key, 0.0) - before.get(key, 0.0)

    rows = []
    for (name, labels) in after:
        if name != "bookedbarber_graphql_busy_seconds_count":
            continue
        count = delta((name, labels))
        if count <= 0:
            continue
        busy = delta(("bookedbarber_graphql_busy_seconds_sum", labels))
        tags = dict(labels)
        rows.append((tags.get("operation", "?"), tags.get("answer", "?"), count, busy))
    hashes = delta(("bookedbarber_password_hashes_total", ()))
    hashing = delta(("bookedbarber_password_hashing_microseconds_total", ())) / 1e6
    total = sum(row[3] for row in rows) + hashing
    requests = sum(row[2] for row in rows)
    print("| operation | answer | requests | busy ms/request | busy s | share |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for operation, answer, count, busy in sorted(rows, key=lambda row: -row[3]):
        print(f"| {operation} | {answer} | {count:,.0f} | {1000 * busy / count:.3f} "
              f"| {busy:.1f} | {100 * busy / max(total, 1e-9):.1f} % |")
    if hashes:
        print(f"| password hashing (CPU, blocking pool) | | {hashes:,.0f} hashes | "
              f"{1000 * hashing / hashes:.1f} a hash | {hashing:.1f} | "
              f"{100 * hashing / max(total, 1e-9):.1f} % |")
    print(f"| **all** | | {requests:,.0f} | {1000 * total / max(requests, 1):.3f} | {total:.1f} | |")


if __name__ == "__main__":
    main()
