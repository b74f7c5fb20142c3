#!/usr/bin/env bash
# `make bench`: the benchmarks that hold kpibridge's speed and memory targets.
# Needs the private ClickHouse server (started here if it is not running).
#   BENCHTIME=3x make bench                   more iterations
#   KPIBRIDGE_BENCH_EVENTS=1000000 make bench  a smaller transform data set (default 10 M)
#   INGEST_RUNS=5 make bench                  runs of the end-to-end ingest benchmark (default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh

echo "== decoder and generator"
go test -run XXX -bench . -benchmem -benchtime "${BENCHTIME:-1s}" ./events/ ./generate/
echo "== scrape latency, 2,000 KPI series (target p99 <= 50 ms)"
go test -run XXX -bench Scrape -benchtime "${SCRAPES:-500x}" ./exporter/
echo "== full default catalog refresh over ${KPIBRIDGE_BENCH_EVENTS:-10000000} events (target <= 5 s)"
go test -run XXX -bench DefaultCatalogRefresh -benchtime 3x -timeout 60m ./transform/
echo "== backfill of 90 days of daily history over the same data set, as its own process (target <= 5 minutes, peak RSS reported)"
go test -run XXX -bench Backfill -benchtime 1x -timeout 60m ./transform/
echo "== identity update over the same data set: 20,000 new events of known customers"
go test -run XXX -bench IdentityUpdate -benchtime 3x -timeout 60m ./transform/
echo "== executive scorecard: 40 exec KPIs with a year of history, built, then served 500 times (target p99 <= 100 ms)"
go test -run XXX -bench Scorecard -benchtime 3x ./scorecard/
echo "== ingest hot spots: dedupe window, ClickHouse insert of one 50,000-row batch"
go test -run XXX -bench SeenSetAdd -benchmem ./ingest/
go test -run XXX -bench InsertEvents -benchtime 20x -benchmem ./ingest/
echo "== what kafka-go alone costs per message on the same stream (conn, consumer-group reader, reader + decode)"
go test -run XXX -bench KafkaClientFloor -benchtime 2x -timeout 30m ./internal/ingestbench/
echo "== ingest end to end: ~1 M generated events (1 % invalid, 5 % duplicates) in the embedded broker,"
echo "   consumed by 'kpibridge run --role ingest' at default settings (targets: >= 250k events/s, <= 2.5 CPU-µs/event, <= 300 MB RSS)"
go test -run XXX -bench IngestEndToEnd -benchtime 1x -count "${INGEST_RUNS:-3}" -timeout 60m ./internal/ingestbench/
