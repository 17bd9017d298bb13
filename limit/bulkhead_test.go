package limit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit/limittest"
	"github.com/sadpath/sadpath/logctx"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestNewBulkheadRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg   BulkheadConfig
		field string
	}{
		{BulkheadConfig{}, "BulkheadConfig.MaxConcurrent"},
		{BulkheadConfig{MaxConcurrent: -1}, "BulkheadConfig.MaxConcurrent"},
		{BulkheadConfig{MaxConcurrent: 1, MaxWaiting: -1}, "BulkheadConfig.MaxWaiting"},
		{BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: -time.Second}, "BulkheadConfig.MaxWait"},
		{BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Second}, "BulkheadConfig.MaxWait"},
		{BulkheadConfig{MaxConcurrent: 1, RetryAfter: -1}, "BulkheadConfig.RetryAfter"},
		{BulkheadConfig{MaxConcurrent: 1, RetryAfter: math.MaxInt64}, "BulkheadConfig.RetryAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			b, err := NewBulkhead(tt.cfg)
			if b != nil {
				t.Fatalf("got a bulkhead for %+v", tt.cfg)
			}
			wantInvalid(t, err, tt.field)
		})
	}
	_, err := NewBulkhead(BulkheadConfig{MaxConcurrent: -1})
	if got, want := err.Error(), "limit: invalid (config.invalid): BulkheadConfig.MaxConcurrent: must be >= 1, got -1"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestBulkheadDefaults(t *testing.T) {
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1})
	if err != nil {
		t.Fatal(err)
	}
	if b.maxWait != DefaultMaxWait || b.retryAfter != DefaultRetryAfter || b.name != "bulkhead" {
		t.Errorf("defaults = %v %v %q", b.maxWait, b.retryAfter, b.name)
	}
	if _, ok := b.clock.(realClock); !ok {
		t.Errorf("default clock = %T, want realClock", b.clock)
	}
}

func TestBulkheadRejectsWhenFull(t *testing.T) {
	b, err := NewBulkhead(BulkheadConfig{Name: "payments-db", MaxConcurrent: 2, RetryAfter: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if err := b.Acquire(ctx); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	err = b.Acquire(ctx)
	e := wantErr(t, err, contract.KindUnavailable, CodeBulkheadFull)
	if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
		t.Errorf("err %v: want errors.Is ErrUnavailable and retryable", err)
	}
	if d, ok := contract.RetryAfter(err); !ok || d != 3*time.Second {
		t.Errorf("RetryAfter = %v %v, want 3s", d, ok)
	}
	if e.Op != "payments-db" {
		t.Errorf("Op = %q, want the bulkhead name", e.Op)
	}
	if b.InFlight() != 2 {
		t.Errorf("InFlight = %d after a rejection, want 2", b.InFlight())
	}
	b.Release()
	if err := b.Acquire(ctx); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	b.Release()
	b.Release()
	if b.InFlight() != 0 {
		t.Errorf("InFlight = %d, want 0", b.InFlight())
	}
}

func TestBulkheadWaiterGetsReleasedSlot(t *testing.T) {
	clk := limittest.NewClock(epoch)
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Acquire(ctx) }()
	clk.BlockUntilTimers(1) // queued and waiting
	if b.Waiting() != 1 {
		t.Fatalf("Waiting = %d, want 1", b.Waiting())
	}
	// The queue (size 1) is full: the next call is rejected at once.
	wantErr(t, b.Acquire(ctx), contract.KindUnavailable, CodeBulkheadFull)

	b.Release()
	if err := <-done; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if b.InFlight() != 1 || b.Waiting() != 0 {
		t.Fatalf("InFlight %d Waiting %d, want 1 0 (slot handed over)", b.InFlight(), b.Waiting())
	}
	if clk.Timers() != 0 {
		t.Errorf("%d timers still armed after the hand-off", clk.Timers())
	}
	b.Release()
}

func TestBulkheadWaitTimeout(t *testing.T) {
	clk := limittest.NewClock(epoch)
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 4, MaxWait: 100 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Acquire(ctx) }()
	clk.BlockUntilTimers(1)
	clk.Advance(99 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("waiter returned %v before MaxWait", err)
	default:
	}
	clk.Advance(time.Millisecond)
	wantErr(t, <-done, contract.KindUnavailable, CodeBulkheadWaitTimeout)
	if b.Waiting() != 0 || b.InFlight() != 1 {
		t.Fatalf("Waiting %d InFlight %d, want 0 1", b.Waiting(), b.InFlight())
	}
	b.Release()
	if b.InFlight() != 0 {
		t.Fatalf("InFlight = %d, want 0", b.InFlight())
	}
}

func TestBulkheadContextEndsWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind contract.Kind
		is   error
	}{
		{"canceled", contract.KindCanceled, context.Canceled},
		{"deadline", contract.KindTimeout, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := limittest.NewClock(epoch)
			b, _ := NewBulkhead(BulkheadConfig{Name: "db", MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Hour, Clock: clk})
			if err := b.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			ctx := newManualCtx()
			done := make(chan error, 1)
			go func() { done <- b.Acquire(ctx) }()
			clk.BlockUntilTimers(1)
			ctx.end(tc.is)
			err := <-done
			wantErr(t, err, tc.kind, "")
			if !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
			if b.Waiting() != 0 || clk.Timers() != 0 {
				t.Errorf("Waiting %d, timers %d after cancel, want 0 0", b.Waiting(), clk.Timers())
			}
			b.Release()
			if b.InFlight() != 0 {
				t.Errorf("InFlight = %d, want 0", b.InFlight())
			}
		})
	}
}

func TestBulkheadDoneContextNeverAcquires(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err := Do(ctx, b, func(context.Context) (int, error) { ran = true; return 1, nil })
	wantErr(t, err, contract.KindCanceled, "")
	if ran || b.InFlight() != 0 {
		t.Fatalf("ran %v InFlight %d, want false 0", ran, b.InFlight())
	}
}

func TestBulkheadServesWaitersInOrder(t *testing.T) {
	clk := limittest.NewClock(epoch)
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 5, MaxWait: time.Hour, Clock: clk})
	ctx := context.Background()
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 5)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Acquire(ctx); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			order <- i
		}()
		clk.BlockUntilTimers(i + 1) // waiter i is queued before i+1 starts
	}
	for want := range 5 {
		b.Release()
		if got := <-order; got != want {
			t.Fatalf("slot went to waiter %d, want %d (FIFO)", got, want)
		}
	}
	wg.Wait()
	b.Release()
	if b.InFlight() != 0 || b.Waiting() != 0 {
		t.Fatalf("InFlight %d Waiting %d, want 0 0", b.InFlight(), b.Waiting())
	}
}

func TestBulkheadPanicReleasesSlotAndRepanics(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the original panic value", r)
			}
		}()
		_, _ = Do(context.Background(), b, func(context.Context) (int, error) { panic("boom") })
		t.Fatal("Do returned instead of re-panicking")
	}()
	if b.InFlight() != 0 {
		t.Fatalf("InFlight = %d after a panic, want 0", b.InFlight())
	}
	v, err := Do(context.Background(), b, func(context.Context) (string, error) { return "ok", nil })
	if err != nil || v != "ok" {
		t.Fatalf("Do after panic = %q, %v", v, err)
	}
}

func TestBulkheadReleaseWithoutAcquirePanics(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
		if b.InFlight() != 0 {
			t.Fatalf("InFlight = %d after the misuse, want 0", b.InFlight())
		}
		if err := b.Acquire(context.Background()); err != nil {
			t.Fatalf("acquire after misuse: %v", err)
		}
	}()
	b.Release()
}

func TestDoReturnsFnResult(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	sentinel := errors.New("dependency said no")
	v, err := Do(context.Background(), b, func(context.Context) (int, error) { return 7, sentinel })
	if v != 7 || err != sentinel {
		t.Fatalf("Do = %v, %v; want 7, the fn's own error", v, err)
	}
}

// TestBulkheadNeverExceedsMaxConcurrent hammers a bulkhead from many
// goroutines and records the highest number of functions observed running
// at once; it must never pass MaxConcurrent, and every granted call runs
// exactly once.
func TestBulkheadNeverExceedsMaxConcurrent(t *testing.T) {
	const n, goroutines, calls = 4, 64, 300
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: n, MaxWaiting: 8, MaxWait: time.Minute})
	var running, maxSeen, ran, granted, rejected atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				_, err := Do(context.Background(), b, func(context.Context) (struct{}, error) {
					cur := running.Add(1)
					for {
						m := maxSeen.Load()
						if cur <= m || maxSeen.CompareAndSwap(m, cur) {
							break
						}
					}
					ran.Add(1)
					runtimeYield()
					running.Add(-1)
					return struct{}{}, nil
				})
				switch {
				case err == nil:
					granted.Add(1)
				case errors.Is(err, contract.ErrUnavailable):
					rejected.Add(1)
				default:
					t.Errorf("unexpected error %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if m := maxSeen.Load(); m > n || m < 1 {
		t.Fatalf("max in flight observed = %d, want 1..%d", m, n)
	}
	if granted.Load()+rejected.Load() != goroutines*calls {
		t.Fatalf("granted %d + rejected %d != %d calls", granted.Load(), rejected.Load(), goroutines*calls)
	}
	if ran.Load() != granted.Load() {
		t.Fatalf("fn ran %d times for %d granted calls", ran.Load(), granted.Load())
	}
	if b.InFlight() != 0 || b.Waiting() != 0 {
		t.Fatalf("InFlight %d Waiting %d after the storm, want 0 0", b.InFlight(), b.Waiting())
	}
	t.Logf("max in flight %d, granted %d, rejected %d", maxSeen.Load(), granted.Load(), rejected.Load())
}

