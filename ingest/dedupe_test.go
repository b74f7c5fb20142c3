package ingest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSeenSetMatchesFIFOModel checks the table against the obvious model —
// a map of each id's first place plus a FIFO queue of the last window ids —
// over long random streams with many repeats, at the same place and
// elsewhere, including windows so small that probe runs wrap around the
// table and every add evicts.
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
			model := map[string]uint32{} // id → where it was first read
			var fifo []string
			rng := rand.New(rand.NewPCG(uint64(tt.window), uint64(tt.universe)))
			seen, again := 0, 0
			for n := range tt.adds {
				id := fmt.Sprintf("evt-%d", rng.IntN(tt.universe))
				place := uint32(rng.IntN(3))
				first, want := model[id]
				wantAgain := want && first == place
				if !want {
					model[id] = place
					fifo = append(fifo, id)
					if len(fifo) > tt.window {
						delete(model, fifo[0])
						fifo = fifo[1:]
					}
				} else if wantAgain {
					again++
				} else {
					seen++
				}
				if got, gotAgain := s.add(id, place); got != want || gotAgain != wantAgain {
					t.Fatalf("add #%d (%s at %d) = %v, %v; want %v, %v", n, id, place, got, gotAgain, want, wantAgain)
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
			if seen == 0 || again == 0 || seen+again == tt.adds {
				t.Errorf("stream had %d repeats elsewhere and %d at the same place of %d adds; the case does not exercise every path", seen, again, tt.adds)
			}
		})
	}
}

func TestSeenSetDisabled(t *testing.T) {
	var s *seenSet = newSeenSet(0)
	for range 3 {
		if seen, _ := s.add("same", 1); seen {
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
		s.add(id, 0)
	}
	b.ResetTimer()
	for i := range b.N {
		s.add(ids[i&(len(ids)-1)], uint32(i))
	}
}
