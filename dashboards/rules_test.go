package dashboards_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kpibridge/kpibridge/internal/testenv"
)

// tool returns the path of a Prometheus or Alertmanager command line tool;
// the test skips without it outside CI and fails without it in CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	testenv.Require(t, err == nil, name+" (on PATH)")
	return path
}

// run runs a tool in the package directory and fails the test with its
// output when it exits non-zero.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Prometheus loads the committed rule files: promtool accepts every
// expression, duration, label and annotation template in them.
func TestRulesPassPromtoolCheck(t *testing.T) {
	out := run(t, "promtool", "check", "rules", "rules.yaml", "alerts.yaml")
	for _, file := range []string{"rules.yaml", "alerts.yaml"} {
		if !strings.Contains(out, "Checking "+file+"\n  SUCCESS") {
			t.Errorf("promtool check rules did not report %s as a success:\n%s", file, out)
		}
	}
}

// The recording and alerting rules behave as documented on KPIs of the
// default catalog: testdata/rules_test.yaml and
// testdata/rules_regression_test.yaml are promtool unit tests with the
// series the exporter emits, the alerts expected and when, and their
// labels and annotations in full.
func TestRulesUnitTests(t *testing.T) {
	for _, file := range []string{
		"testdata/rules_test.yaml",            // off target, past warning, attainment, wins, stale, pipeline
		"testdata/rules_regression_test.yaml", // week over week, a week of history
	} {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "testdata/"), ".yaml"), func(t *testing.T) {
			run(t, "promtool", "test", "rules", file)
		})
	}
}
