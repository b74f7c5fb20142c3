#!/usr/bin/env bash
# `make bench`: the benchmarks that hold kpibridge's speed and memory targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
go test -run XXX -bench . -benchmem -benchtime ${BENCHTIME:-1s} ./events/ ./generate/
