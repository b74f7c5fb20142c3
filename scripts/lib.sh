# Sourced by scripts/test.sh and scripts/bench.sh: start the private
# ClickHouse server unless one answers, stop it on exit if we started it,
# and point the tests at it.
started_clickhouse=""
stop_clickhouse() { [ -n "$started_clickhouse" ] && scripts/clickhouse.sh stop || true; }
trap stop_clickhouse EXIT
if ! scripts/clickhouse.sh status; then
	scripts/clickhouse.sh start
	started_clickhouse=1
fi
# KPIBRIDGE_TEST_CLICKHOUSE_DSN, and the TLS port, its CA and a user with a
# password for the tests of secured connections.
eval "$(scripts/clickhouse.sh env)"
