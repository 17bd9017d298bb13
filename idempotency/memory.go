package idempotency

import (
	"context"
	"hash/maphash"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// MemoryConfig configures a MemoryStore. The zero value is valid: every zero
// field means the documented default.
type MemoryConfig struct {
	// MaxEntries bounds the number of records kept. Default 100,000.
	MaxEntries int
	// MaxBytes bounds the bytes kept: keys, fingerprints, stored results
	// (a result's header map counted at what a small Go map costs, about
	// 400 bytes; a result of Do counted twice over, for the decoded value
	// that replays may keep next to it) plus a fixed per-record overhead
	// (entryOverhead, 232 bytes: the record, its index and heap slots,
	// allocation rounding).
	// The accounting follows the Go heap: BenchmarkMemoryStoreParallel
	// reports both, and TestMemoryStoreBytesTrackHeap keeps them close.
	// Default 64 MiB.
	MaxBytes int64
	// Shards is the number of independently locked shards, a power of two.
	// MaxEntries and MaxBytes are divided evenly between shards, so a single
	// result larger than MaxBytes/Shards cannot be stored. Default 16, or 1
	// when MaxEntries < 1024 or MaxBytes < 16 MiB (small stores keep their
	// whole budget in one shard).
	Shards int
	// Clock tells the time. Default: the system clock.
	Clock Clock
}

// Defaults of MemoryConfig.
const (
	DefaultMemoryMaxEntries = 100_000
	DefaultMemoryMaxBytes   = 64 << 20
	defaultShards           = 16
	// entryOverhead approximates the bytes a record costs beyond its
	// strings and result: the memEntry (176 bytes allocated), its slots in
	// the shard's map and heap with their growth slack, and the rounding
	// of its strings' allocations. Measured, not guessed: see
	// TestMemoryStoreBytesTrackHeap.
	entryOverhead = 232
	// headerMapOverhead approximates what a result's non-empty header map
	// costs beyond its keys and values: a Go map of up to 8 entries (one
	// group of 8 slots and the map itself); mapSlotOverhead is each entry
	// past 8.
	headerMapOverhead = 400
	mapSlotOverhead   = 48
	// memoOverhead is what the memo of a completed record may come to
	// hold (memoSlot) beyond the bytes of its strings: a decoded value,
	// boxed (Do; its strings are counted apart, see resultSize), or, when
	// the result has headers, the replay headers the middleware builds at
	// its second replay: replayHeadersOverhead plus per-header and
	// per-value costs.
	memoOverhead          = 48
	replayHeadersOverhead = 96
)

// MemoryStore is a bounded, sharded, in-process Store: what unit tests and
// single-process services use. It passes idempotency/storetest.
//
// Records expire after the claim's Retention, counted from the claim, the
// completion or the release, whichever is last, and never before the lease.
// Expired records are dropped lazily by the shard's next write. When a
// shard is over its share of MaxEntries or MaxBytes, the record that would
// expire first is evicted, but never a claim whose lease is running: if
// only such claims are left, Claim fails with a KindUnavailable error
// (code "idempotency.store_full") rather than break an owner's lease, and
// Complete of a result that cannot fit fails with KindTooLarge (the owner
// keeps its lease and may Release). A Claim or Complete that fails this way
// evicts nothing. A claim whose key and fingerprint alone exceed a shard's
// share of MaxBytes fails with KindTooLarge (code
// "idempotency.claim_too_large").
//
// Fencing tokens come from a per-shard counter, so they increase strictly
// per key even across eviction and expiry.
//
// A MemoryStore is safe for concurrent use. It starts no goroutines.
type MemoryStore struct {
	shards     []memShard
	mask       uint64
	seed       maphash.Seed
	clock      Clock
	base       time.Time // the clock's reading at construction: ticks count from it
	system     bool      // clock is systemClock: now reads the monotonic clock alone
	maxEntries int       // per shard
	maxBytes   int64     // per shard
	testHash   func(Key) uint64
}

type memShard struct {
	mu sync.Mutex
	// entries indexes the records by their key's hash, which picked the
	// shard too: one hash per operation, and probes compare integers
	// rather than two strings each. Records whose keys share a hash are
	// chained through memEntry.next.
	entries map[uint64]*memEntry
	n       int // records held
	byExp   expHeap
	bytes   int64
	tokens  uint64
	// per-shard share of MemoryConfig.MaxEntries and MaxBytes
	maxEntries int
	maxBytes   int64
	_          [48]byte // pad to 128 bytes: shards' locks on separate cache lines
}

type memEntry struct {
	key        Key
	hash       uint64    // of key
	next, prev *memEntry // the records whose keys have the same hash: a chain, head first
	fp         string
	token      uint64
	leaseUntil int64 // ticks (see MemoryStore.now) at which the lease ends
	retention  time.Duration
	result     Result   // StateCompleted only
	memo       memoSlot // StateCompleted only: a decoded form of result, see memoSlot
	size       int64
	idx        int32 // index in the shard's heap, whose item holds the expiry
	state      RecordState
}

// NewMemoryStore returns a MemoryStore configured by cfg, or a KindInvalid
// error naming the bad field.
func NewMemoryStore(cfg MemoryConfig) (*MemoryStore, error) {
	if cfg.MaxEntries < 0 {
		return nil, configError("MemoryConfig.MaxEntries", "must be >= 0, got %d", cfg.MaxEntries)
	}
	if cfg.MaxBytes < 0 {
		return nil, configError("MemoryConfig.MaxBytes", "must be >= 0, got %d", cfg.MaxBytes)
	}
	if cfg.Shards < 0 || cfg.Shards&(cfg.Shards-1) != 0 || cfg.Shards > 1<<16 {
		return nil, configError("MemoryConfig.Shards", "must be a power of two in [1, 65536] or 0, got %d", cfg.Shards)
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMemoryMaxEntries
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMemoryMaxBytes
	}
	if cfg.Shards == 0 {
		cfg.Shards = defaultShards
		if cfg.MaxEntries < 1024 || cfg.MaxBytes < 16<<20 {
			cfg.Shards = 1
		}
	}
	if cfg.MaxEntries < cfg.Shards {
		return nil, configError("MemoryConfig.MaxEntries", "must be >= Shards (%d), got %d", cfg.Shards, cfg.MaxEntries)
	}
	if cfg.MaxEntries/cfg.Shards > math.MaxInt32 {
		return nil, configError("MemoryConfig.MaxEntries", "must be <= %d per shard, got %d over %d shards", math.MaxInt32, cfg.MaxEntries, cfg.Shards)
	}
	if cfg.MaxBytes/int64(cfg.Shards) < 4*entryOverhead {
		return nil, configError("MemoryConfig.MaxBytes", "must be >= %d per shard, got %d over %d shards", 4*entryOverhead, cfg.MaxBytes, cfg.Shards)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	s := &MemoryStore{
		shards:     make([]memShard, cfg.Shards),
		mask:       uint64(cfg.Shards - 1),
		seed:       maphash.MakeSeed(),
		clock:      cfg.Clock,
		maxEntries: cfg.MaxEntries / cfg.Shards,
		maxBytes:   cfg.MaxBytes / int64(cfg.Shards),
	}
	s.base = cfg.Clock.Now()
	_, s.system = cfg.Clock.(systemClock)
	for i := range s.shards {
		s.shards[i].entries = make(map[uint64]*memEntry)
		s.shards[i].maxEntries = s.maxEntries
		s.shards[i].maxBytes = s.maxBytes
	}
	return s, nil
}

// locate returns the shard of k and k's hash.
func (s *MemoryStore) locate(k Key) (*memShard, uint64) {
	var h uint64
	if s.testHash != nil {
		h = s.testHash(k)
	} else {
		h = maphash.Comparable(s.seed, k)
	}
	return &s.shards[h&s.mask], h
}

// find returns the record of k, whose hash is h, or nil. Must hold sh.mu.
func (sh *memShard) find(h uint64, k Key) *memEntry {
	e, _ := sh.lookup(h, k)
	return e
}

// lookup returns the record of k, whose hash is h, or nil, and the head of
// h's chain, which insertAt needs: a claim of a new key probes the map once
// to look and once to insert. Must hold sh.mu.
func (sh *memShard) lookup(h uint64, k Key) (e, head *memEntry) {
	head = sh.entries[h]
	for e = head; e != nil; e = e.next {
		if e.key == k {
			return e, head
		}
	}
	return nil, head
}

// insertAt adds e, with e.hash set, to the index in front of head, the
// current head of its chain. Must hold sh.mu.
func (sh *memShard) insertAt(e, head *memEntry) {
	e.next, e.prev = head, nil
	if head != nil {
		head.prev = e
	}
	sh.entries[e.hash] = e
	sh.n++
}

// unlink removes e from the index, with one map operation at most: the
// chain is doubly linked, so e knows whether it is the head. Must hold sh.mu.
func (sh *memShard) unlink(e *memEntry) {
	switch {
	case e.prev != nil:
		e.prev.next = e.next
	case e.next == nil:
		delete(sh.entries, e.hash)
	default:
		sh.entries[e.hash] = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.next, e.prev = nil, nil
	sh.n--
}

// Len returns the number of records held, expired ones not yet dropped included.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// Bytes returns the bytes accounted to the records held (see MemoryConfig.MaxBytes).
func (s *MemoryStore) Bytes() int64 {
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.bytes
		sh.mu.Unlock()
	}
	return n
}

func ctxErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return contract.Wrap(contract.KindOf(err), op, err)
	}
	return nil
}

