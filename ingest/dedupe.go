package ingest

import "hash/maphash"

// seenSet remembers the last window event_ids (FIFO) as 96-bit hashes, so
// that a re-sent event can be counted and not written again. Two independent
// hashes (64 and 32 bits) make a false "seen" — which would drop a valid
// event — about as likely as a hardware fault (~1e-23 per lookup at a
// window of 1 M).
//
// With each id it keeps a 32-bit hash of where it was first read (topic,
// partition, offset), so that a message read again at the same place —
// after a rebalance gave its partition back from the last commit — is told
// from a re-send: it is a re-delivery of what this process stored already.
// (A re-send whose place hashes alike is taken for a re-delivery and not
// counted as a duplicate, odds 2^-32 per re-send; the event is stored anyway.)
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

// seenKey is a 96-bit hash of an event_id (a, b) and of where it was first
// read (at); b is never 0, so a used slot is never the zero key.
type seenKey struct {
	a     uint64
	b, at uint32
}

// same reports whether k and o are the same event_id.
func (k seenKey) same(o seenKey) bool { return k.a == o.a && k.b == o.b }

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

// add records id, first read at place at, and reports whether it was
// already remembered, and if so whether at the same place. A nil set
// remembers nothing.
func (s *seenSet) add(id string, at uint32) (seen, samePlace bool) {
	if s == nil {
		return false, false
	}
	k := seenKey{a: maphash.String(s.s1, id), b: uint32(maphash.String(s.s2, id)) | 1, at: at}
	i, found := s.find(k)
	if found {
		return true, s.slots[i].at == at
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
	return false, false
}

// find returns the slot holding k, or the empty slot where k belongs.
func (s *seenSet) find(k seenKey) (slot uint64, found bool) {
	for i := k.a & s.mask; ; i = (i + 1) & s.mask {
		switch {
		case s.slots[i].same(k):
			return i, true
		case s.slots[i] == seenKey{}:
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
