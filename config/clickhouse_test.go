package config_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// query connects as cfg says (environment getenv) and runs one query.
func query(t *testing.T, cfg config.Config, getenv func(string) string, sql string) (string, error) {
	t.Helper()
	target, err := cfg.ClickHouseTarget(getenv)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := store.Open(ctx, target)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var out string
	err = conn.QueryRow(ctx, sql).Scan(&out)
	return out, err
}

func noEnv(string) string { return "" }

// The server's TLS native port: verified against the CA of clickhouse.tls,
// refused with a clear error under a CA that did not sign its certificate.
func TestClickHouseOverTLS(t *testing.T) {
	addr, caFile := testenv.ClickHouseTLS(t)
	other := testenv.NewCA(t, "not-the-clickhouse-ca")
	tests := []struct {
		name string
		tls  config.TLS
		want string // an error that says it; "" for success
	}{
		{"the CA that signed it", config.TLS{Enabled: true, CAFile: caFile}, ""},
		{"by name, localhost", config.TLS{Enabled: true, CAFile: caFile, ServerName: "localhost"}, ""},
		{"skip verification", config.TLS{Enabled: true, InsecureSkipVerify: true}, ""},
		{"another CA", config.TLS{Enabled: true, CAFile: other.File}, "TLS: certificate signed by unknown authority for server 127.0.0.1: clickhouse.tls.ca_file"},
		{"a name not in the certificate", config.TLS{Enabled: true, CAFile: caFile, ServerName: "clickhouse.example.com"}, "not valid for server name clickhouse.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.ClickHouse.DSN = "clickhouse://" + addr + "/default"
			cfg.ClickHouse.TLS = tt.tls
			got, err := query(t, cfg, noEnv, "SELECT toString(1 + 1)")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("over TLS: %v", err)
			case tt.want == "" && got != "2":
				t.Errorf("SELECT 1 + 1 = %q", got)
			case tt.want != "":
				t.Log(err)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %v, want one saying %q", err, tt.want)
				}
			}
		})
	}
	// The port speaks only TLS: that the cases above passed is TLS's doing.
	cfg := config.Default()
	cfg.ClickHouse.DSN = "clickhouse://" + addr + "/default?dial_timeout=3s"
	if _, err := query(t, cfg, noEnv, "SELECT '1'"); err == nil {
		t.Error("plain text to the TLS port worked")
	}
}

// The password of clickhouse.user comes from KPIBRIDGE_CLICKHOUSE_PASSWORD,
// else clickhouse.password_file, else the DSN; a wrong one is refused with
// an error that names the user and not the password.
func TestClickHousePassword(t *testing.T) {
	user, passwordFile := testenv.ClickHouseUser(t)
	dsn := os.Getenv(testenv.ClickHouseEnv)
	testenv.Require(t, dsn != "", testenv.ClickHouseEnv)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(passwordFile)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(b))
	const wrong = "not-the-password-4711"
	wrongFile := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrongFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plainDSN := "clickhouse://" + u.Host + "/default"
	tests := []struct {
		name   string
		dsn    string
		file   string
		env    string
		wantOK bool
	}{
		{"from the environment", plainDSN, "", password, true},
		{"from password_file", plainDSN, passwordFile, "", true},
		{"the environment wins over the file", plainDSN, wrongFile, password, true},
		{"the file wins over the DSN", "clickhouse://" + user + ":" + url.QueryEscape(wrong) + "@" + u.Host + "/default", passwordFile, "", true},
		{"in the DSN, still", "clickhouse://" + user + ":" + url.QueryEscape(password) + "@" + u.Host + "/default", "", "", true},
		{"wrong, from the environment", plainDSN, passwordFile, wrong, false},
		{"wrong, from the file", plainDSN, wrongFile, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.ClickHouse.DSN, cfg.ClickHouse.User, cfg.ClickHouse.PasswordFile = tt.dsn, user, tt.file
			getenv := func(k string) string {
				if k == config.ClickHousePasswordEnv {
					return tt.env
				}
				return ""
			}
			got, err := query(t, cfg, getenv, "SELECT user FROM system.processes WHERE query LIKE '%kpibridge-whoami%' LIMIT 1")
			if !tt.wantOK {
				if err == nil {
					t.Fatal("a wrong password was accepted")
				}
				t.Log(err)
				if want := `refused user "` + user + `": authentication failed`; !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want one saying %q", err, want)
				}
				if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
					t.Errorf("error shows a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != user {
				t.Errorf("connected as %q, want %q", got, user)
			}
		})
	}
}
