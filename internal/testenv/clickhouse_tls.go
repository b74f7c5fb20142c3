package testenv

import (
	"os"
	"testing"
)

// The variables scripts/clickhouse.sh env sets for the tests of secured
// ClickHouse connections: the server's TLS native port and its CA, and a
// user with a password.
const (
	ClickHouseTLSAddrEnv      = "KPIBRIDGE_TEST_CLICKHOUSE_TLS_ADDR"
	ClickHouseTLSCAEnv        = "KPIBRIDGE_TEST_CLICKHOUSE_TLS_CA"
	ClickHouseUserEnv         = "KPIBRIDGE_TEST_CLICKHOUSE_USER"
	ClickHousePasswordFileEnv = "KPIBRIDGE_TEST_CLICKHOUSE_PASSWORD_FILE"
)

// ClickHouseTLS returns the test server's TLS native address (host:port)
// and the file of the CA that signed its certificate.
func ClickHouseTLS(t testing.TB) (addr, caFile string) {
	t.Helper()
	addr, caFile = os.Getenv(ClickHouseTLSAddrEnv), os.Getenv(ClickHouseTLSCAEnv)
	Require(t, addr != "" && caFile != "", ClickHouseTLSAddrEnv+" and "+ClickHouseTLSCAEnv+" (the ClickHouse server's TLS port)")
	return addr, caFile
}

// ClickHouseUser returns the test server's user with a password, and the
// file holding that password.
func ClickHouseUser(t testing.TB) (user, passwordFile string) {
	t.Helper()
	user, passwordFile = os.Getenv(ClickHouseUserEnv), os.Getenv(ClickHousePasswordFileEnv)
	Require(t, user != "" && passwordFile != "", ClickHouseUserEnv+" and "+ClickHousePasswordFileEnv+" (a ClickHouse user with a password)")
	return user, passwordFile
}
