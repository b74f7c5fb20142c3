package ingest

import "hash/maphash"

// seenSet remembers the last window event_ids (FIFO) as 128-bit hashes, so
// that a re-sent event can be counted and not written again. Two independent
// 64-bit hashes make a false "seen" — which would drop a valid event — about
// as likely as a hardware fault (~1e-27 per lookup at a window of 1 M).
//
// It is an open-addressing table with linear probing and backward-shift
// deletion, sized to at most half full, plus a ring that says which id to
// forget next: one add touches about two cache lines of the table, where a
// Go map of this size touched several (this was a tenth of the ingest CPU).
// Memory is 40 bytes per remembered id (window 1 M: 40 MB): the ring keeps
// only the first half of each key, which finds it in the table unless two
// remembered ids share that half (odds about 3e-8 per million ids); then
// the worst effect is that one id is forgotten early.
type seenSet struct {
	s1, s2 maphash.Seed
	ring   []uint64 // first halves of the remembered keys in arrival order; ring[next] is the oldest once full
	next   int
	full   bool
	slots  []seenKey // the table; the zero key marks an empty slot
	mask   uint64
}

// seenKey is a 128-bit hash of an event_id; b is never 0, so a used slot is never the zero key.
type seenKey struct{ a, b uint64 }

func newSeenSet(window int) *seenSet {
	if window <= 0 {
		return nil
	}
	size := 1
	for size < 2*window {
		size <<= 1
	}
	return &seenSet{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), ring: make([]uint64, window),
		slots: make([]seenKey, size), mask: uint64(size - 1)}
}

// add records id and reports whether it was already remembered. A nil set remembers nothing.
func (s *seenSet) add(id string) (seen bool) {
	if s == nil {
		return false
	}
	k := seenKey{maphash.String(s.s1, id), maphash.String(s.s2, id) | 1}
	i, found := s.find(k)
	if found {
		return true
	}
	if s.full {
		s.forget(s.ring[s.next])
		i, _ = s.find(k) // the empty slot for k may have moved
	}
	s.slots[i] = k
	s.ring[s.next] = k.a
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	return false
}

// find returns the slot holding k, or the empty slot where k belongs.
func (s *seenSet) find(k seenKey) (slot uint64, found bool) {
	for i := k.a & s.mask; ; i = (i + 1) & s.mask {
		switch s.slots[i] {
		case k:
			return i, true
		case seenKey{}:
			return i, false
		}
	}
}

// forget removes the key whose first half is a from the table, shifting
// back the entries of its probe run so that every remaining key is still
// reachable from its home slot.
func (s *seenSet) forget(a uint64) {
	i := a & s.mask
	for s.slots[i].a != a {
		if s.slots[i] == (seenKey{}) {
			return // cannot happen: the ring and the table hold the same keys
		}
		i = (i + 1) & s.mask
	}
	for j := i; ; {
		j = (j + 1) & s.mask
		if s.slots[j] == (seenKey{}) {
			break
		}
		// The entry at j may move to the hole at i unless its home slot h
		// lies cyclically in (i, j]: then it must stay where a probe from h finds it.
		h := s.slots[j].a & s.mask
		if (j-h)&s.mask >= (j-i)&s.mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = seenKey{}
}
