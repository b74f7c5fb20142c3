#!/usr/bin/env bash
# Installs chDB (current ClickHouse as a library, from the npm package
# @chdb/lib-linux-x64-gnu pinned in tools/chdb/package.json) under .run/chdb
# and prints the path of libchdb.so, for the conformance test:
#
#   CHDB_LIB_PATH=$(scripts/chdb.sh) go test -tags chdb ./store/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CHDB_DIR:-$root/.run/chdb}
lib=$dir/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so
mkdir -p "$dir"
if [ ! -f "$lib" ] || ! cmp -s "$root/tools/chdb/package.json" "$dir/package.json"; then
	if ! command -v npm >/dev/null 2>&1; then
		"$root/scripts/install-deps.sh" npm >&2
	fi
	cp "$root/tools/chdb/package.json" "$dir/package.json"
	[ -f "$root/tools/chdb/package-lock.json" ] && cp "$root/tools/chdb/package-lock.json" "$dir/"
	echo "chdb.sh: installing $(grep -o '"@chdb/[^"]*": "[^"]*"' "$dir/package.json") into $dir" >&2
	(cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
fi
echo "$lib"
