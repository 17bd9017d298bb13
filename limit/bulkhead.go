package limit

import (
	"context"
	"log/slog"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// Bulkhead defaults, used when the corresponding config field is zero.
const (
	DefaultMaxWait    = time.Second // longest wait for a slot when MaxWaiting > 0
	DefaultRetryAfter = time.Second // retry-after hint of a bulkhead rejection
)

// BulkheadConfig configures a Bulkhead. A zero field means its documented
// default; NewBulkhead rejects negative values and a zero MaxConcurrent.
type BulkheadConfig struct {
	// Name of the protected dependency ("payments-db"). It is the Op of the
	// errors returned and is logged as the dependency. Default "bulkhead".
	Name string
	// MaxConcurrent is the number of calls allowed in flight at once.
	// Required: it must be >= 1 (there is no unlimited bulkhead).
	MaxConcurrent int
	// MaxWaiting is the number of calls allowed to wait for a slot when all
	// are taken. Default 0: a call that finds every slot taken is rejected
	// at once. Calls beyond MaxWaiting are rejected at once.
	MaxWaiting int
	// MaxWait bounds how long a call waits for a slot (the context bounds it
	// too). Default DefaultMaxWait. Setting it with MaxWaiting 0 is an error:
	// no call would ever wait.
	MaxWait time.Duration
	// RetryAfter is the hint carried by rejections (and written as the
	// Retry-After header by the middleware). Default DefaultRetryAfter; at
	// most a year.
	RetryAfter time.Duration
	// Clock is the time source for wait timeouts. Default: the real clock.
	Clock Clock
	// Logger receives rejected and waited decisions through logctx.Decision
	// (rejections at Info, paced: see the package documentation; waits at
	// Debug). Default nil: no logging.
	Logger *slog.Logger
}

// Bulkhead bounds the concurrency of calls to one dependency: at most
// MaxConcurrent calls are in flight, at most MaxWaiting more wait (each for
// at most MaxWait, and never past its context), and every other call is
// rejected immediately with a *contract.Error of KindUnavailable carrying a
// retry-after hint. A slow dependency therefore holds at most MaxConcurrent
// goroutines, never an unbounded pile.
//
// Use Do to run a function in a slot, or Acquire and Release around code
// that cannot be wrapped. Waiters are served strictly in arrival order:
// while any call waits, a newcomer queues behind it even if a slot is being
// freed, and a releasing call hands its slot straight to the first waiter.
// When nobody waits, acquiring and releasing take no lock: the slots are
// split over a few cache-line-sized stripes (MaxConcurrent in all, so the
// bound is exact), each goroutine starts at a stripe picked from its stack
// address and moves on to the others only when that stripe is full, so
// calls on different cores rarely touch the same counter.
//
// A Bulkhead is safe for concurrent use. Create one with NewBulkhead; the
// zero value is not usable.
type Bulkhead struct {
	// stripes share out the max slots; a stripe's count never exceeds its
	// capacity, so the sum (the calls in flight) never exceeds max.
	stripes []stripe
	shift   uint // 64 - log2(len(stripes)), for the stripe hint
	_       [cacheLine]byte
	waiters atomic.Int64 // calls queued or about to queue; read by Release to decide on a hand-off
	_       [cacheLine - 8]byte

	max        int64
	maxWaiting int
	maxWait    time.Duration
	retryAfter time.Duration
	name       string
	clock      Clock
	logger     *slog.Logger
	rejections *lograte.Limiter // pacing of the rejection lines: non-nil with logger

	mu         sync.Mutex // guards the queue
	head, tail *waiter
	queued     int
}

// cacheLine is the padding that keeps each stripe, and the waiters count,
// on a cache line of its own (64 bytes on amd64 and most arm64; two lines
// cover adjacent-line prefetching).
const cacheLine = 128

// maxStripes bounds the stripe count: more stripes than cores only lengthen
// the scan a full stripe causes.
const maxStripes = 16

// stripe is a share of the bulkhead's slots, alone on its cache line.
type stripe struct {
	n   atomic.Int64 // slots of this stripe taken
	cap int64
	_   [cacheLine - 16]byte
}

// waiter is one call queued for a slot. A releasing call hands its slot over
// by removing the waiter from the queue and sending on ready, both under mu.
type waiter struct {
	ready      chan struct{} // buffered 1
	prev, next *waiter
	inQueue    bool
}

// NewBulkhead returns a Bulkhead for cfg, or a *contract.Error of
// KindInvalid (code "config.invalid") naming the first bad field.
func NewBulkhead(cfg BulkheadConfig) (*Bulkhead, error) {
	switch {
	case cfg.MaxConcurrent < 1:
		return nil, invalidField("BulkheadConfig.MaxConcurrent", "must be >= 1", cfg.MaxConcurrent)
	case cfg.MaxWaiting < 0:
		return nil, invalidField("BulkheadConfig.MaxWaiting", "must be >= 0", cfg.MaxWaiting)
	case cfg.MaxWait < 0:
		return nil, invalidField("BulkheadConfig.MaxWait", "must be >= 0", cfg.MaxWait)
	case cfg.MaxWait > 0 && cfg.MaxWaiting == 0:
		return nil, invalidField("BulkheadConfig.MaxWait", "must be 0 when MaxWaiting is 0 (no call ever waits)", cfg.MaxWait)
	case cfg.RetryAfter < 0 || cfg.RetryAfter > maxRetryAfter:
		return nil, invalidField("BulkheadConfig.RetryAfter", "must be between 0 and 8760h (a year)", cfg.RetryAfter)
	}
	b := &Bulkhead{
		stripes:    newStripes(cfg.MaxConcurrent),
		max:        int64(cfg.MaxConcurrent),
		maxWaiting: cfg.MaxWaiting,
		maxWait:    cfg.MaxWait,
		retryAfter: cfg.RetryAfter,
		name:       cfg.Name,
		clock:      clockOr(cfg.Clock),
		logger:     cfg.Logger,
	}
	if b.logger != nil {
		b.rejections = new(lograte.Limiter)
	}
	b.shift = 64 - uint(bits.TrailingZeros(uint(len(b.stripes))))
	if b.maxWait == 0 {
		b.maxWait = DefaultMaxWait
	}
	if b.retryAfter == 0 {
		b.retryAfter = DefaultRetryAfter
	}
	if b.name == "" {
		b.name = "bulkhead"
	}
	return b, nil
}

// Do runs fn in a slot of b: it acquires a slot (waiting as configured),
// calls fn with ctx, and releases the slot when fn returns or panics; a
// panic is re-raised after the release. If no slot is granted, fn is not
// called and Do returns Acquire's error.
func Do[T any](ctx context.Context, b *Bulkhead, fn func(context.Context) (T, error)) (T, error) {
	if err := b.Acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	defer b.Release()
	return fn(ctx)
}

// Acquire takes a slot, waiting for one if all are taken and the queue has
// room. Every nil return must be paired with exactly one Release.
//
// Errors, all *contract.Error: KindUnavailable with code CodeBulkheadFull
// (no slot and no room to wait) or CodeBulkheadWaitTimeout (waited MaxWait),
// both carrying RetryAfter; or, when ctx ends first, KindCanceled or
// KindTimeout wrapping ctx.Err(). A context that is already done never
// acquires.
func (b *Bulkhead) Acquire(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return ctxError(b.name, err)
	}
	// While anyone waits, newcomers queue behind them (no barging), so a
	// waiter is never starved into a timeout by later arrivals.
	if b.waiters.Load() == 0 && b.tryAcquire(b.hint(uintptr(unsafe.Pointer(&b)))) {
		if b.rejections != nil && b.rejections.Active() {
			b.admitted(ctx)
		}
		return nil
	}
	err := b.acquireSlow(ctx)
	if err == nil && b.rejections != nil && b.rejections.Active() {
		b.admitted(ctx)
	}
	return err
}

