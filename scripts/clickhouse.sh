#!/usr/bin/env bash
# Runs a private ClickHouse server for tests and the demo: loopback only, data,
# config and logs under one directory of the work tree, no root services touched.
#
#   scripts/clickhouse.sh start    # installs clickhouse-server if missing, starts, waits until it answers
#   scripts/clickhouse.sh stop     # stops the server this script started
#   scripts/clickhouse.sh status   # exit 0 when it answers
#   scripts/clickhouse.sh dsn      # prints the DSN to use
#   scripts/clickhouse.sh env      # prints the KPIBRIDGE_TEST_CLICKHOUSE_* exports for tests
#
# Besides the plain native port the server listens on a TLS native port
# (tcp_port_secure) with a certificate of a throwaway CA made here with
# openssl (under $CLICKHOUSE_DIR/tls), and has a second user,
# kpibridge_test, with a random password (in $CLICKHOUSE_DIR/tls), for the
# tests of secured connections.
#
# Environment: CLICKHOUSE_DIR (default .run/clickhouse), CLICKHOUSE_PORT (native
# protocol, default 19000), CLICKHOUSE_HTTP_PORT (default 18123),
# CLICKHOUSE_TLS_PORT (native protocol over TLS, default 19440).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLICKHOUSE_DIR:-$root/.run/clickhouse}
port=${CLICKHOUSE_PORT:-19000}
http_port=${CLICKHOUSE_HTTP_PORT:-18123}
tls_port=${CLICKHOUSE_TLS_PORT:-19440}
tls=$dir/tls
pidfile=$dir/clickhouse.pid

log() { echo "clickhouse.sh: $*" >&2; }

. "$root/scripts/local-servers.sh"

client() { clickhouse-client --host 127.0.0.1 --port "$port" "$@"; }

answers() { client --query 'SELECT 1' >/dev/null 2>&1; }

install() {
	if command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ]; then
		return
	fi
	log "installing clickhouse-server and clickhouse-client (Debian packages)"
	"$root/scripts/install-deps.sh" clickhouse
}

# write_tls makes, once, a CA, a server certificate it signs for 127.0.0.1
# and localhost, and the test user's password.
write_tls() {
	[ -s "$tls/server.pem" ] && [ -s "$tls/kpibridge_test.password" ] && return
	if ! command -v openssl >/dev/null 2>&1; then
		"$root/scripts/install-deps.sh" openssl
	fi
	mkdir -p "$tls"
	(
		cd "$tls"
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kpibridge test CA" -keyout ca.key -out ca.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile server.ext -out server.pem
		openssl rand -hex 16 >kpibridge_test.password
		chmod 600 ca.key server.key kpibridge_test.password
	) >"$dir/log/openssl.log" 2>&1 || {
		log "could not make the TLS certificates; see $dir/log/openssl.log"
		exit 1
	}
}

write_config() {
	mkdir -p "$dir/log"
	write_tls
	write_server_config "$dir" "$port" "$http_port" 268435456 "    <tcp_port_secure>$tls_port</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>$tls/server.pem</certificateFile>
            <privateKeyFile>$tls/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>"
	write_users_config "$dir" "            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>" "" "        <kpibridge_test>
            <password>$(cat "$tls/kpibridge_test.password")</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </kpibridge_test>"
}

start() {
	install
	if answers; then
		log "already answering on 127.0.0.1:$port"
		return
	fi
	write_config
	log "starting on 127.0.0.1:$port (data in $dir)"
	# clickhouse-server refuses to run as root over files of another owner; all files are ours.
	(cd "$dir" && exec /usr/sbin/clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1) &
	echo $! >"$pidfile"
	for _ in $(seq 1 120); do
		if answers; then
			log "ready: $(client --query 'SELECT version()')"
			return
		fi
		sleep 0.5
	done
	log "did not answer within 60 s; last log lines:"
	tail -n 30 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 || true
	exit 1
}

stop() { stop_pid "$pidfile" "--config-file=$dir/config.xml"; }

case "${1:-}" in
start) start ;;
stop) stop ;;
status) answers ;;
dsn) echo "clickhouse://127.0.0.1:$port/kpibridge" ;;
env)
	echo "export KPIBRIDGE_TEST_CLICKHOUSE_DSN=clickhouse://127.0.0.1:$port/kpibridge"
	echo "export KPIBRIDGE_TEST_CLICKHOUSE_TLS_ADDR=127.0.0.1:$tls_port"
	echo "export KPIBRIDGE_TEST_CLICKHOUSE_TLS_CA=$tls/ca.pem"
	echo "export KPIBRIDGE_TEST_CLICKHOUSE_USER=kpibridge_test"
	echo "export KPIBRIDGE_TEST_CLICKHOUSE_PASSWORD_FILE=$tls/kpibridge_test.password"
	;;
*)
	echo "usage: $0 start|stop|status|dsn|env" >&2
	exit 2
	;;
esac
