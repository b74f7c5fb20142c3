package ingest

import "hash/maphash"

// seenSet remembers the last window event_ids (FIFO) as 128-bit hashes, so
// that a re-sent event can be counted and not written again. Two independent
// 64-bit hashes make a false "seen" — which would drop a valid event — about
// as likely as a hardware fault (~1e-27 per lookup at a window of 1 M).
// Memory is about 40 bytes per remembered id.
type seenSet struct {
	s1, s2 maphash.Seed
	ring   [][2]uint64
	next   int
	full   bool
	index  map[[2]uint64]struct{}
}

func newSeenSet(window int) *seenSet {
	if window <= 0 {
		return nil
	}
	return &seenSet{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), ring: make([][2]uint64, window), index: make(map[[2]uint64]struct{}, window)}
}

// add records id and reports whether it was already remembered. A nil set remembers nothing.
func (s *seenSet) add(id string) (seen bool) {
	if s == nil {
		return false
	}
	k := [2]uint64{maphash.String(s.s1, id), maphash.String(s.s2, id)}
	if _, ok := s.index[k]; ok {
		return true
	}
	if s.full {
		delete(s.index, s.ring[s.next])
	}
	s.ring[s.next] = k
	s.index[k] = struct{}{}
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	return false
}
