#!/usr/bin/env bash
# Installs, from Debian's packages, what kpibridge's tests and demo need and
# this machine lacks. Safe to run again: it only installs what is missing.
#
#   scripts/install-deps.sh            # everything
#   scripts/install-deps.sh clickhouse # only ClickHouse server and client
#   scripts/install-deps.sh openssl    # only openssl (the test server's certificates)
#   scripts/install-deps.sh zookeeper  # only ZooKeeper (the test cluster, scripts/cluster.sh)
set -euo pipefail

want=()
need() { # need COMMAND PACKAGE...
	local cmd=$1
	shift
	if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
		want+=("$@")
	fi
}

case "${1:-all}" in
npm)
	need npm npm
	;;
clickhouse)
	need clickhouse-server clickhouse-server
	need clickhouse-client clickhouse-client
	;;
openssl)
	need openssl openssl
	;;
zookeeper)
	# No command on PATH: Debian's package is a jar run by scripts/cluster.sh.
	[ -f /usr/share/java/zookeeper.jar ] || want+=(zookeeper)
	;;
all)
	need clickhouse-server clickhouse-server
	need clickhouse-client clickhouse-client
	need kcat kcat
	need openssl openssl
	need promtool prometheus
	need prometheus prometheus
	need amtool prometheus-alertmanager
	need prometheus-alertmanager prometheus-alertmanager
	need chromium chromium
	need make make
	need git git
	need npm npm
	;;
*)
	echo "usage: $0 [all|clickhouse|openssl|zookeeper|npm]" >&2
	exit 2
	;;
esac

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	echo "install-deps.sh: Go is missing; install Go 1.26 (see README)" >&2
	exit 1
fi

if [ ${#want[@]} -eq 0 ]; then
	exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo=sudo
fi
echo "install-deps.sh: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists: update once, then install.
if ! $sudo apt-get install -y --no-install-recommends "${want[@]}" >/dev/null 2>&1; then
	$sudo apt-get update -qq
	$sudo apt-get install -y --no-install-recommends "${want[@]}"
fi
