#!/usr/bin/env bash
# Runs a private ClickHouse cluster for the scale-out tests: Debian's
# zookeeper (standalone, as a plain java process) and four clickhouse-server
# processes on loopback ports, forming the cluster "kpibridge" of 2 shards ×
# 2 replicas (internal_replication, so a Distributed insert writes one replica
# and replication copies it). Config, data and logs live under one directory
# of the work tree; no root service is touched.
#
#   scripts/cluster.sh start          # installs what is missing, starts, waits until every node answers
#   scripts/cluster.sh stop           # stops the servers and ZooKeeper this script started
#   scripts/cluster.sh status         # exit 0 when ZooKeeper and every node answer
#   scripts/cluster.sh env            # prints the KPIBRIDGE_TEST_CLUSTER_* exports for tests
#   scripts/cluster.sh stop-node N    # stops node N (1-4) only, for failover tests
#   scripts/cluster.sh start-node N   # starts node N again
#
# Node N (1-4) is shard (N+1)/2, replica nN; its native port is
# CLUSTER_PORT_BASE+N (default 19101-19104), HTTP 18200+N, interserver
# 19200+N. ZooKeeper listens on CLUSTER_ZK_PORT (default 19181).
#
# Environment: CLUSTER_DIR (default .run/cluster), CLUSTER_PORT_BASE (19100),
# CLUSTER_HTTP_BASE (18200), CLUSTER_INTERSERVER_BASE (19200),
# CLUSTER_ZK_PORT (19181).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.run/cluster}
port_base=${CLUSTER_PORT_BASE:-19100}
http_base=${CLUSTER_HTTP_BASE:-18200}
interserver_base=${CLUSTER_INTERSERVER_BASE:-19200}
zk_port=${CLUSTER_ZK_PORT:-19181}
cluster=kpibridge
nodes="1 2 3 4"
zk=$dir/zookeeper

log() { echo "cluster.sh: $*" >&2; }

. "$root/scripts/local-servers.sh"

port() { echo $((port_base + $1)); }
shard() { echo $((($1 + 1) / 2)); }

client() { # client N ARGS...
	local n=$1
	shift
	clickhouse-client --host 127.0.0.1 --port "$(port "$n")" "$@"
}

node_answers() { client "$1" --query 'SELECT 1' >/dev/null 2>&1; }

# zk_answers asks ZooKeeper's four-letter "ruok" over bash's /dev/tcp.
zk_answers() {
	local reply
	reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zk_port && printf ruok >&3 && cat <&3" 2>/dev/null || true)
	[ "$reply" = imok ]
}

install() {
	if ! command -v clickhouse-server >/dev/null 2>&1 && [ ! -x /usr/sbin/clickhouse-server ]; then
		"$root/scripts/install-deps.sh" clickhouse
	fi
	if [ ! -f /usr/share/java/zookeeper.jar ]; then
		"$root/scripts/install-deps.sh" zookeeper
	fi
}

start_zookeeper() {
	if zk_answers; then
		return
	fi
	mkdir -p "$zk/data" "$zk/log"
	cat >"$zk/zoo.cfg" <<EOF
tickTime=2000
dataDir=$zk/data
clientPortAddress=127.0.0.1
clientPort=$zk_port
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,srvr,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
	log "starting ZooKeeper on 127.0.0.1:$zk_port (data in $zk)"
	# Debian's zookeeper.jar names its dependencies in its manifest; slf4j-simple
	# writes its log lines to stderr, which goes to the log file.
	(exec java -Xms32m -Xmx256m -XX:+UseSerialGC -Dzookeeper.jmx.log4j.disable=true \
		-cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
		-Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
		org.apache.zookeeper.server.ZooKeeperServerMain "$zk/zoo.cfg" \
		>"$zk/log/zookeeper.log" 2>&1) &
	echo $! >"$zk/zookeeper.pid"
	for _ in $(seq 1 60); do
		zk_answers && return
		sleep 0.5
	done
	log "ZooKeeper did not answer within 30 s; last log lines:"
	tail -n 30 "$zk/log/zookeeper.log" >&2 || true
	exit 1
}

remote_servers() {
	local s r
	echo "    <remote_servers>"
	echo "        <$cluster>"
	for s in 1 2; do
		echo "            <shard>"
		echo "                <internal_replication>true</internal_replication>"
		for r in 1 2; do
			echo "                <replica><host>127.0.0.1</host><port>$(port $(((s - 1) * 2 + r)))</port></replica>"
		done
		echo "            </shard>"
	done
	echo "        </$cluster>"
	echo "    </remote_servers>"
}

