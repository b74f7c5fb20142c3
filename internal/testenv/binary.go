package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds the kpibridge command once per test process, for tests and
// benchmarks that run it as its own process (to kill it, or to measure its
// memory). KPIBRIDGE_BENCH_BIN names a binary built already.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if binPath = os.Getenv("KPIBRIDGE_BENCH_BIN"); binPath != "" {
			return
		}
		dir, err := os.MkdirTemp("", "kpibridge-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "kpibridge")
		if out, err := exec.Command("go", "build", "-o", binPath, "github.com/kpibridge/kpibridge/cmd/kpibridge").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
