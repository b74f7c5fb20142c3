package testenv

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a kpibridge child process of a test, its output readable while
// it runs; it is killed when the test ends, and its output's tail is logged
// if the test failed.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *Output
	done chan struct{}
}

// StartProcess runs the kpibridge binary (Binary) with args and extra
// environment (KEY=value) until the test ends.
func StartProcess(t testing.TB, name string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Process{Name: name, Cmd: cmd, Out: &Output{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			out := p.Out.String()
			t.Logf("%s output (last 3000 bytes):\n%s", name, out[max(0, len(out)-3000):])
		}
	})
	return p
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; it
// reports false (and kills it) if it did not.
func (p *Process) Stop(timeout time.Duration) bool {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		p.Kill()
		return false
	}
}
