// Package chaos is kpibridge's fault suite: it streams generated events
// (1 % poison, 5 % duplicates) through the embedded broker, running as its
// own process, into ClickHouse with `kpibridge run` processes, disturbs
// them (kill -9 of ingest, ClickHouse stopped, the broker restarted, a
// second ingest process joining and leaving, the transform killed
// mid-update), and checks that nothing was lost or counted twice and that
// the KPIs equal those of an undisturbed run. `make test` runs a short
// form; `make chaos` the long one, whose figures docs/RELIABILITY.md
// records. The package holds only its test.
package chaos