func validateClaim(req ClaimRequest) error {
	if req.Lease <= 0 {
		return contract.New(contract.KindInvalid, "idempotency.claim", "lease must be > 0").WithCode("idempotency.invalid_request")
	}
	if req.Retention < req.Lease {
		return contract.New(contract.KindInvalid, "idempotency.claim", "retention must be >= lease").WithCode("idempotency.invalid_request")
	}
	return nil
}

// Claim implements Store.
func (s *MemoryStore) Claim(ctx context.Context, req ClaimRequest) (Claim, error) {
	c, _, err := s.claimMemo(ctx, req, false, false)
	return c, err
}

// claimShared is Claim answering Completed with the stored Result itself
// rather than a copy, for the executor, which only reads it, and with the
// record's memo slot. A completed record's result is never changed again,
// so sharing it is safe. With fpBorrowed, req.Fingerprint is copied if kept.
func (s *MemoryStore) claimShared(ctx context.Context, req ClaimRequest, fpBorrowed bool) (Claim, *memoSlot, error) {
	return s.claimMemo(ctx, req, true, fpBorrowed)
}

func (s *MemoryStore) claimMemo(ctx context.Context, req ClaimRequest, share, fpBorrowed bool) (Claim, *memoSlot, error) {
	if err := ctxErr(ctx, "idempotency.claim"); err != nil {
		return Claim{}, nil, err
	}
	if err := validateClaim(req); err != nil {
		return Claim{}, nil, err
	}
	now := s.now()
	sh, h := s.locate(req.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now)
	e, head := sh.lookup(h, req.Key)
	if e != nil {
		switch {
		case e.state == StateCompleted:
			if e.fp != req.Fingerprint {
				return Claim{Status: Mismatch, Token: e.token}, nil, nil
			}
			if share {
				return Claim{Status: Completed, Token: e.token, Result: &e.result}, &e.memo, nil
			}
			return Claim{Status: Completed, Token: e.token, Result: cloneResult(&e.result)}, nil, nil
		case e.state == StateInProgress && now < e.leaseUntil:
			if e.fp != req.Fingerprint {
				return Claim{Status: Mismatch, Token: e.token}, nil, nil
			}
			return Claim{Status: InProgress, Token: e.token, LeaseRemaining: time.Duration(e.leaseUntil - now)}, nil, nil
		}
		// Released, or in progress with an expired lease: the caller wins.
		if grow := int64(len(req.Fingerprint) - len(e.fp)); grow > 0 {
			if e.size+grow > sh.maxBytes {
				return Claim{}, nil, errClaimTooLarge()
			}
			if !sh.makeRoom(now, 0, grow, e) {
				return Claim{}, nil, errStoreFull("idempotency.claim")
			}
		}
		if fpBorrowed {
			req.Fingerprint = strings.Clone(req.Fingerprint)
		}
		sh.tokens++
		sh.bytes += int64(len(req.Fingerprint) - len(e.fp))
		e.size += int64(len(req.Fingerprint) - len(e.fp))
		e.fp, e.state, e.token = req.Fingerprint, StateInProgress, sh.tokens
		e.leaseUntil, e.retention = after(now, req.Lease), req.Retention
		sh.byExp.fix(int(e.idx), after(now, req.Retention))
		return Claim{Status: Claimed, Token: e.token}, nil, nil
	}
	size := entryOverhead + int64(len(req.Key.Scope)+len(req.Key.Key)+len(req.Fingerprint))
	if size > sh.maxBytes { // could never fit: evict nothing for it
		return Claim{}, nil, errClaimTooLarge()
	}
	held := sh.n
	if !sh.makeRoom(now, 1, size, nil) {
		return Claim{}, nil, errStoreFull("idempotency.claim")
	}
	if sh.n != held { // evictions may have unlinked the chain's head
		head = sh.entries[h]
	}
	if fpBorrowed {
		req.Fingerprint = strings.Clone(req.Fingerprint)
	}
	sh.tokens++
	e = &memEntry{
		key: req.Key, hash: h, fp: req.Fingerprint, state: StateInProgress, token: sh.tokens,
		leaseUntil: after(now, req.Lease), retention: req.Retention, size: size,
	}
	sh.insertAt(e, head)
	sh.bytes += size
	sh.byExp.push(e, after(now, req.Retention))
	return Claim{Status: Claimed, Token: e.token}, nil, nil
}

