#!/usr/bin/env python3
"""Throughput of fixed operations against a running server, with the CPU
each request costs the server and the database.

Starts the release binary on DATABASE_URL (default: the local PostgreSQL
database `bench` over its Unix socket, which should hold the big seed; see
the README), signs in as the demo owner,
finds a shop, a barber and a service, then runs `wrk` against each
operation in turn and prints a Markdown table: requests per second, p50 and
p95 latency, and server, database and Redis CPU per request (from
/proc/PID/stat deltas of the server, of every `postgres` process and of
`redis-server` over the run).

    python3 bench/fixed_ops.py [--binary target/release/bookedbarber]
        [--database-url URL] [--redis-url URL] [--connections 64]
        [--threads 2] [--duration 10] [--only NAME ...]

Needs `wrk` (Debian: apt-get install wrk).
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")
PORT = 18_080

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
wrk.body = os.getenv("BENCH_BODY")
-- With a file of bodies (one a line), requests take them in turn (each
-- thread from the first; run one thread for each to be asked once).
local bodies = {}
local file = os.getenv("BENCH_BODIES")
if file and file ~= "" then
  for line in io.lines(file) do bodies[#bodies + 1] = line end
  local next = 0
  request = function()
    next = next % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[next])
  end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d p50=%.3f p95=%.3f errors=%d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


def cpu_ticks(pid):
    """utime + stime of one process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def postgres_ticks():
    """CPU of every postgres process now (backends come and go; the pool
    keeps the server's open, so the sum is fair over a run)."""
    return ticks_of("postgres")


def redis_ticks():
    """CPU of the local redis-server now (0 without one)."""
    return ticks_of("redis-server")


