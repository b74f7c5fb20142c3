// Package testenv gives integration tests the real components the test script
// started: a ClickHouse server (KPIBRIDGE_TEST_CLICKHOUSE_DSN), in process an
// embedded Kafka-protocol broker, and Debian's Prometheus started per test.
// Outside CI a test whose component is not configured skips with a message
// saying how to run it; in CI (CI=true) it fails.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/store"
)

// ClickHouseEnv names the variable that points integration tests at ClickHouse.
const ClickHouseEnv = "KPIBRIDGE_TEST_CLICKHOUSE_DSN"

// Require skips the test, or fails it in CI, when what it needs is missing.
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI but missing; run the tests with `make test`", what)
	}
	t.Skipf("SKIP: %s is missing; run `make test`, which starts it", what)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// ClickHouse returns a Target for a fresh, empty database of its own on the
// test server; the database is dropped when the test ends.
func ClickHouse(t testing.TB) store.Target {
	t.Helper()
	dsn := os.Getenv(ClickHouseEnv)
	Require(t, dsn != "", ClickHouseEnv+" (a ClickHouse server)")
	base, err := store.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("%s: %v", ClickHouseEnv, err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	target, err := base.WithDatabase("test_" + name + "_" + hex.EncodeToString(b[:]))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.CreateDatabase(ctx, target); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if os.Getenv("KPIBRIDGE_TEST_KEEP_DB") != "" {
			t.Logf("kept database %s", target.Database)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := store.DropDatabase(ctx, target); err != nil {
			t.Logf("drop test database: %v", err)
		}
	})
	return target
}

// MigratedClickHouse is ClickHouse with the schema applied and an open
// connection, closed when the test ends.
func MigratedClickHouse(t testing.TB) (store.Target, store.Conn) {
	t.Helper()
	target := ClickHouse(t)
	ctx := context.Background()
	if _, err := store.Migrate(ctx, target, nil); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return target, conn
}