// errClaimTooLarge is Claim's error for a record that could not fit in an
// empty shard: retrying cannot help.
func errClaimTooLarge() error {
	return contract.New(contract.KindTooLarge, "idempotency.claim", "key and fingerprint larger than the store's per-shard byte budget").
		WithCode("idempotency.claim_too_large")
}

// errResultTooLarge is Complete's error for a result the shard cannot take:
// over its budget, or over what the running claims, which are never
// evicted, leave of it. The owner keeps its lease.
func errResultTooLarge(detail string) error {
	return contract.New(contract.KindTooLarge, "idempotency.complete", detail).WithCode("idempotency.result_too_large")
}

// errStoreFull is Claim's error for a shard whose room is held by running claims.
func errStoreFull(op string) error {
	return contract.New(contract.KindUnavailable, op, "idempotency store full of in-progress claims").
		WithCode("idempotency.store_full").WithRetryAfter(time.Second)
}

// owned returns the live entry owned by token, or nil.
func (sh *memShard) owned(h uint64, k Key, token uint64, now int64) *memEntry {
	e := sh.find(h, k)
	if e == nil || e.state != StateInProgress || e.token != token || now >= e.leaseUntil {
		return nil
	}
	return e
}

// Complete implements Store.
func (s *MemoryStore) Complete(ctx context.Context, key Key, token uint64, result Result) error {
	return s.complete(ctx, key, token, result, false, nil)
}

