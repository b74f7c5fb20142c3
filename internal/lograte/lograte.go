// Package lograte keeps a failure that repeats from flooding the log: each
// kind of message is written once per interval, with how many times it
// recurred in between.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter writes each key at most once per Every.
type Limiter struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*entry
}

type entry struct {
	at         time.Time // when it was last written
	suppressed int       // occurrences since, not written
}

// New returns a limiter writing to log at most once per every for each key.
func New(log *slog.Logger, every time.Duration) *Limiter {
	return &Limiter{log: log, every: every, now: time.Now, seen: map[string]*entry{}}
}

// WithClock replaces the clock (for tests).
func (l *Limiter) WithClock(now func() time.Time) *Limiter { l.now = now; return l }

// Log writes msg unless key was written less than Every ago; the line
// written after a quiet spell carries repeated=N, the occurrences left
// out since the previous line.
func (l *Limiter) Log(level slog.Level, key, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	e, ok := l.seen[key]
	if ok && now.Sub(e.at) < l.every {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	if !ok {
		e = &entry{}
		l.seen[key] = e
	}
	repeated := e.suppressed
	e.at, e.suppressed = now, 0
	l.mu.Unlock()
	if repeated > 0 {
		args = append(args, "repeated", repeated, "since", l.every.String()+" ago")
	}
	l.log.Log(context.Background(), level, msg, args...)
}