def ticks_of(command):
    """CPU of every process named `command` now."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != command:
                    continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += cpu_ticks(pid)
    return total


def graphql(query, variables=None, token=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if answer.get("errors"):
        sys.exit(f"setup query failed: {answer['errors']}")
    return answer["data"]


def wait_ready(server):
    for _ in range(600):
        if server.poll() is not None:
            sys.exit("the server exited; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("the server did not become ready")


def operations(token, client_token):
    """The fixed operations: (name, token or None, query, variables)."""
    me = graphql("{ viewer { memberships { shop { id } role } } }", token=token)
    shop = next(m["shop"]["id"] for m in me["viewer"]["memberships"] if m["role"] == "OWNER")
    page = graphql(
        "query($id: ID!) { node(id: $id) { ... on Shop { barbers(first: 10) { nodes { id services { id } } } } } }",
        {"id": shop},
    )
    barber = next(b for b in page["node"]["barbers"]["nodes"] if b["services"])
    day = datetime.date.today() + datetime.timedelta(days=2)
    while day.isoweekday() == 7:
        day += datetime.timedelta(days=1)
    month_ago = datetime.date.today() - datetime.timedelta(days=30)
    # A past working day (the seed's shops close on Sundays): its bookings
    # are done, and most of them paid.
    worked = datetime.date.today() - datetime.timedelta(days=7)
    while worked.isoweekday() == 7:
        worked -= datetime.timedelta(days=1)
    # Every barber's free slots on any of the next 60 days: mostly asked
    # for the first time, so computed, as browsing spread over many shops
    # and days is.
    everyone = graphql(
        "{ shops(first: 100) { nodes { barbers(first: 10) { nodes { id services { id } } } } } }"
    )
    spread = [
        {"b": b["id"], "s": b["services"][0]["id"],
         "d": (datetime.date.today() + datetime.timedelta(days=days)).isoformat()}
        for shop in everyone["shops"]["nodes"] for b in shop["barbers"]["nodes"] if b["services"]
        for days in range(1, 61)
    ]
    slots = "query($b: ID!, $s: ID!, $d: Date!) { availableSlots(barberId: $b, serviceId: $s, date: $d) { startsAt } }"
    return [
        ("typename-signed-in", token, "{ __typename }", {}),
        ("typename-anonymous", None, "{ __typename }", {}),
        (
            "bookings-page-50",
            token,
            "query($id: ID!) { node(id: $id) { ... on Barber { bookings(first: 50) { nodes { startsAt priceCents barber { displayName } client { name } service { name priceCents } } } } } }",
            {"id": barber["id"]},
        ),
        (
            "browse-anonymous",
            None,
            "{ shops(first: 20) { nodes { name barbers(first: 10) { nodes { displayName services { name priceCents } } } } } }",
            {},
        ),
        (
            "available-slots",
            None,
            "query($b: ID!, $s: ID!, $d: Date!) { availableSlots(barberId: $b, serviceId: $s, date: $d) { startsAt } }",
            {"b": barber["id"], "s": barber["services"][0]["id"], "d": day.isoformat()},
        ),
        ("available-slots-spread", None, slots, spread),
        (
            # The load test's `MyBookings`: a client's own bookings.
            "own-bookings",
            client_token,
            "query { bookings(status: CONFIRMED, first: 10) { totalCount nodes { id startsAt endsAt status paymentStatus shop { name } barber { id displayName } service { id name } } } }",
            {},
        ),
        (
            # The load test's `ShopDay`: the owner's bookings of one day.
            "shop-day",
            token,
            "query($s: ID!, $f: DateTime!, $t: DateTime!) { shop(id: $s) { bookings(from: $f, to: $t, first: 20) { totalCount nodes { id startsAt endsAt status paymentStatus priceCents client { name } barber { displayName } service { name } } } } }",
            {"s": shop, "f": f"{worked.isoformat()}T00:00:00Z", "t": f"{(worked + datetime.timedelta(days=1)).isoformat()}T00:00:00Z"},
        ),
        (
            "dashboard-30-days",
            token,
            "query($s: ID!, $f: Date!, $t: Date!) { analytics(shopId: $s, from: $f, to: $t) { bookingsCount completedCount revenueCents averageTicketCents noShowRate utilization repeatClientRate revenueByDay { date revenueCents } barberPerformance { bookingsCount utilization } topServices { revenueCents } peakHours { weekday hour bookingsCount } } }",
            {"s": shop, "f": month_ago.isoformat(), "t": datetime.date.today().isoformat()},
        ),
    ]


def run(args, server, script, name, token, query, variables):
    """Runs one operation; `variables` is a list for an operation asked with
    any of them, at random."""
    env = dict(os.environ, BENCH_TOKEN=token or "", BENCH_BODIES="")
    if isinstance(variables, list):
        graphql(query, variables[0], token)  # answers without errors
        with tempfile.NamedTemporaryFile("w", suffix=".bodies", delete=False) as f:
            for each in variables:
                f.write(json.dumps({"query": query, "variables": each}) + "\n")
        env["BENCH_BODIES"] = f.name
        env["BENCH_BODY"] = json.dumps({"query": query, "variables": variables[0]})
    else:
        graphql(query, variables, token)  # answers without errors
        env["BENCH_BODY"] = json.dumps({"query": query, "variables": variables})
    # Warm up: caches, pools, the page cache (not for a spread operation,
    # whose requests are each asked once).
    if not env["BENCH_BODIES"]:
        subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", script, f"http://127.0.0.1:{PORT}/graphql"],
                       env=env, capture_output=True, check=True)
    server_before, db_before, redis_before = cpu_ticks(server.pid), postgres_ticks(), redis_ticks()
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "-s", script,
         f"http://127.0.0.1:{PORT}/graphql"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    server_cpu = (cpu_ticks(server.pid) - server_before) / TICKS
    db_cpu = (postgres_ticks() - db_before) / TICKS
    redis_cpu = (redis_ticks() - redis_before) / TICKS
    line = next(l for l in out.splitlines() if l.startswith("BENCH "))
    values = dict(re.findall(r"(\w+)=([\d.]+)", line))
    requests = int(values["requests"])
    return {
        "name": name,
        "rps": requests / args.duration,
        "p50": float(values["p50"]),
        "p95": float(values["p95"]),
        "errors": int(values["errors"]),
        "server_ms": 1000 * server_cpu / max(requests, 1),
        "db_ms": 1000 * db_cpu / max(requests, 1),
        "redis_ms": 1000 * redis_cpu / max(requests, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/bookedbarber")
    parser.add_argument("--database-url",
                        default=os.environ.get(
                            "DATABASE_URL",
                            # Over the Unix socket, as a server on the
                            # database's machine connects (README, "Deployment").
                            "postgres:///bench?host=/var/run/postgresql&user=postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()

    env = dict(
        os.environ,
        DATABASE_URL=args.database_url,
        BIND_ADDR=f"127.0.0.1:{PORT}",
        JWT_SECRET="fixed-operations-benchmark-secret-0123456789",
        # Throughput, not the budget, is measured here.
        RATE_LIMIT_PER_MINUTE="1000000000",
        RATE_LIMIT_BURST="1000000000",
        DEMO_SEED="false",
    )
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    log = tempfile.NamedTemporaryFile(prefix="fixed-ops-server-", suffix=".log", delete=False)
    server = subprocess.Popen([args.binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(server)
        login = graphql(
            'mutation { login(email: "owner@demo.test", password: "bookedbarber") { token } }'
        )
        token = login["login"]["token"]
        # A client with a client's usual history (25 bookings, 6 to come, in
        # the big seed); client@demo.test has thousands.
        client = graphql(
            'mutation { login(email: "client10006@demo.test", password: "bookedbarber") { token } }'
        )
        client_token = client["login"]["token"]
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(LUA)
            script = f.name
        rows = [run(args, server, script, *op) for op in operations(token, client_token)
                if not args.only or op[0] in args.only]
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; server log: {log.name}")
    print("| operation | req/s | p50 ms | p95 ms | non-2xx | server CPU ms/req | PostgreSQL CPU ms/req | Redis CPU ms/req |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['name']} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['errors']} "
              f"| {r['server_ms']:.3f} | {r['db_ms']:.3f} | {r['redis_ms']:.3f} |")


if __name__ == "__main__":
    main()