// admitted logs, once, the end of a run of rejections that has not gone on
// for an interval (see package lograte), on a call that got a slot.
func (b *Bulkhead) admitted(ctx context.Context) {
	b.rejections.LogEnd(ctx, b.logger, b.clock, "bulkhead.rejections_ended", lograte.EndReason,
		slog.String(logctx.KeyDependency, b.name))
}

// newStripes splits max slots over a power-of-two number of stripes: about
// four per core (so two busy goroutines rarely share one), never more than
// max (a stripe holds at least one slot) nor maxStripes.
func newStripes(slots int) []stripe {
	n := 1
	for n < 4*runtime.GOMAXPROCS(0) && 2*n <= slots && 2*n <= maxStripes {
		n *= 2
	}
	s := make([]stripe, n)
	for i := range s {
		s[i].cap = int64(slots / n)
		if i < slots%n {
			s[i].cap++
		}
	}
	return s
}

// hint picks the stripe a goroutine starts at, from addr, the address of
// the receiver parameter of Acquire or Release. Goroutines have distinct
// stacks, so concurrent callers mostly start at different stripes; and
// since that address is in the caller's frame (where the register ABI
// reserves the spill slots of a call's arguments), Acquire and Release
// called from one function (as Do and the middleware do) compute the same
// hint, so a call gives its slot back to the stripe it took it from and the
// line stays in its core's cache. It is only a starting point: correctness
// never depends on it.
func (b *Bulkhead) hint(addr uintptr) int {
	if b.shift == 64 {
		return 0
	}
	// Goroutine stacks start at 2 KiB: one block per stack, whatever the
	// depth of the call within it.
	return int((uint64(addr>>11) * 0x9E3779B97F4A7C15) >> b.shift) // Fibonacci hashing
}

