package chserver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/testenv"
)

// The server listens on the one port it is given. It used to open HTTP on
// the next port as well, so a private server (the demo's, the chaos suite's)
// failed to start whenever any other process held that port.
func TestStartUsesOnlyItsPort(t *testing.T) {
	testenv.Require(t, testenv.FileExists(Binary), "clickhouse-server")
	var (
		l    net.Listener
		port int
	)
	// A free port whose next port is free too, then hold the next one.
	for range 50 {
		port = testenv.FreePort(t)
		var err error
		if l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1))); err == nil {
			break
		}
	}
	if l == nil {
		t.Fatal("found no free pair of ports")
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Start(ctx, t.TempDir(), port)
	if err != nil {
		t.Fatalf("start with port %d free and %d held by another process: %v", port, port+1, err)
	}
	srv.Stop()
}

// A port another process holds would answer Start's wait at once, as if the
// server were up: Start refuses it first, naming it.
func TestStartRefusesAHeldPort(t *testing.T) {
	testenv.Require(t, testenv.FileExists(Binary), "clickhouse-server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Start(ctx, t.TempDir(), l.Addr().(*net.TCPAddr).Port)
	if err == nil {
		srv.Stop()
		t.Fatal("started on a port another process holds")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), strconv.Itoa(l.Addr().(*net.TCPAddr).Port)) {
		t.Errorf("error does not say why: %v", err)
	}
}

// A server that exits at start is quoted in Start's error: the line of its
// error log that says why, from this start only.
func TestLastError(t *testing.T) {
	dir := t.TempDir()
	if got := lastError(dir, 0); got != "" {
		t.Errorf("no logs: %q", got)
	}
	earlier := "2026.12.04 10:00:00.000 [ 1 ] <Error> Application: an earlier start's failure\n"
	now := "2026.12.05 04:21:05.123 [ 1 ] <Error> Application: Net Exception: Address already in use: 127.0.0.1:37052\n" +
		"0. clickhouse-server(StackTrace::StackTrace()+0x16) [0x1]\n1. clickhouse-server(Poco::Net::ServerSocket::bind()+0x2a) [0x2]\n\n"
	if err := os.WriteFile(filepath.Join(dir, errLog), []byte(earlier+now), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := lastError(dir, int64(len(earlier))), ": 2026.12.05 04:21:05.123 [ 1 ] <Error> Application: Net Exception: Address already in use: 127.0.0.1:37052"; got != want {
		t.Errorf("lastError = %q, want %q", got, want)
	}
	if got := lastError(dir, int64(len(earlier+now))); got != "" {
		t.Errorf("nothing added by this start: %q", got)
	}
}
