package limit

import (
	"context"
	"hash/maphash"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Keyed limiter defaults, used when the corresponding field is zero.
const (
	DefaultMaxKeys     = 10000
	DefaultIdleTimeout = 10 * time.Minute
)

// maxKeyBytes bounds the memory a single key may hold: longer keys are
// replaced by a 128-bit keyed hash of themselves, so a hostile 1 MB key
// costs 16 bytes.
const maxKeyBytes = 128

// KeyedConfig configures a KeyedLimiter: one token bucket per key, each
// configured by Limiter, with a bounded number of keys in memory.
type KeyedConfig struct {
	// Limiter configures every key's bucket (rate, burst, mode, max wait),
	// the clock and the logger. Its rules and defaults apply.
	Limiter LimiterConfig
	// MaxKeys bounds the number of keys tracked at once. When a new key
	// arrives and the limiter is full, the least recently used key is
	// forgotten, and only then: the bound is on the whole limiter, however
	// its keys spread over its shards. Default DefaultMaxKeys. Each key
	// costs about 250 bytes plus the key itself (at most 128 bytes: a key
	// is copied when first tracked, so a key sliced from a larger string
	// never keeps that string alive), so the default bounds the limiter
	// near 4 MB.
	MaxKeys int
	// IdleTimeout forgets a key unused for this long. It must be at least
	// the time a bucket takes to refill, so that forgetting an idle key
	// never grants it more than it already had: Burst/Rate, plus MaxWait in
	// Wait mode, where a waiting call's reservation can leave the bucket up
	// to Rate×MaxWait tokens in debt. Default: the larger of
	// DefaultIdleTimeout and the refill time.
	IdleTimeout time.Duration
}

// KeyedLimiter is a rate limiter with one token bucket per key (API key,
// tenant, client IP), each behaving as a Limiter configured by
// KeyedConfig.Limiter. Memory is bounded: at most MaxKeys keys are tracked
// (a new key beyond them forgets the least recently used), keys idle for
// IdleTimeout are dropped (lazily, without a background goroutine: each new
// key evicts idle keys from its own shard and from one other shard in
// turn), and keys longer than 128 bytes are stored as a 128-bit hash
// (shorter ones as a copy of the caller's string).
//
// Forgetting a key is lossless when its bucket had refilled, from any
// Wait-mode debt too (which IdleTimeout guarantees); a key evicted early
// because more than MaxKeys keys are active comes back with a full bucket,
// so size MaxKeys above the number of keys active within one refill period.
// Clients that can mint keys decide that number: bound the rate of new keys
// too (see the package documentation), or one sending about MaxKeys fresh
// keys has any key forgotten and its burst granted again.
//
// Keys are spread over independently locked shards, so calls for different
// keys rarely contend; one atomic count of the keys of all shards enforces
// MaxKeys. A new key in a full limiter forgets the least recently used key
// of the shards no other call holds at that instant (it never waits for
// another shard while holding its own): under contention, the oldest key of
// a busy shard may be passed over. A KeyedLimiter is safe for concurrent
// use; create one with NewKeyedLimiter.
type KeyedLimiter struct {
	core      rateCore
	idle      time.Duration
	seed1     maphash.Seed
	seed2     maphash.Seed
	mask      uint64
	maxKeys   int64
	shards    []keyShard
	_         [64]byte // keep the counters written by new keys off the fields every Take reads
	sweepNext atomic.Uint64
	// keys counts the places taken of the MaxKeys: keys tracked in all
	// shards plus places claimed for keys being added. A place is claimed
	// before its key is added and given back after its key is deleted, so
	// the shards never hold more than keys <= MaxKeys.
	keys atomic.Int64
}

type keyShard struct {
	mu         sync.Mutex
	m          map[string]*keyEntry
	head, tail *keyEntry // most recently used first
	_          [64]byte  // keep neighbouring shards' locks on separate cache lines
}

type keyEntry struct {
	key        string
	bucket     bucket
	last       time.Time
	prev, next *keyEntry
}

// NewKeyedLimiter returns a KeyedLimiter for cfg, or a *contract.Error of
// KindInvalid (code "config.invalid") naming the first bad field.
func NewKeyedLimiter(cfg KeyedConfig) (*KeyedLimiter, error) {
	c, err := newRateCore(cfg.Limiter, "KeyedConfig.Limiter")
	if err != nil {
		return nil, err
	}
	if cfg.MaxKeys < 0 {
		return nil, invalidField("KeyedConfig.MaxKeys", "must be >= 0", cfg.MaxKeys)
	}
	if cfg.IdleTimeout < 0 {
		return nil, invalidField("KeyedConfig.IdleTimeout", "must be >= 0", cfg.IdleTimeout)
	}
	refill, rule := time.Duration(0), "must be >= Burst/Rate"
	if c.limit != rate.Inf && !math.IsInf(float64(c.limit), 1) { // else never limited, never in debt
		refill = durationOf(float64(c.burst) / float64(c.limit))
		if c.mode == Wait {
			// A waiting call's reservation puts the bucket up to
			// Rate×MaxWait tokens in debt, which takes MaxWait more to
			// repay. Saturate rather than overflow.
			refill = min(refill, time.Duration(1<<63-1)-c.maxWait) + c.maxWait
			rule = "must be >= Burst/Rate + MaxWait"
		}
	}
	if cfg.IdleTimeout > 0 && cfg.IdleTimeout < refill {
		return nil, invalidField("KeyedConfig.IdleTimeout", rule+", the bucket refill time "+refill.String(), cfg.IdleTimeout)
	}
	maxKeys := cfg.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	idle := cfg.IdleTimeout
	if idle == 0 {
		idle = max(DefaultIdleTimeout, refill)
	}
	n := 1 // shards: one per 64 places, a power of two, at most 16
	for n < 16 && maxKeys/(n*2) >= 64 {
		n *= 2
	}
	k := &KeyedLimiter{
		core:    c,
		idle:    idle,
		seed1:   maphash.MakeSeed(),
		seed2:   maphash.MakeSeed(),
		mask:    uint64(n - 1),
		maxKeys: int64(maxKeys),
		shards:  make([]keyShard, n),
	}
	for i := range k.shards {
		k.shards[i].m = make(map[string]*keyEntry)
	}
	return k, nil
}

// durationOf converts seconds to a Duration, saturating instead of overflowing.
func durationOf(sec float64) time.Duration {
	const maxSec = float64(1<<63-1) / float64(time.Second)
	if sec >= maxSec || sec != sec {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(sec * float64(time.Second))
}

// Take spends one token of key's bucket, as Limiter.Take does. Any string is
// a valid key, the empty string included (one bucket shared by every caller
// without a key).
func (k *KeyedLimiter) Take(ctx context.Context, key string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	now := k.core.clock.Now()
	b, created := k.bucket(key, now)
	if created && len(k.shards) > 1 {
		k.sweep(now)
	}
	return k.core.take(ctx, b, now)
}

// sweep drops idle keys from one other shard, taken round robin, so idle
// keys leave every shard even when no new key lands in it. It never waits
// for a busy shard and drops at most a few keys, so a new key's cost stays
// bounded.
func (k *KeyedLimiter) sweep(now time.Time) {
	s := &k.shards[k.sweepNext.Add(1)&k.mask]
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	for range 8 {
		t := s.tail
		if t == nil || now.Sub(t.last) <= k.idle {
			return
		}
		s.remove(t)
		k.keys.Add(-1)
	}
}

// bucket returns key's bucket, creating it as needed (after dropping the
// idle keys of its shard, and the least recently used key when the limiter
// is full), and whether it was created. A key already tracked costs a map
// lookup and a move to the front of its shard's list, under the shard's
// lock; a new key is stored as a copy (or as its hash), never as the
// caller's string.
func (k *KeyedLimiter) bucket(key string, now time.Time) (*bucket, bool) {
	h := maphash.String(k.seed1, key)
	hashed := len(key) > maxKeyBytes
	if hashed {
		var b [16]byte
		h2 := maphash.String(k.seed2, key)
		for i := range 8 {
			b[i] = byte(h >> (8 * i))
			b[8+i] = byte(h2 >> (8 * i))
		}
		key = string(b[:])
	}
	s := &k.shards[h&k.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	created := e == nil
	if !created {
		s.unlink(e)
	} else {
		dropped := int64(0)
		for s.tail != nil && now.Sub(s.tail.last) > k.idle {
			s.remove(s.tail)
			dropped++
		}
		if dropped > 0 {
			k.keys.Add(-dropped)
		}
		k.claim(s)
		if !hashed {
			// The caller's key may be a slice of a much larger string (a
			// tenant id cut from a request body): stored as given, it
			// would keep all of that alive for as long as it is tracked.
			key = strings.Clone(key)
		}
		e = &keyEntry{key: key}
		k.core.initBucket(&e.bucket)
		s.m[key] = e
	}
	if now.After(e.last) { // a reading overtaken by another call's does not move it back
		e.last = now
	}
	s.pushFront(e)
	return &e.bucket, created
}

// claim takes one of the MaxKeys places for a new key of shard own, whose
// lock the caller holds: a free place while there is one, else the place of
// the least recently used key, which is forgotten.
func (k *KeyedLimiter) claim(own *keyShard) {
	for {
		n := k.keys.Load()
		if n < k.maxKeys {
			if k.keys.CompareAndSwap(n, n+1) {
				return
			}
			continue
		}
		if k.evictOldest(own) {
			return
		}
		// Own is empty and every key is in a shard that another call
		// holds for a moment, or is being added by one.
		runtime.Gosched()
	}
}

// evictOldest forgets the least recently used key among own's (the caller
// holds its lock) and those of the shards it can lock without waiting, and
// hands its place to the caller without giving it back to the count: false
// when it found no key. Only TryLock is used while own is held, so two calls
// evicting for each other's shards never wait for one another; a shard busy
// at that instant is skipped.
func (k *KeyedLimiter) evictOldest(own *keyShard) bool {
	var victim *keyShard // locked by this call, or own
	if own.tail != nil {
		victim = own
	}
	for i := range k.shards {
		o := &k.shards[i]
		if o == own || !o.mu.TryLock() {
			continue
		}
		if o.tail != nil && (victim == nil || o.tail.last.Before(victim.tail.last)) {
			if victim != nil && victim != own {
				victim.mu.Unlock()
			}
			victim = o
			continue
		}
		o.mu.Unlock()
	}
	if victim == nil {
		return false
	}
	victim.remove(victim.tail)
	if victim != own {
		victim.mu.Unlock()
	}
	return true
}

// remove forgets e. The caller holds s's lock and gives e's place back (or
// hands it on).
func (s *keyShard) remove(e *keyEntry) {
	s.unlink(e)
	delete(s.m, e.key)
}

func (s *keyShard) unlink(e *keyEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *keyShard) pushFront(e *keyEntry) {
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	} else {
		s.tail = e
	}
	s.head = e
}

// Len returns the number of keys currently tracked, a key being added
// included; it never exceeds MaxKeys.
func (k *KeyedLimiter) Len() int { return int(k.keys.Load()) }