// completeOwned is Complete keeping result as is, without a copy: for the
// executor, which hands over results it built and never touches again.
// A non-nil seed is the value replays would decode from result (the
// executor checked that decoding is exact): it becomes the record's memo at
// once, so not even the first replay decodes.
func (s *MemoryStore) completeOwned(ctx context.Context, key Key, token uint64, result Result, seed *memo) error {
	return s.complete(ctx, key, token, result, true, seed)
}

func (s *MemoryStore) complete(ctx context.Context, key Key, token uint64, result Result, owned bool, seed *memo) error {
	if err := ctxErr(ctx, "idempotency.complete"); err != nil {
		return err
	}
	if result.StatusCode < 0 || result.StatusCode > 999 {
		return contract.New(contract.KindInvalid, "idempotency.complete", "status code must be in [0, 999]")
	}
	now := s.now()
	sh, h := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now)
	e := sh.owned(h, key, token, now)
	if e == nil {
		return ErrLeaseLost
	}
	rsize := resultSize(&result)
	if entryOverhead+int64(len(key.Scope)+len(key.Key)+len(e.fp))+rsize > s.maxBytes {
		return errResultTooLarge("result larger than the store's per-shard byte budget")
	}
	if !sh.makeRoom(now, 0, rsize, e) {
		// Running claims hold the room. Not store_full (KindUnavailable),
		// as for a claim: the owner would have to keep its lease, with the
		// operation done, until some room is freed, and the executor
		// records that it ran only for a result refused as too large.
		return errResultTooLarge("result larger than the room left beside the running claims in the store's shard")
	}
	e.state = StateCompleted
	e.memo.p.Store(seed) // nil when there is none
	if owned {
		e.result = result
	} else {
		e.result = copyResult(&result)
	}
	e.size += rsize
	sh.bytes += rsize
	sh.byExp.fix(int(e.idx), after(now, e.retention))
	return nil
}

