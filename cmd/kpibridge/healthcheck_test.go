package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthcheckFollowsReady(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "kpibridge is not ready: no KPI snapshot yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("kpibridge is ready.\n"))
	}))
	defer srv.Close()
	code, _, errOut := runCLI(t, nil, "healthcheck", "--url", srv.URL+"/-/ready")
	if code != 1 || !strings.Contains(errOut, "503 Service Unavailable: kpibridge is not ready: no KPI snapshot yet") {
		t.Errorf("not ready: exit %d, %q", code, errOut)
	}
	ready.Store(true)
	if code, out, errOut := runCLI(t, nil, "healthcheck", "--url", srv.URL+"/-/ready"); code != 0 || !strings.Contains(out, "kpibridge is ready.") {
		t.Errorf("ready: exit %d, %q %q", code, out, errOut)
	}
	srv.Close()
	if code, _, errOut := runCLI(t, nil, "healthcheck", "--url", srv.URL+"/-/ready"); code != 1 || !strings.Contains(errOut, "does not answer") {
		t.Errorf("down: exit %d, %q", code, errOut)
	}
}
