package normalizer

import (
	"hash/maphash"
	"sync"
)

// existenceCapacity is how many state keys a normalizer remembers having
// seen hold a state: a hash of each in a ring and in a map, 2.7 MiB live
// when full.
const existenceCapacity = 1 << 16

// existence remembers, bounded, the state keys this process has seen hold
// a state (read or written). A raw event about any other invoice is first
// tried as a create, without reading the state: an invoice's first webhook
// is almost always its creation, and a provider that does not say
// "created" (Qonto's client invoices) would otherwise cost a read per new
// invoice. It is only a guess, never trusted for correctness: a key it
// forgot (the oldest remembered goes first, however busy) or never saw
// (another normalizer wrote it) costs one refused create before the read,
// a hash collision costs the read.
type existence struct {
	mu   sync.Mutex
	seed maphash.Seed
	set  map[uint64]struct{}
	ring []uint64 // the remembered hashes, oldest at next once full
	next int
}

func newExistence(capacity int) *existence {
	capacity = max(capacity, 1)
	return &existence{seed: maphash.MakeSeed(), set: make(map[uint64]struct{}, capacity), ring: make([]uint64, 0, capacity)}
}

// saw remembers that key holds a state, forgetting the oldest key
// remembered when full.
func (e *existence) saw(key string) {
	h := maphash.String(e.seed, key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.set[h]; ok {
		return
	}
	if len(e.ring) < cap(e.ring) {
		e.ring = append(e.ring, h)
	} else {
		delete(e.set, e.ring[e.next])
		e.ring[e.next] = h
		e.next = (e.next + 1) % len(e.ring)
	}
	e.set[h] = struct{}{}
}

// seen reports whether key was remembered holding a state.
func (e *existence) seen(key string) bool {
	h := maphash.String(e.seed, key)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.set[h]
	return ok
}