// Release implements Store.
func (s *MemoryStore) Release(ctx context.Context, key Key, token uint64) error {
	if err := ctxErr(ctx, "idempotency.release"); err != nil {
		return err
	}
	now := s.now()
	sh, h := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now)
	e := sh.owned(h, key, token, now)
	if e == nil {
		return ErrLeaseLost
	}
	e.state = StateReleased
	e.leaseUntil = now
	sh.byExp.fix(int(e.idx), after(now, e.retention))
	return nil
}

// Renew implements Store.
func (s *MemoryStore) Renew(ctx context.Context, key Key, token uint64, lease time.Duration) error {
	if err := ctxErr(ctx, "idempotency.renew"); err != nil {
		return err
	}
	if lease <= 0 {
		return contract.New(contract.KindInvalid, "idempotency.renew", "lease must be > 0").WithCode("idempotency.invalid_request")
	}
	now := s.now()
	sh, h := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now)
	e := sh.owned(h, key, token, now)
	if e == nil {
		return ErrLeaseLost
	}
	e.leaseUntil = after(now, lease)
	if e.leaseUntil > sh.byExp[e.idx].at { // records never expire before their lease
		sh.byExp.fix(int(e.idx), e.leaseUntil)
	}
	return nil
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, key Key) (Record, error) {
	if err := ctxErr(ctx, "idempotency.get"); err != nil {
		return Record{}, err
	}
	now := s.now()
	sh, h := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.find(h, key)
	if e == nil || now >= sh.byExp[e.idx].at {
		return Record{}, ErrNotFound
	}
	r := Record{Key: e.key, Fingerprint: e.fp, State: e.state, Token: e.token}
	switch e.state {
	case StateInProgress:
		r.LeaseRemaining = time.Duration(e.leaseUntil - now)
	case StateCompleted:
		r.Result = cloneResult(&e.result)
	}
	return r, nil
}

// expire drops every record whose retention has passed. Must hold sh.mu.
func (sh *memShard) expire(now int64) {
	for len(sh.byExp) > 0 && sh.byExp[0].at <= now {
		sh.remove(sh.byExp[0].e)
	}
}

func (sh *memShard) remove(e *memEntry) {
	sh.byExp.remove(int(e.idx))
	sh.unlink(e)
	sh.bytes -= e.size
}

// now reads the clock as ticks: nanoseconds since s.base (on the monotonic
// clock when the Clock's readings carry it, as time.Time.Before does).
// Records keep their lease ends and expiries in ticks.
func (s *MemoryStore) now() int64 {
	if s.system {
		// The same reading as systemClock.Now().Sub(s.base), whose
		// monotonic parts both come from the one clock time.Since reads,
		// without the interface call and the two conversions: every
		// operation, replays included, reads the clock once.
		return int64(time.Since(s.base))
	}
	return int64(s.clock.Now().Sub(s.base))
}

// after is the tick d after now, saturating rather than wrapping around.
func after(now int64, d time.Duration) int64 {
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}

// makeRoom evicts, earliest expiry first, until the shard can take
// addEntries more records and addBytes more bytes. It never evicts keep or a
// claim whose lease is running, and it evicts nothing at all when evicting
// every record it may evict would still leave too little room: a request
// that fails must not cost the shard its completed records. It reports
// whether there is room. Must hold sh.mu.
func (sh *memShard) makeRoom(now int64, addEntries int, addBytes int64, keep *memEntry) bool {
	if sh.n+addEntries <= sh.maxEntries && sh.bytes+addBytes <= sh.maxBytes {
		return true
	}
	// Pop items off the heap, setting aside the records that must stay
	// (held) and those to evict (victims), until the victims would free
	// enough; only then unlink them. Either way the held ones, and on
	// failure the victims too, go back on the heap.
	var heldBuf, victimBuf [4]expItem // most calls evict one record: no allocation
	held, victims := heldBuf[:0], victimBuf[:0]
	n, bytes := sh.n, sh.bytes
	for n+addEntries > sh.maxEntries || bytes+addBytes > sh.maxBytes {
		if len(sh.byExp) == 0 {
			for _, it := range victims {
				sh.byExp.push(it.e, it.at)
			}
			for _, it := range held {
				sh.byExp.push(it.e, it.at)
			}
			return false
		}
		it := sh.byExp[0]
		sh.byExp.remove(0)
		if e := it.e; e == keep || (e.state == StateInProgress && now < e.leaseUntil) {
			held = append(held, it)
			continue
		}
		victims = append(victims, it)
		n--
		bytes -= it.e.size
	}
	for _, it := range victims {
		sh.unlink(it.e)
		sh.bytes -= it.e.size
	}
	for _, it := range held {
		sh.byExp.push(it.e, it.at)
	}
	return true
}

