package deploy_test

import (
	"context"
	"path/filepath"
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
	for _, svc := range []string{"kafka", "clickhouse", "migrate", "ingest", "kpis", "prometheus"} {
		if _, err := p.GetService(svc); err != nil {
			t.Errorf("service %s: %v", svc, err)
		}
	}
	kpis, _ := p.GetService("kpis")
	if got := kpis.Environment["KPIBRIDGE_CLICKHOUSE_DSN"]; got == nil || *got != "clickhouse://kpibridge:x@clickhouse:9000/kpibridge" {
		t.Errorf("kpis DSN = %v", got)
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
