# Sourced by scripts/clickhouse.sh and scripts/cluster.sh, which run local
# servers: the ClickHouse server and users configuration both write, with
# what differs passed in, and how both stop a server. The sourcing script
# defines log.

# stop_pid PIDFILE PATTERN [WHAT] stops the process in PIDFILE (or, without
# one, the first whose command line matches PATTERN): SIGTERM, up to 30 s,
# then SIGKILL. Nothing running is not an error.
stop_pid() {
	local pidfile=$1 pattern=$2 what=${3:-} pid=""
	[ -f "$pidfile" ] && pid=$(cat "$pidfile")
	# One of this directory started without a pid file (or by an older script).
	[ -n "$pid" ] || pid=$(pgrep -f -- "$pattern" | head -n 1 || true)
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
	log "stopped${what:+ $what}"
}

# write_server_config DIR PORT HTTP_PORT CACHE_BYTES EXTRA_XML writes
# DIR/config.xml: loopback only, data, logs and users under DIR, and
# EXTRA_XML (TLS, or the cluster's remote_servers, ZooKeeper and macros).
write_server_config() {
	local d=$1 port=$2 http=$3 cache=$4 extra=$5
	mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/log" "$d/format_schemas"
	cat >"$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$d/log/clickhouse-server.log</log>
        <errorlog>$d/log/clickhouse-server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$port</tcp_port>
    <http_port>$http</http_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>$cache</uncompressed_cache_size>
    <mark_cache_size>$cache</mark_cache_size>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>$d/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <merge_tree>
        <parts_to_delay_insert>600</parts_to_delay_insert>
        <parts_to_throw_insert>1200</parts_to_throw_insert>
    </merge_tree>
$extra
</yandex>
EOF
}

# write_users_config DIR DEFAULT_PROFILE_XML EXTRA_PROFILES_XML EXTRA_USERS_XML
# writes DIR/users.xml: the user default without a password, from
# loopback only, with the settings DEFAULT_PROFILE_XML, and the extra
# profiles and users.
write_users_config() {
	local d=$1 settings=$2 profiles=$3 users=$4
	cat >"$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
$settings
        </default>
$profiles
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
$users
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
}