// resultSize is what a completed record's result costs beyond the record:
// its body, its header map and the memo replays may attach to it.
func resultSize(r *Result) int64 {
	n := int64(len(r.Body)) + memoOverhead
	if r.StatusCode == 0 || r.StatusCode == storedErrorStatus {
		// A result of Do: a value, or a stored error. The memo Do may keep
		// next to it, seeded at completion or decoded at the second
		// replay, holds strings of its own about as large as the body
		// (their encoding there is never shorter): count the body again,
		// an upper bound of them, whether or not a memo comes to be.
		n += int64(len(r.Body))
	}
	if len(r.Header) > 0 {
		n += headerMapOverhead + mapSlotOverhead*int64(max(len(r.Header)-8, 0)) + replayHeadersOverhead
	}
	for k, vs := range r.Header {
		n += int64(len(k)) + 24 // the key, its slot in the replay headers' names and ends
		for _, v := range vs {
			n += int64(len(v)) + 32 // the value, its string header in the map and in the replay headers
		}
	}
	return n
}

// cloneResult returns a deep copy, so neither the caller nor the store can
// change the other's bytes.
func cloneResult(r *Result) *Result {
	if r == nil {
		return nil
	}
	c := copyResult(r)
	return &c
}

func copyResult(r *Result) Result {
	c := Result{StatusCode: r.StatusCode}
	if r.Body != nil {
		c.Body = append(make([]byte, 0, len(r.Body)), r.Body...)
	}
	if r.Header != nil {
		c.Header = make(http.Header, len(r.Header))
		for k, vs := range r.Header {
			c.Header[k] = append([]string(nil), vs...)
		}
	}
	return c
}

// expHeap is a 4-ary min-heap of records by expiry, earliest first. Each
// item carries its key, so ordering reads the heap's own array rather than
// a record per comparison (a cache miss each in a large store), and the four
// children of an item share a cache line. A record knows its index
// (memEntry.idx) for remove and fix; keeping it current costs a write to
// each record moved, so four children per item halve the levels an
// eviction walks (and the records it writes) compared to two.
type expHeap []expItem

const heapArity = 4

type expItem struct {
	at int64 // ticks at which the record expires
	e  *memEntry
}

func (h *expHeap) push(e *memEntry, at int64) {
	i := len(*h)
	*h = append(*h, expItem{at: at, e: e})
	h.up(i)
}

// remove takes out the item at index i; its record's idx becomes -1.
func (h *expHeap) remove(i int) {
	old := *h
	last := len(old) - 1
	e := old[i].e
	if i != last {
		old[i] = old[last]
		old[i].e.idx = int32(i)
	}
	old[last] = expItem{}
	*h = old[:last]
	if i != last && !h.down(i) {
		h.up(i)
	}
	e.idx = -1
}

// fix gives the item at index i the key at and restores the order.
func (h expHeap) fix(i int, at int64) {
	h[i].at = at
	if !h.down(i) {
		h.up(i)
	}
}

func (h expHeap) up(j int) {
	it := h[j]
	for j > 0 {
		p := (j - 1) / heapArity
		if h[p].at <= it.at {
			break
		}
		h[j] = h[p]
		h[j].e.idx = int32(j)
		j = p
	}
	h[j] = it
	it.e.idx = int32(j)
}

// down sifts the item at i towards the leaves and reports whether it moved.
func (h expHeap) down(i0 int) bool {
	it := h[i0]
	i, n := i0, len(h)
	for {
		first := heapArity*i + 1
		if first >= n || first < 0 {
			break
		}
		c := first
		for k := first + 1; k < min(first+heapArity, n); k++ {
			if h[k].at < h[c].at {
				c = k
			}
		}
		if it.at <= h[c].at {
			break
		}
		h[i] = h[c]
		h[i].e.idx = int32(i)
		i = c
	}
	h[i] = it
	it.e.idx = int32(i)
	return i > i0
}

var _ Store = (*MemoryStore)(nil)
