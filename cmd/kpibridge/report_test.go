package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/testenv"
)

func TestReportWritesOnePageAndRefusesBadInput(t *testing.T) {
	target, _ := testenv.MigratedClickHouse(t)
	env := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN}
	out := filepath.Join(t.TempDir(), "report.html")
	code, stdout, errOut := runCLI(t, env, "report", "--period", "month", "--out", out)
	if code != 0 || !strings.Contains(stdout, "wrote "+out) {
		t.Fatalf("exit %d: %s %s", code, stdout, errOut)
	}
	page, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(page), "No KPI history yet") || !strings.Contains(string(page), "Wins this month") {
		t.Errorf("report page (%v):\n%.400s", err, page)
	}
	future := time.Now().AddDate(0, 0, 3).Format("2006-01-02")
	if code, _, errOut := runCLI(t, env, "report", "--at", future, "--out", out); code != 1 || !strings.Contains(errOut, "is in the future") {
		t.Errorf("--at in the future: exit %d, %s", code, errOut)
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		if code, _, errOut := runCLI(t, env, "report", "--format", "pdf", "--out", out+".pdf"); code != 1 || !strings.Contains(errOut, "apt-get install chromium") {
			t.Errorf("pdf without chromium: exit %d, %s", code, errOut)
		}
	}
	if code, _, errOut := runCLI(t, env, "kpis", "backfill", "--from", "March 1"); code != 1 || !strings.Contains(errOut, "--from: want a date YYYY-MM-DD") {
		t.Errorf("backfill --from: exit %d, %s", code, errOut)
	}
}
