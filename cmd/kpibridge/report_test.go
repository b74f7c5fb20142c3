package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/transform"
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

// A baseline set from the history is kept with who set it and what it
// replaced; an unknown KPI or a day without history writes nothing.
func TestBaselineSetIsAudited(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	env := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN, "USER": "cfo"}
	for i, v := range []float64{900, 950} {
		day := time.Date(2026, 3, 1+i, 12, 0, 0, 0, time.UTC)
		if err := transform.WriteResult(t.Context(), conn, transform.Result{KPI: "orders", ComputedAt: day, Window: "30d",
			Series: []transform.Series{{Result: v}}}); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := runCLI(t, env, "kpis", "baseline", "set", "orders", "--at", "2026-03-01"); code != 0 || !strings.Contains(out, "baseline of orders set to 900 (its value on 2026-03-01) by cfo; it was none") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, env, "kpis", "baseline", "set", "orders", "--at", "2026-03-05", "--by", "ceo"); code != 0 || !strings.Contains(out, "set to 950 (its value on 2026-03-05) by ceo; it was 900") {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"kpis", "baseline", "set", "nosuch", "--at", "2026-03-01"}, `no KPI named "nosuch"`},
		{[]string{"kpis", "baseline", "set", "orders", "--at", "2025-01-01"}, "no KPI history for orders on or before 2025-01-01"},
	} {
		if code, _, errOut := runCLI(t, env, bad.args...); code != 1 || !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: exit %d, %s", bad.args, code, errOut)
		}
	}
	code, out, _ := runCLI(t, env, "kpis", "baseline", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[1], "cfo") || !strings.Contains(lines[2], "ceo") || !strings.HasSuffix(strings.TrimSpace(lines[2]), "900") {
		t.Errorf("baseline list (exit %d):\n%s", code, out)
	}
}
