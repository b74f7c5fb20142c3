package main

import (
	"strings"
	"testing"

	"github.com/kpibridge/kpibridge/internal/testenv"
)

// A server without the database says to run migrate, for every command
// that reads it; not "does not answer".
func TestMissingDatabaseSaysRunMigrate(t *testing.T) {
	target, err := testenv.ClickHouse(t).WithDatabase("kpibridge_never_migrated")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"kpis", "query", "orders"}, {"customer", "C1"}} {
		code, _, errOut := runCLI(t, map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN}, args...)
		if code != 1 || !strings.Contains(errOut, "database kpibridge_never_migrated does not exist: run `kpibridge migrate`") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
}

// With no ClickHouse given anywhere, the error names the flag and the
// environment variable, not only the default it tried.
func TestNoClickHouseGivenNamesFlagAndEnv(t *testing.T) {
	code, _, errOut := runCLI(t, map[string]string{}, "kpis", "query", "orders")
	for _, want := range []string{"no ClickHouse was given", "--clickhouse", "KPIBRIDGE_CLICKHOUSE_DSN"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, %q lacks %q", code, errOut, want)
		}
	}
}