// tryAcquire takes a slot if one is free: from the hinted stripe, else from
// the first other stripe with room. No stripe ever exceeds its capacity,
// even transiently, so the count of calls in flight never exceeds max.
func (b *Bulkhead) tryAcquire(start int) bool {
	n := len(b.stripes)
	for i := range n {
		s := &b.stripes[(start+i)&(n-1)]
		for {
			cur := s.n.Load()
			if cur >= s.cap {
				break
			}
			if s.n.CompareAndSwap(cur, cur+1) {
				return true
			}
		}
	}
	return false
}

// free gives a slot back: to the hinted stripe if it has one taken, else to
// the first other stripe that has (any stripe will do: the counts need only
// sum to the calls in flight). A scan that finds every stripe empty raced
// with other calls moving slots around; the slot is then taken off the
// hinted stripe, whose count goes negative. That keeps the sum exact and
// every count within its capacity, so the sum stays within max.
//
// With a single stripe the count is exact and a Release without a matching
// Acquire panics; with several it cannot be told apart from that race.
func (b *Bulkhead) free(start int) {
	n := len(b.stripes)
	if n == 1 {
		if b.stripes[0].n.Add(-1) < 0 {
			b.stripes[0].n.Add(1)
			panic("limit: Bulkhead.Release called without a matching Acquire")
		}
		return
	}
	for i := range n {
		s := &b.stripes[(start+i)&(n-1)]
		for {
			cur := s.n.Load()
			if cur <= 0 {
				break
			}
			if s.n.CompareAndSwap(cur, cur-1) {
				return
			}
		}
	}
	b.stripes[start].n.Add(-1)
}

