#!/usr/bin/env bash
# The load test's `mixed` scenario against a release server on PostgreSQL and
# Redis, with the CPU the server, PostgreSQL and the load generator spent
# while the load ran (from /proc/PID/stat, preparation and the bookings check
# left out).
#
#   bench/mixed_cpu.sh USERS [REPORT_DIR]
#
# Environment: DATABASE_URL (default: the database bb_load over PostgreSQL's
# Unix socket, which should hold the big seed; see the README), REDIS_URL (default
# redis://127.0.0.1:6379), PORT (18300), SERVER_BINARY (the release build);
# anything else set is passed to the server (ACCESS_LOG=off, say). Build
# first: cargo build --release --workspace.
set -euo pipefail

users=${1:?usage: bench/mixed_cpu.sh USERS [REPORT_DIR]}
report=${2:-report-$users}
port=${PORT:-18300}
# The server runs on the database's machine, so it connects as such a
# deployment should: over the Unix socket, with no TCP and no TLS (README,
# "Deployment"). postgres://postgres@127.0.0.1:5432/bb_load measures TCP
# with TLS, as runs before 2026-12-01's sixth sitting did.
database=${DATABASE_URL:-postgres:///bb_load?host=/var/run/postgresql&user=postgres}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
cd "$(dirname "$0")/.."
mkdir -p "$report"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local total=0 pid
  for pid in $(pgrep postgres); do total=$((total + $(ticks "$pid"))); done
  echo "$total"
}

# The load test names its operations; each gets a metrics label of its own.
operations=ShopList,ShopPage,FreeSlots,Register,SignIn,CreateBooking,MyBookings,CancelBooking,RescheduleBooking,Dashboard,ShopDay,Schedule,RecordPayment,CompleteBooking
METRICS_OPERATIONS=${METRICS_OPERATIONS:-$operations} \
TRUST_PROXY=127.0.0.1 JWT_SECRET=loadtest LOG_FORMAT=json BIND_ADDR=127.0.0.1:$port \
  DATABASE_URL=$database REDIS_URL=$redis \
  "${SERVER_BINARY:-./target/release/bookedbarber}" >"$report/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 3

./target/release/bookedbarber-loadtest --target "http://127.0.0.1:$port" --scenario mixed \
  --users "$users" --ramp-up 30s --duration 60s --report-dir "$report" >"$report/loadtest.log" 2>&1 &
load=$!
until grep -q "load: starting" "$report/loadtest.log" || ! kill -0 $load 2>/dev/null; do sleep 0.2; done
s0=$(ticks $server); p0=$(pg_ticks); l0=$(ticks $load); t0=$(date +%s.%N)
curl -s "http://127.0.0.1:$port/metrics" >"$report/metrics-before.txt" || true
# The load generator's ticks are read while it runs too: it may have checked
# the bookings and exited by the time the loop sees "load: finished", and a
# process that is gone reads as 0.
l1=$l0
until grep -q "load: finished" "$report/loadtest.log" || ! kill -0 $load 2>/dev/null; do
  now=$(ticks $load); [ "$now" -gt 0 ] && l1=$now
  sleep 0.2
done
s1=$(ticks $server); p1=$(pg_ticks); t1=$(date +%s.%N)
curl -s "http://127.0.0.1:$port/metrics" >"$report/metrics-after.txt" || true
now=$(ticks $load); [ "$now" -gt 0 ] && l1=$now
status=0
wait $load || status=$?

hz=$(getconf CLK_TCK)
# Requests the server answered while the load ran, from the report's
# throughput table: the users' and the scraper's.
requests=$(awk -F'|' '($2 ~ /abuse/ && $3 ~ /^ *[0-9]+ *$/) || /all but the scraper/ { gsub(/[ *]/, "", $4); n += $4 } END { print n }' "$report/report.md")
awk -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v l=$((l1 - l0)) -v hz="$hz" -v n="$requests" \
  -v w="$(echo "$t1 - $t0" | bc)" 'BEGIN {
    printf "load %.0f s, %d requests: server %.1f s CPU (%.3f ms/request), PostgreSQL %.1f s (%.3f ms/request), load generator %.1f s\n",
      w, n, s / hz, 1000 * s / hz / n, p / hz, 1000 * p / hz / n, l / hz
  }' | tee "$report/cpu.txt"
# Where the server's time went, by operation.
python3 bench/busy_by_operation.py "$report/metrics-before.txt" "$report/metrics-after.txt" \
  | tee "$report/busy.md" || true
grep -E "^KPIs|bookings check" "$report/loadtest.log" || true
exit $status
