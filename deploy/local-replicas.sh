#!/usr/bin/env bash
# Three replicas of the API on one PostgreSQL and one Redis on this machine,
# and the load test's `mixed` scenario spread over them (each virtual user
# talks to one replica, in turn; the scraper spreads its requests over all
# three, as a load balancer would).
#
#   deploy/local-replicas.sh USERS [REPORT_DIR]
#
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/bb_load,
# which should hold the big seed; see the README), REDIS_URL (default
# redis://127.0.0.1:6379); anything else set is passed to the servers
# (ACCESS_LOG=off, say, or DATABASE_READ_URL for a read replica). Build
# first: cargo build --release --workspace.
set -euo pipefail

users=${1:?usage: deploy/local-replicas.sh USERS [REPORT_DIR]}
report=${2:-report-replicas-$users}
database=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bb_load}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
cd "$(dirname "$0")/.."
mkdir -p "$report"

pids=()
targets=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for n in 1 2 3; do
  port=$((18300 + n))
  TRUST_PROXY=127.0.0.1 JWT_SECRET=loadtest LOG_FORMAT=json BIND_ADDR=127.0.0.1:$port \
    DATABASE_URL=$database REDIS_URL=$redis RATE_LIMIT_REPLICAS=3 \
    ./target/release/bookedbarber >"$report/server-$n.log" 2>&1 &
  pids+=($!)
  targets+=("http://127.0.0.1:$port")
  # The first applies any migration before the others start.
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.5
  done
done

./target/release/bookedbarber-loadtest --target "$(IFS=,; echo "${targets[*]}")" \
  --scenario mixed --users "$users" --ramp-up 30s --duration 60s --report-dir "$report" \
  >"$report/loadtest.log" 2>&1
status=$?
# Each server's own counters (where its reads went, its limits), as they
# stood at the end.
for n in 1 2 3; do
  curl -fsS "http://127.0.0.1:$((18300 + n))/metrics" >"$report/metrics-$n.txt" 2>/dev/null || true
done
grep -E "KPI|bookings check|PASS|FAIL" "$report/report.md" | head -20 || true
exit $status