write_config() { # write_config N
	local n=$1 d=$dir/node$1
	write_server_config "$d" "$(port "$n")" $((http_base + n)) 33554432 "    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>$((interserver_base + n))</interserver_http_port>
$(remote_servers)
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zk_port</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <macros>
        <cluster>$cluster</cluster>
        <shard>$(shard "$n")</shard>
        <replica>n$n</replica>
    </macros>
    <distributed_ddl>
        <path>/clickhouse/$cluster/task_queue/ddl</path>
    </distributed_ddl>"
	write_users_config "$d" "            <max_memory_usage>2000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>in_order</load_balancing>
            <background_pool_size>4</background_pool_size>
            <background_schedule_pool_size>4</background_schedule_pool_size>
            <max_threads>2</max_threads>
            <distributed_ddl_task_timeout>60</distributed_ddl_task_timeout>" "        <!-- For the test of a node that does not answer an ON CLUSTER
             statement: clickhouse-go cannot set this signed setting on 18.16. -->
        <impatient>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>in_order</load_balancing>
            <distributed_ddl_task_timeout>5</distributed_ddl_task_timeout>
        </impatient>" "        <impatient>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>impatient</profile>
            <quota>default</quota>
        </impatient>"
}

start_node() { # start_node N: starts it without waiting
	local n=$1 d=$dir/node$1
	if node_answers "$n"; then
		return
	fi
	write_config "$n"
	(cd "$d" && exec /usr/sbin/clickhouse-server --config-file="$d/config.xml" >"$d/log/stdout.log" 2>&1) &
	echo $! >"$d/clickhouse.pid"
}

wait_node() { # wait_node N
	local n=$1 d=$dir/node$1
	for _ in $(seq 1 120); do
		node_answers "$n" && return
		sleep 0.5
	done
	log "node $n (127.0.0.1:$(port "$n")) did not answer within 60 s; last log lines:"
	tail -n 30 "$d/log/clickhouse-server.err.log" "$d/log/stdout.log" >&2 || true
	exit 1
}

stop_node() { stop_pid "$dir/node$1/clickhouse.pid" "--config-file=$dir/node$1/config.xml" "node $1"; }

start() {
	install
	local t0=$SECONDS n
	start_zookeeper
	for n in $nodes; do start_node "$n"; done
	for n in $nodes; do wait_node "$n"; done
	log "ready in $((SECONDS - t0)) s: cluster $cluster, 2 shards × 2 replicas on 127.0.0.1:$(port 1)-$(port 4), ZooKeeper 127.0.0.1:$zk_port, $(client 1 --query 'SELECT version()')"
}

stop() {
	local n
	for n in $nodes; do stop_node "$n"; done
	stop_pid "$zk/zookeeper.pid" "ZooKeeperServerMain $zk/zoo.cfg" ZooKeeper
}

status() {
	local n ok=0
	zk_answers || { log "ZooKeeper 127.0.0.1:$zk_port does not answer"; ok=1; }
	for n in $nodes; do
		node_answers "$n" || { log "node $n 127.0.0.1:$(port "$n") does not answer"; ok=1; }
	done
	return $ok
}

env() {
	local n addrs=""
	for n in $nodes; do addrs="$addrs${addrs:+,}127.0.0.1:$(port "$n")"; done
	echo "export KPIBRIDGE_TEST_CLUSTER_DSNS=$addrs"
	echo "export KPIBRIDGE_TEST_CLUSTER_NAME=$cluster"
	echo "export KPIBRIDGE_TEST_CLUSTER_CONTROL=$root/scripts/cluster.sh"
}

node_arg() {
	case "${1:-}" in
	1 | 2 | 3 | 4) ;;
	*)
		echo "usage: $0 start-node|stop-node 1-4" >&2
		exit 2
		;;
	esac
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env) env ;;
start-node)
	node_arg "${2:-}"
	start_node "$2"
	wait_node "$2"
	;;
stop-node)
	node_arg "${2:-}"
	stop_node "$2"
	;;
*)
	echo "usage: $0 start|stop|status|env|start-node N|stop-node N" >&2
	exit 2
	;;
esac