// TestBulkheadCancellationStorm races releases against waiters whose
// contexts are cancelled at random moments: no slot may leak or be
// granted twice.
func TestBulkheadCancellationStorm(t *testing.T) {
	const n = 2
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: n, MaxWaiting: 1000, MaxWait: time.Minute})
	var running, maxSeen atomic.Int64
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 200 {
				ctx, cancel := context.WithCancel(context.Background())
				if r.IntN(3) == 0 {
					go cancel()
				}
				err := b.Acquire(ctx)
				if err == nil {
					cur := running.Add(1)
					if cur > maxSeen.Load() {
						maxSeen.Store(cur) // racy max is fine: any value > n is a failure
					}
					if cur > n {
						t.Errorf("%d in flight, max %d", cur, n)
					}
					runtimeYield()
					running.Add(-1)
					b.Release()
				} else if !errors.Is(err, context.Canceled) {
					t.Errorf("unexpected error %v", err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if b.InFlight() != 0 || b.Waiting() != 0 {
		t.Fatalf("InFlight %d Waiting %d, want 0 0: a slot leaked", b.InFlight(), b.Waiting())
	}
	// Every slot is still usable.
	for i := range n {
		if err := b.Acquire(context.Background()); err != nil {
			t.Fatalf("acquire %d after storm: %v", i, err)
		}
	}
}

// TestBulkheadModel runs random single-goroutine sequences against a
// counter model.
func TestBulkheadModel(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 2))
		n := 1 + r.IntN(5)
		b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: n})
		held := 0
		for step := range 200 {
			if r.IntN(2) == 0 {
				err := b.Acquire(context.Background())
				if (err == nil) != (held < n) {
					t.Fatalf("seed %d step %d: acquire with %d/%d held returned %v", seed, step, held, n, err)
				}
				if err == nil {
					held++
				}
			} else if held > 0 {
				b.Release()
				held--
			}
			if b.InFlight() != held {
				t.Fatalf("seed %d step %d: InFlight %d, model %d", seed, step, b.InFlight(), held)
			}
		}
	}
}

func TestBulkheadLogsDecisions(t *testing.T) {
	var logs logBuffer
	clk := limittest.NewClock(epoch)
	b, _ := NewBulkhead(BulkheadConfig{Name: "ledger", MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Second, Clock: clk, Logger: logs.logger()})
	ctx := logctx.WithCorrelationID(context.Background(), "corr-1")
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Acquire(ctx) }()
	clk.BlockUntilTimers(1)
	_ = b.Acquire(ctx) // queue full: rejected
	clk.Advance(250 * time.Millisecond)
	b.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.Release()

	recs := logs.records(t)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2 (rejected, waited): %v", len(recs), recs)
	}
	rej, waited := recs[0], recs[1]
	if rej[logctx.KeyDecision] != "bulkhead.rejected" || rej["level"] != "INFO" || rej[logctx.KeyCorrelationID] != "corr-1" ||
		rej[logctx.KeyDependency] != "ledger" || rej["code"] != CodeBulkheadFull || rej[logctx.KeyReason] == "" {
		t.Errorf("rejected record = %v", rej)
	}
	if waited[logctx.KeyDecision] != "bulkhead.waited" || waited["level"] != "DEBUG" || waited[logctx.KeyCorrelationID] != "corr-1" ||
		waited["waited"] != float64(250*time.Millisecond) {
		t.Errorf("waited record = %v", waited)
	}
}

func TestBulkheadNoLoggerNoLogs(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	_ = b.Acquire(context.Background())
	err := b.Acquire(context.Background())
	wantErr(t, err, contract.KindUnavailable, CodeBulkheadFull)
	if got := fmt.Sprint(err); got != "bulkhead: unavailable (limit.bulkhead_full): the service is at capacity; retry later: refused locally" {
		t.Errorf("message = %q", got)
	}
}