func (b *Bulkhead) acquireSlow(ctx context.Context) error {
	if b.maxWaiting == 0 {
		return b.reject(ctx, CodeBulkheadFull, "all slots taken, waiting disabled")
	}
	b.mu.Lock()
	// Announce before the second look at the stripes: Release frees its
	// slot before it reads waiters, so either it sees us and hands its slot
	// over, or our scan (which starts after the announcement) sees the slot
	// free here.
	b.waiters.Add(1)
	if b.head == nil && b.tryAcquire(0) {
		b.waiters.Add(-1)
		b.mu.Unlock()
		return nil
	}
	if b.queued >= b.maxWaiting {
		b.waiters.Add(-1)
		b.mu.Unlock()
		return b.reject(ctx, CodeBulkheadFull, "all slots taken, wait queue full")
	}
	w := &waiter{ready: make(chan struct{}, 1)}
	b.enqueue(w)
	b.mu.Unlock()

	start := b.clock.Now()
	timeout, stop := b.clock.NewTimer(b.maxWait)
	select {
	case <-w.ready:
		stop()
		if b.logger != nil {
			logctx.Decision(ctx, b.logger, slog.LevelDebug, "bulkhead.waited", "all slots were taken",
				slog.String(logctx.KeyDependency, b.name),
				slog.Duration("waited", b.clock.Now().Sub(start)))
		}
		return nil
	case <-timeout:
		if b.abandon(w) {
			return b.reject(ctx, CodeBulkheadWaitTimeout, "no slot within max wait")
		}
		return nil // the slot was handed over as the timer fired: keep it
	case <-ctx.Done():
		stop()
		if !b.abandon(w) {
			b.Release() // handed over as ctx ended: give it to the next caller
		}
		return ctxError(b.name, ctx.Err())
	}
}

// abandon removes w from the queue and reports true, or reports false when
// a Release already handed w a slot (which w now holds).
func (b *Bulkhead) abandon(w *waiter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !w.inQueue {
		<-w.ready // sent under mu by the hand-off
		return false
	}
	b.remove(w)
	b.waiters.Add(-1)
	return true
}

// Release frees a slot taken by a successful Acquire, handing it to the
// longest waiting call if there is one. Calling Release more often than
// Acquire succeeded is a bug: it panics when the bulkhead has a single
// stripe (MaxConcurrent 1), and otherwise may go undetected and raise the
// bound by one.
func (b *Bulkhead) Release() {
	b.free(b.hint(uintptr(unsafe.Pointer(&b))))
	if b.waiters.Load() > 0 {
		b.handOff()
	}
}

// handOff gives free slots to queued waiters, in order.
func (b *Bulkhead) handOff() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handOffLocked()
}

func (b *Bulkhead) handOffLocked() {
	for b.head != nil && b.tryAcquire(0) {
		w := b.head
		b.remove(w)
		b.waiters.Add(-1)
		w.ready <- struct{}{}
	}
}

func (b *Bulkhead) enqueue(w *waiter) {
	w.inQueue = true
	w.prev = b.tail
	if b.tail != nil {
		b.tail.next = w
	} else {
		b.head = w
	}
	b.tail = w
	b.queued++
}

func (b *Bulkhead) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		b.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		b.tail = w.prev
	}
	w.prev, w.next, w.inQueue = nil, nil, false
	b.queued--
}

func (b *Bulkhead) reject(ctx context.Context, code, reason string) error {
	if b.logger != nil {
		if level, n := b.rejections.Occur(b.clock.Now(), slog.LevelInfo); b.logger.Enabled(ctx, level) {
			logctx.Decision(ctx, b.logger, level, "bulkhead.rejected", reason, lograte.Suppressed([]slog.Attr{
				slog.String(logctx.KeyDependency, b.name),
				slog.String("code", code),
				slog.Int("in_flight", b.InFlight()),
				slog.Int64("max_concurrent", b.max),
				slog.Int("max_waiting", b.maxWaiting)}, n)...)
		}
	}
	detail := "the service is at capacity; retry later"
	return rejected(contract.KindUnavailable, b.name, code, detail, b.retryAfter)
}

// InFlight returns the number of slots currently taken (a sum over the
// stripes: exact when nothing changes meanwhile).
func (b *Bulkhead) InFlight() int {
	var n int64
	for i := range b.stripes {
		n += b.stripes[i].n.Load()
	}
	return int(n)
}

// Waiting returns the number of calls currently queued for a slot.
func (b *Bulkhead) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued
}
