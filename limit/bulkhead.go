package limit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/contract"
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
	// (rejections at Info, waits at Debug). Default nil: no logging.
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
// When nobody waits, acquiring and releasing touch one atomic counter and
// no lock.
//
// A Bulkhead is safe for concurrent use. Create one with NewBulkhead; the
// zero value is not usable.
type Bulkhead struct {
	inflight atomic.Int64 // slots taken; never above max
	waiters  atomic.Int64 // calls queued or about to queue; read by Release to decide on a hand-off

	max        int64
	maxWaiting int
	maxWait    time.Duration
	retryAfter time.Duration
	name       string
	clock      Clock
	logger     *slog.Logger

	mu         sync.Mutex // guards the queue
	head, tail *waiter
	queued     int
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
		max:        int64(cfg.MaxConcurrent),
		maxWaiting: cfg.MaxWaiting,
		maxWait:    cfg.MaxWait,
		retryAfter: cfg.RetryAfter,
		name:       cfg.Name,
		clock:      clockOr(cfg.Clock),
		logger:     cfg.Logger,
	}
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
	if b.waiters.Load() == 0 && b.tryAcquire() {
		return nil
	}
	return b.acquireSlow(ctx)
}

// tryAcquire takes a slot if one is free. It never lets inflight exceed max,
// even transiently, so Release can trust what it reads.
func (b *Bulkhead) tryAcquire() bool {
	for {
		cur := b.inflight.Load()
		if cur >= b.max {
			return false
		}
		if b.inflight.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

func (b *Bulkhead) acquireSlow(ctx context.Context) error {
	if b.maxWaiting == 0 {
		return b.reject(ctx, CodeBulkheadFull, "all slots taken, waiting disabled")
	}
	b.mu.Lock()
	// Announce before the second look at inflight: Release decrements
	// inflight before it reads waiters, so either it sees us and hands its
	// slot over, or we see its slot free here.
	b.waiters.Add(1)
	if b.head == nil && b.tryAcquire() {
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
// Acquire succeeded is a bug and panics.
func (b *Bulkhead) Release() {
	if b.inflight.Add(-1) < 0 {
		b.inflight.Add(1)
		panic("limit: Bulkhead.Release called without a matching Acquire")
	}
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
	for b.head != nil && b.tryAcquire() {
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
		logctx.Decision(ctx, b.logger, slog.LevelInfo, "bulkhead.rejected", reason,
			slog.String(logctx.KeyDependency, b.name),
			slog.String("code", code),
			slog.Int64("in_flight", b.inflight.Load()),
			slog.Int64("max_concurrent", b.max),
			slog.Int("max_waiting", b.maxWaiting))
	}
	detail := "the service is at capacity; retry later"
	return rejected(contract.KindUnavailable, b.name, code, detail, b.retryAfter)
}

// InFlight returns the number of slots currently taken.
func (b *Bulkhead) InFlight() int { return int(b.inflight.Load()) }

// Waiting returns the number of calls currently queued for a slot.
func (b *Bulkhead) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued
}
