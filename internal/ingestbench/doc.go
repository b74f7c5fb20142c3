// Package ingestbench holds the end-to-end ingest benchmark that `make bench`
// runs: about a million generated events (with invalid messages and re-sent
// duplicates) loaded into the embedded broker, then consumed by
// `kpibridge run --role ingest` as a separate process at default settings
// until everything is stored in ClickHouse. It reports events per second,
// CPU microseconds per event and the peak RSS of the ingest process.
//
// Run it with the ClickHouse test server (scripts/bench.sh does this):
//
//	KPIBRIDGE_TEST_CLICKHOUSE_DSN=clickhouse://127.0.0.1:19000/kpibridge \
//	  go test ./internal/ingestbench/ -run XXX -bench IngestEndToEnd -benchtime 1x -count 3
//
// KPIBRIDGE_BENCH_INGEST_BIN=path runs ingest with another build (the
// stream still comes from the current one), to compare before and after.
//
// BenchmarkIngestInProcess runs the same ingest code inside the test process,
// so that -cpuprofile and -memprofile profile the ingest hot path.
package ingestbench
