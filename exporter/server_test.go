package exporter_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/kpibridge/kpibridge/exporter"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// --web.config.file turns on basic auth (and TLS) through exporter-toolkit.
func TestWebConfigFileEnablesBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfgFile, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	flags := testenv.WebFlags(addr)
	flags.WebConfigFile = &cfgFile
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := exporter.NewHandler(exporter.HandlerOptions{Gatherer: prometheus.NewRegistry(), Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exporter.Serve(ctx, h, flags, logger) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	get := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	deadline := time.Now().Add(10 * time.Second)
	for get("prometheus", "s3cret") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if code := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
	if code := get("prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code := get("prometheus", "s3cret"); code != http.StatusOK {
		t.Errorf("right password: %d, want 200", code)
	}
}
