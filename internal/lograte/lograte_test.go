package lograte_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/lograte"
)

// Fifty failures in a minute make one line, and the next line says how
// many were left out; other keys are not held back by them.
func TestRepeatsAreCountedNotWritten(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := lograte.New(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute).WithClock(func() time.Time { return now })
	for range 50 {
		l.Log(slog.LevelWarn, "dial", "kafka unreachable", "broker", "127.0.0.1:9")
		now = now.Add(time.Second)
	}
	l.Log(slog.LevelWarn, "other", "another failure")
	now = now.Add(11 * time.Second) // past the minute since the first line
	l.Log(slog.LevelWarn, "dial", "kafka unreachable", "broker", "127.0.0.1:9")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[2], "repeated=49") || !strings.Contains(lines[1], "another failure") {
		t.Errorf("lines:\n%s", buf.String())
	}
}
