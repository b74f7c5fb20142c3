package ingest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSeenSetMatchesFIFOModel checks the table against the obvious model —
// a map plus a FIFO queue of the last window ids — over long random streams
// with many repeats, including windows so small that probe runs wrap around
// the table and every add evicts.
func TestSeenSetMatchesFIFOModel(t *testing.T) {
	tests := []struct {
		name     string
		window   int
		universe int // distinct ids drawn from; smaller means more repeats
		adds     int
	}{
		{"window 1", 1, 3, 2000},
		{"window 2", 2, 5, 2000},
		{"window 3 wraps", 3, 8, 5000},
		{"window 7", 7, 20, 20000},
		{"window 100, mostly repeats", 100, 150, 50000},
		{"window 1000, mostly new", 1000, 100000, 50000},
		{"window 4096, every id once in a while", 4096, 6000, 200000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeenSet(tt.window)
			model := map[string]bool{}
			var fifo []string
			rng := rand.New(rand.NewPCG(uint64(tt.window), uint64(tt.universe)))
			seen := 0
			for n := range tt.adds {
				id := fmt.Sprintf("evt-%d", rng.IntN(tt.universe))
				want := model[id]
				if !want {
					model[id] = true
					fifo = append(fifo, id)
					if len(fifo) > tt.window {
						delete(model, fifo[0])
						fifo = fifo[1:]
					}
				} else {
					seen++
				}
				if got := s.add(id); got != want {
					t.Fatalf("add #%d (%s) = %v, want %v", n, id, got, want)
				}
			}
			used := 0
			for _, k := range s.slots {
				if k != (seenKey{}) {
					used++
				}
			}
			if used != len(model) {
				t.Errorf("table holds %d ids, want %d (the last window of distinct ids)", used, len(model))
			}
			if seen == 0 || seen == tt.adds {
				t.Errorf("stream had %d repeats of %d adds; the case does not exercise both paths", seen, tt.adds)
			}
		})
	}
}

func TestSeenSetDisabled(t *testing.T) {
	var s *seenSet = newSeenSet(0)
	for range 3 {
		if s.add("same") {
			t.Fatal("a disabled dedupe window reported a duplicate")
		}
	}
}

// BenchmarkSeenSetAdd adds distinct ids to a full default-size window, the
// steady state of a long-running ingest process.
func BenchmarkSeenSetAdd(b *testing.B) {
	s := newSeenSet(Default().Dedupe.Window)
	ids := make([]string, 1<<22)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_%016x", rand.Uint64())
	}
	for _, id := range ids[:Default().Dedupe.Window] {
		s.add(id)
	}
	b.ResetTimer()
	for i := range b.N {
		s.add(ids[i&(len(ids)-1)])
	}
}
