package ordering

import "sync"

// Latest keeps, per key, only the newest version of a value: the "last
// writer by sequence" rule for projections that need the current state and
// not every step (a balance, a status). A version older than or equal to the
// stored one is dropped, so duplicates and late arrivals cannot roll the
// value back, in whatever order they come.
//
// The zero value is an empty Latest ready to use. It is safe for concurrent
// use. It is not bounded: it holds one value per key ever put.
type Latest[V any] struct {
	mu sync.RWMutex
	m  map[string]versioned[V]
}

type versioned[V any] struct {
	version uint64
	value   V
}

// Put stores value as key's value when version is newer than the stored
// one, and reports whether it did.
func (l *Latest[V]) Put(key string, version uint64, value V) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.m[key]; ok && version <= cur.version {
		return false
	}
	if l.m == nil {
		l.m = make(map[string]versioned[V])
	}
	l.m[key] = versioned[V]{version: version, value: value}
	return true
}

// Get returns key's newest value and its version, and whether there is one.
func (l *Latest[V]) Get(key string) (value V, version uint64, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	cur, ok := l.m[key]
	return cur.value, cur.version, ok
}

// Len returns the number of keys.
func (l *Latest[V]) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.m)
}

// Newer reports whether version should replace current under the last
// writer by sequence rule: the rule Latest applies, for projections kept
// elsewhere (a SQL "UPDATE … WHERE version < $new" implements the same).
func Newer(version, current uint64) bool { return version > current }