// TestBulkheadNoBarging freezes a Release between its two halves (slot
// counted free, hand-off not yet done) and checks that a newcomer queues
// behind the waiter instead of taking the free slot.
func TestBulkheadNoBarging(t *testing.T) {
	clk := limittest.NewClock(epoch)
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 2, MaxWait: time.Hour, Clock: clk})
	ctx := context.Background()
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- b.Acquire(ctx) }()
	clk.BlockUntilTimers(1)

	b.free(0) // first half of Release: the slot is free, the waiter not yet served
	second := make(chan error, 1)
	go func() { second <- b.Acquire(ctx) }()
	clk.BlockUntilTimers(2) // the newcomer queued instead of barging
	if b.InFlight() != 0 || b.Waiting() != 2 {
		t.Fatalf("InFlight %d Waiting %d, want 0 2", b.InFlight(), b.Waiting())
	}
	b.handOff() // second half of Release
	if err := <-first; err != nil {
		t.Fatalf("first waiter: %v", err)
	}
	select {
	case err := <-second:
		t.Fatalf("newcomer got in ahead of its turn: %v", err)
	default:
	}
	b.Release()
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	b.Release()
	if b.InFlight() != 0 || b.Waiting() != 0 {
		t.Fatalf("InFlight %d Waiting %d", b.InFlight(), b.Waiting())
	}
}

// TestBulkheadHandOffRacingWaitEnd hands a slot to a waiter at the moment
// its wait ends (MaxWait fired, or its context was cancelled) and checks no
// slot is lost or leaked: on timeout the waiter keeps the slot it was
// given; on cancellation it gives the slot back.
func TestBulkheadHandOffRacingWaitEnd(t *testing.T) {
	for _, cancelled := range []bool{false, true} {
		for range 30 {
			clk := limittest.NewClock(epoch)
			b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Second, Clock: clk})
			if err := b.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.Acquire(ctx) }()
			clk.BlockUntilTimers(1)

			b.mu.Lock() // the waiter cannot abandon until the hand-off is done
			if cancelled {
				cancel()
			} else {
				clk.Advance(time.Second)
			}
			b.free(0)         // the holder releases …
			b.handOffLocked() // … and hands its slot to the waiter
			b.mu.Unlock()

			err := <-done
			cancel()
			// A waiter parked in select has its case fixed by cancel; one
			// that had not parked yet may see both ready and take the slot.
			if cancelled && err != nil {
				if !errors.Is(err, context.Canceled) || b.InFlight() != 0 {
					t.Fatalf("cancelled: err %v InFlight %d, want Canceled and the slot given back", err, b.InFlight())
				}
			} else {
				if err != nil || b.InFlight() != 1 {
					t.Fatalf("timed out: err %v InFlight %d, want the handed-over slot kept", err, b.InFlight())
				}
				b.Release()
			}
			if b.InFlight() != 0 || b.Waiting() != 0 {
				t.Fatalf("InFlight %d Waiting %d", b.InFlight(), b.Waiting())
			}
		}
	}
}

// TestBulkheadSlotsReleasedByOtherGoroutines acquires slots on some
// goroutines and releases them on others, so releases land on stripes other
// than the ones the slots came from (counts may go negative). The bound must
// hold throughout, no slot may leak, and afterwards exactly MaxConcurrent
// slots can be taken again.
func TestBulkheadSlotsReleasedByOtherGoroutines(t *testing.T) {
	const slots = 16
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: slots})
	if len(b.stripes) < 2 && runtime.GOMAXPROCS(0) > 1 {
		t.Fatalf("%d stripes for MaxConcurrent %d, want several", len(b.stripes), slots)
	}
	held := make(chan struct{}, slots)
	var inFlight, maxSeen atomic.Int64
	var wg sync.WaitGroup
	for range 8 { // acquirers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if b.Acquire(context.Background()) != nil {
					runtimeYield()
					continue
				}
				cur := inFlight.Add(1)
				for m := maxSeen.Load(); cur > m && !maxSeen.CompareAndSwap(m, cur); m = maxSeen.Load() {
				}
				held <- struct{}{}
			}
		}()
	}
	stop := make(chan struct{})
	var rel sync.WaitGroup
	for range 8 { // releasers
		rel.Add(1)
		go func() {
			defer rel.Done()
			for {
				select {
				case <-held:
					inFlight.Add(-1)
					b.Release()
				case <-stop:
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rel.Wait()
	for len(held) > 0 {
		<-held
		inFlight.Add(-1)
		b.Release()
	}
	if m := maxSeen.Load(); m > slots {
		t.Fatalf("%d slots held at once, MaxConcurrent %d", m, slots)
	}
	if got := b.InFlight(); got != 0 {
		t.Fatalf("InFlight %d after every slot was released", got)
	}
	for i := range b.stripes {
		if n, c := b.stripes[i].n.Load(), b.stripes[i].cap; n > c {
			t.Fatalf("stripe %d holds %d of %d", i, n, c)
		}
	}
	for i := range slots {
		if err := b.Acquire(context.Background()); err != nil {
			t.Fatalf("slot %d of %d refused after the churn: %v", i+1, slots, err)
		}
	}
	if err := b.Acquire(context.Background()); err == nil {
		t.Fatal("a slot beyond MaxConcurrent was granted")
	}
}
