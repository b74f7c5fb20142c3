package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// What the README says about ports and packages stays true.
func TestReadmeStatementsHold(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../../scripts/clickhouse.sh")
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := runCLI(t, nil, "demo", "--help")
	demoPort := regexp.MustCompile(`--clickhouse\.port=(\d+)`).FindStringSubmatch(out)
	testPort := regexp.MustCompile(`port=\$\{CLICKHOUSE_PORT:-(\d+)\}`).FindSubmatch(script)
	if demoPort == nil || testPort == nil {
		t.Fatalf("cannot find the ports (demo --help, scripts/clickhouse.sh)")
	}
	for _, want := range []string{"`make demo` on 127.0.0.1:" + demoPort[1], "`make test` on\n127.0.0.1:" + string(testPort[1])} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README does not say %q", want)
		}
	}
	// Every Debian package the install script installs is named in the README.
	deps, err := os.ReadFile("../../scripts/install-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"clickhouse-server": "ClickHouse server", "clickhouse-client": "client", "kcat": "kcat",
		"prometheus": "Prometheus", "prometheus-alertmanager": "Alertmanager", "chromium": "Chromium", "npm": "npm", "openssl": "openssl"}
	for _, m := range regexp.MustCompile(`need \S+ (\S+)`).FindAllStringSubmatch(string(deps), -1) {
		pkg := m[1]
		if pkg == "make" || pkg == "git" || pkg == "PACKAGE..." {
			continue
		}
		word, ok := names[pkg]
		if !ok {
			t.Errorf("install-deps.sh installs %s, which this test does not know: name it in the README and here", pkg)
			continue
		}
		if !strings.Contains(string(readme), word) {
			t.Errorf("README does not mention %s (package %s)", word, pkg)
		}
	}
}
