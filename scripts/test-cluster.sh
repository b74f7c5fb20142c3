#!/usr/bin/env bash
# `make test-cluster`: the ClickHouse cluster tests (internal/clustertest,
# and the golden KPI test of transform as TestGoldenOnCluster; build tag
# "cluster") against the test cluster of scripts/cluster.sh
# (ZooKeeper and 2 shards × 2 replicas on loopback ports), started here
# unless it answers and then stopped on exit. The log is .run/test-cluster.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .run

started=""
stop_cluster() { [ -n "$started" ] && scripts/cluster.sh stop || true; }
trap stop_cluster EXIT
if ! scripts/cluster.sh status 2>/dev/null; then
	t0=$SECONDS
	scripts/cluster.sh start
	started=1
	echo "== cluster started in $((SECONDS - t0)) s"
fi
eval "$(scripts/cluster.sh env)"
export KPIBRIDGE_TEST_CLUSTER_REQUIRED=1

echo "== go vet -tags cluster"
go vet -tags cluster ./internal/clustertest/ ./transform/

echo "== go test -tags cluster (cluster $KPIBRIDGE_TEST_CLUSTER_NAME at $KPIBRIDGE_TEST_CLUSTER_DSNS)"
log=.run/test-cluster.log
rc=0
{ go test -tags cluster -count=1 -v -timeout 20m ./internal/clustertest/ &&
	go test -tags cluster -count=1 -v -timeout 10m -run OnCluster ./transform/; } >"$log" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then
	grep -E '^(ok|FAIL)\s|^\s*--- (PASS|SKIP)|took|retried|down:' "$log" || true
else
	grep -vE '^\s*(=== (RUN|PAUSE|CONT|NAME))' "$log" || true
fi
echo "full log: $log"
exit "$rc"
