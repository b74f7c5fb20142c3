#!/usr/bin/env bash
# `make demo`: runs what kpibridge has so far on embedded defaults — a private
# ClickHouse server, the embedded Kafka broker, the schema, and a generated
# stream of realistic events — then waits; Ctrl-C stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$root/bin/kpibridge
brokers=${KPIBRIDGE_DEMO_BROKERS:-127.0.0.1:9092}
mkdir -p .run

pids=()
ch_started=""
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$ch_started" ] && scripts/clickhouse.sh stop
	echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if ! scripts/clickhouse.sh status; then
	scripts/clickhouse.sh start
	ch_started=1
fi
dsn=$(scripts/clickhouse.sh dsn)

"$bin" broker --listen "$brokers" --data-dir .run/broker &
pids+=($!)
sleep 1

"$bin" migrate --clickhouse "$dsn"
"$bin" generate --brokers "$brokers" --seed 42 --customers "${DEMO_CUSTOMERS:-2000}" --days "${DEMO_DAYS:-30}" >.run/generate-summary.json
echo "generated: $(head -c 400 .run/generate-summary.json)…"

cat <<MSG

kpibridge demo is running:
  Kafka (embedded broker)  $brokers       try: kcat -b $brokers -L
  ClickHouse               $dsn           try: clickhouse-client --port ${CLICKHOUSE_PORT:-19000}
  event summary            .run/generate-summary.json
Ctrl-C stops everything this demo started.
MSG
wait
