package idempotency_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// faultyStore wraps a Store and fails the operations its hooks select.
type faultyStore struct {
	idempotency.Store
	mu       sync.Mutex
	claimErr func() error
	renewErr func() error
	compErr  func() error
	relErr   func() error
}

var errDown = contract.New(contract.KindUnavailable, "test.store", "store down")

func (f *faultyStore) hook(h *func() error) error {
	f.mu.Lock()
	fn := *h
	f.mu.Unlock()
	if fn != nil {
		return fn()
	}
	return nil
}

func (f *faultyStore) set(h *func() error, fn func() error) {
	f.mu.Lock()
	*h = fn
	f.mu.Unlock()
}

func (f *faultyStore) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	if err := f.hook(&f.claimErr); err != nil {
		return idempotency.Claim{}, err
	}
	return f.Store.Claim(ctx, req)
}

func (f *faultyStore) Complete(ctx context.Context, k idempotency.Key, tok uint64, r idempotency.Result) error {
	if err := f.hook(&f.compErr); err != nil {
		return err
	}
	return f.Store.Complete(ctx, k, tok, r)
}

func (f *faultyStore) Release(ctx context.Context, k idempotency.Key, tok uint64) error {
	if err := f.hook(&f.relErr); err != nil {
		return err
	}
	return f.Store.Release(ctx, k, tok)
}

func (f *faultyStore) Renew(ctx context.Context, k idempotency.Key, tok uint64, d time.Duration) error {
	if err := f.hook(&f.renewErr); err != nil {
		return err
	}
	return f.Store.Renew(ctx, k, tok, d)
}

// countingMeter is a MeterProvider whose counters record Add calls by
// their "outcome" attribute.
type countingMeter struct {
	noop.MeterProvider
	mu     sync.Mutex
	counts map[string]int64
}

func newCountingMeter() *countingMeter { return &countingMeter{counts: map[string]int64{}} }

func (c *countingMeter) Meter(string, ...metric.MeterOption) metric.Meter {
	return countingMeterM{c: c}
}

func (c *countingMeter) get(outcome string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[outcome]
}

type countingMeterM struct {
	noop.Meter
	c *countingMeter
}

func (m countingMeterM) Int64Counter(string, ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return countingCounter{c: m.c}, nil
}

type countingCounter struct {
	embedded.Int64Counter
	c *countingMeter
}

func (cc countingCounter) Add(_ context.Context, n int64, opts ...metric.AddOption) {
	set := metric.NewAddConfig(opts).Attributes()
	v, _ := set.Value(attribute.Key("outcome"))
	cc.c.mu.Lock()
	cc.c.counts[v.AsString()] += n
	cc.c.mu.Unlock()
}

func (cc countingCounter) Enabled(context.Context) bool { return true }

// advanceUntil advances clk by step until done is closed, yielding between
// steps so goroutines parked on the clock can run. It never waits on real
// time for time to pass: the fake clock is the only clock.
func advanceUntil(t *testing.T, clk *storetest.FakeClock, step time.Duration, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second) // a hang guard, not a timing assertion
	for {
		select {
		case <-done:
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("advanceUntil: the goroutine never finished")
		}
		clk.Advance(step)
		time.Sleep(50 * time.Microsecond)
	}
}

// waitFor yields until cond holds (a goroutine reached a point), with a hang guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// unreachableStore is a store this process can no longer reach, as a
// network partition without a connection reset makes it: the calls its
// flags select block until their context ends (a store call is bounded
// only by its context), reporting each on entered (when there is room).
type unreachableStore struct {
	idempotency.Store
	complete, release, renew bool
	entered                  chan enteredCall
}

type enteredCall struct {
	op       string
	err      error     // the context's error at entry
	deadline time.Time // the context's deadline, zero if none
	at       time.Time // real time, at entry
}

func (s *unreachableStore) hang(ctx context.Context, op string) error {
	select {
	case s.entered <- enteredCall{op: op, err: ctx.Err(), deadline: deadline(ctx), at: time.Now()}:
	default:
	}
	<-ctx.Done()
	return contract.Wrap(contract.KindOf(ctx.Err()), "test.store", ctx.Err())
}

func (s *unreachableStore) Complete(ctx context.Context, k idempotency.Key, tok uint64, r idempotency.Result) error {
	if s.complete {
		return s.hang(ctx, "complete")
	}
	return s.Store.Complete(ctx, k, tok, r)
}

func (s *unreachableStore) Release(ctx context.Context, k idempotency.Key, tok uint64) error {
	if s.release {
		return s.hang(ctx, "release")
	}
	return s.Store.Release(ctx, k, tok)
}

func (s *unreachableStore) Renew(ctx context.Context, k idempotency.Key, tok uint64, d time.Duration) error {
	if s.renew {
		return s.hang(ctx, "renew")
	}
	return s.Store.Renew(ctx, k, tok, d)
}

func deadline(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

// checkBounded fails unless c's context has not ended on entry and has a
// deadline at most bound after it.
func checkBounded(t *testing.T, c enteredCall, bound time.Duration) {
	t.Helper()
	if c.err != nil {
		t.Fatalf("%s: context already ended on entry (%v): the caller's cancellation must not end it", c.op, c.err)
	}
	if c.deadline.IsZero() {
		t.Fatalf("%s: no deadline: an unreachable store holds the call forever", c.op)
	}
	if d := c.deadline.Sub(c.at); d > bound {
		t.Fatalf("%s: deadline %v after entry, want at most %v", c.op, d, bound)
	}
}
