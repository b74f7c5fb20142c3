#!/usr/bin/env bash
# `make chaos`: the fault suite's long form (internal/chaos). Each scenario
# streams ~220 k generated messages (1 % poison, 5 % duplicates) through
# the embedded broker, run as its own process, and ends by checking that
# nothing was lost or counted twice and that the KPIs equal those of an
# undisturbed run. The figures go to .run/chaos-report.md (docs/RELIABILITY.md
# records them). `make test` runs the short form.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .run
. scripts/lib.sh

report="$root/.run/chaos-report.md"
rm -f "$report"
KPIBRIDGE_CHAOS=long KPIBRIDGE_CHAOS_REPORT="$report" \
	go test -count=1 -v -run TestFaults -timeout 90m ./internal/chaos/ >"$root/.run/chaos.log" 2>&1 || rc=$?
grep -E '^\s+chaos_test.go:[0-9]+: (generated|undisturbed|kill|ClickHouse stopped|broker stopped|transform kill)' "$root/.run/chaos.log" || true
if [ -f "$report" ]; then
	echo "== figures (.run/chaos-report.md)"
	cat "$report"
fi
if [ "${rc:-0}" -ne 0 ]; then
	echo "chaos: FAILED; see .run/chaos.log" >&2
	grep -E -- '--- FAIL|chaos_test.go:[0-9]+: ' "$root/.run/chaos.log" | grep -v 'output (last' | head -40 >&2
	exit "$rc"
fi
echo "chaos: every scenario lost nothing and counted nothing twice"
