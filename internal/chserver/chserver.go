// Package chserver runs a private ClickHouse server (Debian's
// clickhouse-server) on a loopback port with its config, data and logs in one
// directory, for `kpibridge demo`. scripts/clickhouse.sh does the same for
// the test suite.
package chserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is a running private ClickHouse server.
type Server struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan error
}

// Binary is where Debian installs the server.
const Binary = "/usr/sbin/clickhouse-server"

// Start writes the config into dir and starts the server on 127.0.0.1:port,
// returning once it accepts connections. It listens on that port only, for
// the native protocol kpibridge speaks: no HTTP, so no second port has to be
// free. The server stops when Stop is called (or with the process).
func Start(ctx context.Context, dir string, port int) (*Server, error) {
	bin := Binary
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("clickhouse-server")
		if lerr != nil {
			return nil, fmt.Errorf("clickhouse-server is not installed (run scripts/install-deps.sh, or pass --clickhouse to use a running server): %w", err)
		}
		bin = p
	}
	// Start waits for the port to answer, so it must be ours: a port that
	// another process holds would answer at once.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("port %d is not free for the private clickhouse-server: %w", port, err)
	}
	l.Close()
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"data", "tmp", "user_files", "log", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config(dir, port)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		return nil, err
	}
	// The error log is appended to across starts: only what this start
	// adds to it can say why this start failed.
	var errFrom int64
	if fi, err := os.Stat(filepath.Join(dir, "log", errLog)); err == nil {
		errFrom = fi.Size()
	}
	log, err := os.Create(filepath.Join(dir, "log", "stdout.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	// Its own process group: a terminal's Ctrl-C reaches kpibridge, which
	// drains the pipeline and only then stops the server. Pdeathsig stops it
	// if kpibridge dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start clickhouse-server: %w", err)
	}
	s := &Server{Dir: dir, Port: port, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait(); log.Close() }()
	exited := func(err error) error {
		return fmt.Errorf("clickhouse-server exited at start (%v)%s; see %s", err, lastError(filepath.Join(dir, "log"), errFrom), filepath.Join(dir, "log"))
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond); err == nil {
			c.Close()
			select {
			case err := <-s.done: // what answered is not this server
				return nil, exited(err)
			default:
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, exited(err)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	s.Stop()
	return nil, errors.New("clickhouse-server did not answer within 60s; see " + filepath.Join(dir, "log"))
}

// errLog is the server's error log, in the log directory.
const errLog = "clickhouse-server.err.log"

// lastError is ": " and the line where the server says why it would not
// start: the last <Error> or Exception line its error log gained from
// offset errFrom on, or else the last line of it or of its stdout; "" when
// neither has one. Stack frames follow an exception, so the last line alone
// is often one of them.
func lastError(logDir string, errFrom int64) string {
	for _, f := range []struct {
		name string
		from int64
	}{{errLog, errFrom}, {"stdout.log", 0}} {
		b, err := os.ReadFile(filepath.Join(logDir, f.name))
		if err != nil || int64(len(b)) <= f.from {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b[f.from:])), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.Contains(lines[i], "<Error>") || strings.Contains(lines[i], "Exception") {
				return ": " + strings.TrimSpace(lines[i])
			}
		}
		if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
			return ": " + last
		}
	}
	return ""
}

// Addr is 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// DSN is the kpibridge DSN of database db on this server.
func (s *Server) DSN(db string) string { return "clickhouse://" + s.Addr() + "/" + db }

// Stop terminates the server and waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func config(dir string, port int) string {
	return fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>%[1]s/log/clickhouse-server.log</log><errorlog>%[1]s/log/%[3]s</errorlog><size>100M</size><count>2</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
`, dir, port, errLog)
}

const users = `<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
