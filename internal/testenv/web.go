package testenv

import (
	"net"
	"os"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
)

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort is a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return a.Port
}

// FileExists says whether p names something that can be stat'ed.
func FileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// WebFlags is an exporter-toolkit configuration listening on addr, without TLS.
func WebFlags(addr string) *web.FlagConfig {
	systemd, file := false, ""
	return &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebSystemdSocket: &systemd, WebConfigFile: &file}
}
