package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// docker-compose.yml must load and validate against the Compose
// specification, with the secrets it needs supplied.
func TestComposeFileIsValid(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{filepath.Join("..", "..", "docker-compose.yml")},
		cli.WithEnv([]string{"CLICKHOUSE_PASSWORD=x", "KPIBRIDGE_EMAIL_HASH_KEY=0123456789abcdef"}),
		cli.WithName("kpibridge"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, svc := range []string{"kafka", "clickhouse", "migrate", "ingest", "kpis", "prometheus", "alertmanager", "grafana"} {
		if _, err := p.GetService(svc); err != nil {
			t.Errorf("service %s: %v", svc, err)
		}
	}
	kpis, _ := p.GetService("kpis")
	if got := kpis.Environment["KPIBRIDGE_CLICKHOUSE_DSN"]; got == nil || *got != "clickhouse://kpibridge:x@clickhouse:9000/kpibridge" {
		t.Errorf("kpis DSN = %v", got)
	}
	// Every file or folder mounted from the repository exists in it.
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	mounts := 0
	for _, svc := range p.Services {
		for _, v := range svc.Volumes {
			if v.Type != "bind" {
				continue
			}
			mounts++
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("service %s mounts %s from outside the repository", svc.Name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s, which is not in the repository: %v", svc.Name, rel, err)
			}
		}
	}
	if mounts < 6 {
		t.Errorf("%d files mounted from the repository, want the rules, alerts, alertmanager.yml and Grafana provisioning", mounts)
	}
	// The kpibridge services report healthy only when /-/ready does.
	for _, name := range []string{"ingest", "kpis"} {
		svc, _ := p.GetService(name)
		if svc.HealthCheck == nil || !strings.Contains(strings.Join(svc.HealthCheck.Test, " "), "/-/ready") {
			t.Errorf("service %s has no healthcheck on /-/ready: %+v", name, svc.HealthCheck)
		}
	}
	// Grafana gets the ClickHouse plugin the customer 360 needs.
	grafana, _ := p.GetService("grafana")
	if got := grafana.Environment["GF_INSTALL_PLUGINS"]; got == nil || !strings.Contains(*got, "grafana-clickhouse-datasource") {
		t.Errorf("grafana installs plugins %v, want grafana-clickhouse-datasource", got)
	}
}

// Without the secrets, loading fails and names what is missing.
func TestComposeFileRequiresSecrets(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{filepath.Join("..", "..", "docker-compose.yml")}, cli.WithEnv(nil), cli.WithName("kpibridge"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.LoadProject(context.Background()); err == nil {
		t.Fatal("loaded without CLICKHOUSE_PASSWORD and KPIBRIDGE_EMAIL_HASH_KEY")
	}
}
