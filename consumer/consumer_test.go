package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

func event(subject string, seq uint64, data string) contract.Event {
	return contract.Event{
		ID: fmt.Sprintf("%s-%d", subject, seq), Source: "/ledger", SpecVersion: "1.0", Type: "com.example.posted.v1",
		Subject: subject, Sequence: seq, CorrelationID: fmt.Sprintf("corr-%s-%d", subject, seq), Data: json.RawMessage(data),
	}
}

func encode(t testing.TB, e contract.Event) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func memStore(t testing.TB) idempotency.Store {
	t.Helper()
	s, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustConsumer(t testing.TB, cfg consumer.Config) *consumer.Consumer {
	t.Helper()
	c, err := consumer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustGuard(t testing.TB, cfg ordering.Config) *ordering.Guard {
	t.Helper()
	g, err := ordering.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// dlq records dead-lettered deliveries.
type dlq struct {
	mu   sync.Mutex
	errs []error
}

func (q *dlq) add(_ context.Context, _ consumer.Delivery, _ *contract.Event, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.errs = append(q.errs, err)
}

func (q *dlq) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.errs)
}

func TestDuplicateDeliveryAppliedOnce(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	c := mustConsumer(t, consumer.Config{
		Store:   memStore(t),
		Guard:   mustGuard(t, ordering.Config{}),
		Handler: func(context.Context, *contract.Event) error { calls.Add(1); return nil },
	})
	data := encode(t, event("acct", 1, `{"amount":5}`))
	r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 1})
	if r.Action != consumer.Ack || r.Decision != ordering.Apply || r.Reason != "applied" {
		t.Fatalf("first delivery: %+v", r)
	}
	r = c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 2})
	if r.Action != consumer.Ack || r.Reason != "duplicate: already processed" {
		t.Fatalf("redelivery: %+v, want ack as duplicate by (source, id)", r)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", calls.Load())
	}
}

// boundedMemory is an ordering.Memory that records sequences up to max.
type boundedMemory struct {
	*ordering.Memory
	max uint64
}

func (b boundedMemory) MaxSequence() uint64 { return b.max }

// An event whose sequence the Guard's State cannot record is dead-lettered
// at once as unorderable, without running the handler, and its id is not
// kept as processed.
func TestSequenceBeyondStateDeadLettered(t *testing.T) {
	mem, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	var q dlq
	c := mustConsumer(t, consumer.Config{
		Store:      memStore(t),
		Guard:      mustGuard(t, ordering.Config{State: boundedMemory{Memory: mem, max: 100}}),
		Handler:    func(context.Context, *contract.Event) error { calls.Add(1); return nil },
		DeadLetter: q.add,
	})
	r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("acct", 101, `{}`)), Attempt: 1})
	if r.Action != consumer.DeadLetter || r.Reason != "event cannot be ordered" || !errors.Is(r.Err, ordering.ErrInvalidEvent) || q.len() != 1 || calls.Load() != 0 {
		t.Fatalf("%+v (dead-lettered %d, handler ran %d): want dead-lettered as unorderable", r, q.len(), calls.Load())
	}
}

// An event further ahead than the Guard's MaxGap (an absurd sequence) is
// dead-lettered at once as unorderable, not held: the subject is not
// skipped to it, and its next real event is applied.
func TestSequenceBeyondMaxGapDeadLettered(t *testing.T) {
	var calls atomic.Int64
	var q dlq
	c := mustConsumer(t, consumer.Config{
		Store:      memStore(t),
		Guard:      mustGuard(t, ordering.Config{Gap: ordering.GapHold, OnTimeout: ordering.TimeoutSkip, MaxGap: 10_000}),
		Handler:    func(context.Context, *contract.Event) error { calls.Add(1); return nil },
		DeadLetter: q.add,
	})
	ctx := context.Background()
	r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("acct", 1<<63, `{}`)), Attempt: 1})
	if r.Action != consumer.DeadLetter || r.Reason != "event cannot be ordered" || !errors.Is(r.Err, ordering.ErrInvalidEvent) || q.len() != 1 || calls.Load() != 0 {
		t.Fatalf("%+v (dead-lettered %d, handler ran %d): want dead-lettered as unorderable", r, q.len(), calls.Load())
	}
	if r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("acct", 1, `{}`)), Attempt: 1}); r.Action != consumer.Ack || calls.Load() != 1 {
		t.Fatalf("next real event: %+v (handler ran %d), want applied", r, calls.Load())
	}
}

func TestDedupWithoutGuard(t *testing.T) {
	var calls atomic.Int64
	c := mustConsumer(t, consumer.Config{
		Store:   memStore(t),
		Handler: func(context.Context, *contract.Event) error { calls.Add(1); return nil },
	})
	e := event("", 0, `{}`) // unordered events are fine without a Guard
	for i := 0; i < 3; i++ {
		if r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, e)}); r.Action != consumer.Ack {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", calls.Load())
	}
}

func TestBadEventsAreDeadLettered(t *testing.T) {
	big := event("acct", 1, `"`+strings.Repeat("x", 2000)+`"`)
	noSeq := event("acct", 0, `{}`)
	noSubject := event("", 3, `{}`)
	cases := []struct {
		name string
		data []byte
		kind error
	}{
		{"empty", nil, contract.ErrMalformed},
		{"not json", []byte("{nope"), contract.ErrMalformed},
		{"array", []byte("[1,2]"), contract.ErrMalformed},
		{"missing id", []byte(`{"source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":1}`), contract.ErrInvalid},
		{"trailing data", append(encode(t, event("a", 1, `{}`)), []byte(`{}`)...), contract.ErrMalformed},
		{"too large", encode(t, big), contract.ErrTooLarge},
		{"no sequence", encode(t, noSeq), contract.ErrInvalid},
		{"no subject", encode(t, noSubject), contract.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var q dlq
			var calls atomic.Int64
			c := mustConsumer(t, consumer.Config{
				Guard:         mustGuard(t, ordering.Config{}),
				Store:         memStore(t),
				MaxEventBytes: 1024,
				DeadLetter:    q.add,
				Handler:       func(context.Context, *contract.Event) error { calls.Add(1); return nil },
			})
			r := c.Handle(context.Background(), consumer.Delivery{Data: tc.data, Attempt: 1})
			if r.Action != consumer.DeadLetter || !errors.Is(r.Err, tc.kind) {
				t.Fatalf("%+v, want dead-letter matching %v", r, tc.kind)
			}
			if q.len() != 1 || calls.Load() != 0 {
				t.Fatalf("dead-letter callback %d times, handler %d times", q.len(), calls.Load())
			}
		})
	}
}

func TestTransientFailureBacksOffThenDeadLetters(t *testing.T) {
	var q dlq
	c := mustConsumer(t, consumer.Config{
		Guard:       mustGuard(t, ordering.Config{}),
		Store:       memStore(t),
		MaxAttempts: 5,
		MinBackoff:  100 * time.Millisecond,
		MaxBackoff:  time.Second,
		DeadLetter:  q.add,
		Handler: func(context.Context, *contract.Event) error {
			return contract.New(contract.KindUnavailable, "ledger.db", "connection refused")
		},
	})
	data := encode(t, event("acct", 1, `{}`))
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i, d := range want {
		r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: i + 1})
		if r.Action != consumer.Retry || r.Delay != d || !errors.Is(r.Err, contract.ErrUnavailable) {
			t.Fatalf("attempt %d: %+v, want retry after %s", i+1, r, d)
		}
	}
	r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: 5})
	if r.Action != consumer.DeadLetter || q.len() != 1 || !strings.Contains(r.Reason, "gave up after 5 attempts") {
		t.Fatalf("attempt 5: %+v (dlq %d), want dead-letter", r, q.len())
	}
}

// With MaxBackoff near the largest Duration, late attempts wait at most
// MaxBackoff: the doubling never overflows into a negative or zero delay.
func TestBackoffSaturatesAtMaxBackoff(t *testing.T) {
	maxd := time.Duration(math.MaxInt64)
	c := mustConsumer(t, consumer.Config{
		MaxAttempts: 200, MinBackoff: time.Second, MaxBackoff: maxd,
		Handler: func(context.Context, *contract.Event) error {
			return contract.New(contract.KindUnavailable, "ledger.db", "down")
		},
	})
	data := encode(t, event("acct", 1, `{}`))
	prev := time.Duration(0)
	for attempt := 1; attempt < 200; attempt += 7 {
		r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: attempt})
		if r.Action != consumer.Retry || r.Delay < prev || r.Delay <= 0 {
			t.Fatalf("attempt %d: %+v after a delay of %s: want a delay that never shrinks", attempt, r, prev)
		}
		prev = r.Delay
	}
	if prev != maxd {
		t.Fatalf("late delay %s, want MaxBackoff", prev)
	}
}

func TestRetryAfterHintHonoured(t *testing.T) {
	c := mustConsumer(t, consumer.Config{
		Handler: func(context.Context, *contract.Event) error {
			return contract.New(contract.KindRateLimited, "psp", "slow down").WithRetryAfter(7 * time.Second)
		},
	})
	r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{}`))})
	if r.Action != consumer.Retry || r.Delay != 7*time.Second {
		t.Fatalf("%+v, want retry after 7s", r)
	}
}

// A retry-after hint is capped by MaxBackoff: a downstream answering
// "Retry-After: 86400" (or a hostile one) does not park the event, and the
// events a Guard holds behind it, for a day.
func TestRetryAfterHintCappedByMaxBackoff(t *testing.T) {
	for name, maxb := range map[string]time.Duration{"default": 0, "set": 5 * time.Second} {
		t.Run(name, func(t *testing.T) {
			c := mustConsumer(t, consumer.Config{
				MaxBackoff: maxb,
				Handler: func(context.Context, *contract.Event) error {
					return contract.New(contract.KindUnavailable, "psp", "come back tomorrow").WithRetryAfter(24 * time.Hour)
				},
			})
			want := maxb
			if want == 0 {
				want = time.Minute
			}
			r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{}`))})
			if r.Action != consumer.Retry || r.Delay != want {
				t.Fatalf("%+v, want retry after %s (MaxBackoff)", r, want)
			}
		})
	}
}

func TestPermanentFailureAndPanicDeadLetter(t *testing.T) {
	for name, h := range map[string]consumer.Handler{
		"invalid": func(context.Context, *contract.Event) error {
			return contract.New(contract.KindInvalid, "ledger", "amount out of range")
		},
		"unclassified": func(context.Context, *contract.Event) error { return errors.New("mystery") },
		"panic":        func(context.Context, *contract.Event) error { panic("boom") },
		// A nil *contract.Error returned as error is not a nil error (the
		// typed nil pitfall); its methods must not crash the classification.
		"typed nil": func(context.Context, *contract.Event) error {
			var err *contract.Error
			return err
		},
		// A dependency that asks not to be retried (unlike a full
		// ordering state, which the handler never sees: see
		// TestFullOrderingStateRetries).
		"overloaded": func(context.Context, *contract.Event) error {
			return contract.New(contract.KindOverloaded, "psp", "shedding load")
		},
	} {
		t.Run(name, func(t *testing.T) {
			var q dlq
			g := mustGuard(t, ordering.Config{})
			c := mustConsumer(t, consumer.Config{Guard: g, Store: memStore(t), DeadLetter: q.add, Handler: h})
			r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{}`)), Attempt: 1})
			if r.Action != consumer.DeadLetter || q.len() != 1 {
				t.Fatalf("%+v, want dead-letter at first attempt", r)
			}
			if last, _ := g.State().Last(context.Background(), "a"); last != 0 {
				t.Fatalf("failed event recorded as applied: last %d", last)
			}
		})
	}
}

func TestCanceledContextRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := mustConsumer(t, consumer.Config{Handler: func(ctx context.Context, _ *contract.Event) error {
		cancel()
		return ctx.Err()
	}})
	if r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("a", 1, `{}`))}); r.Action != consumer.Retry {
		t.Fatalf("%+v: shutting down is not the event's fault: retry", r)
	}
}

// TestCanceledContextAtLastAttemptRetries: a shutdown (Handle's context
// canceled) while an event is on its last attempt is still not the event's
// fault: it is retried, never dead-lettered, whatever failed on the way
// (the Handler, the dedup store).
func TestCanceledContextAtLastAttemptRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var q dlq
	c := mustConsumer(t, consumer.Config{
		MaxAttempts: 3,
		DeadLetter:  q.add,
		Handler: func(ctx context.Context, _ *contract.Event) error {
			cancel()
			return ctx.Err()
		},
	})
	r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("a", 1, `{}`)), Attempt: 3})
	if r.Action != consumer.Retry || q.len() != 0 {
		t.Fatalf("%+v (dead letters %d): a shutdown on the last attempt dead-lettered the event", r, q.len())
	}
}

// stepClock is an ordering.Clock moved by hand.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }

// TestFullOrderingStateRetries: an ordering.Memory holding MaxSubjects
// subjects, none idle yet, refuses a new subject with KindOverloaded. The
// handler never ran and room is made as subjects go idle: the event is
// retried with the backoff (not dead-lettered as a permanent handler
// failure), until MaxAttempts.
func TestFullOrderingStateRetries(t *testing.T) {
	ctx := context.Background()
	clk := &stepClock{now: time.Unix(1_700_000_000, 0)}
	mem, err := ordering.NewMemory(ordering.MemoryConfig{MaxSubjects: 1, IdleTTL: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	var q dlq
	ran := 0
	c := mustConsumer(t, consumer.Config{
		Guard:       mustGuard(t, ordering.Config{State: mem, Clock: clk}),
		Store:       memStore(t),
		MaxAttempts: 3,
		MinBackoff:  time.Second,
		Handler:     func(context.Context, *contract.Event) error { ran++; return nil },
		DeadLetter:  q.add,
	})
	if r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("acct-a", 1, `{}`))}); r.Action != consumer.Ack {
		t.Fatalf("first subject: %+v", r)
	}
	clk.now = clk.now.Add(time.Second)
	data := encode(t, event("acct-b", 1, `{}`))
	for i, delay := range []time.Duration{time.Second, 2 * time.Second} {
		attempt := i + 1
		r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: attempt})
		if r.Action != consumer.Retry || r.Delay != delay || r.Reason != "ordering state full" || !errors.Is(r.Err, contract.ErrOverloaded) {
			t.Fatalf("attempt %d on a full state: %+v, want a retry after %s (ordering state full)", attempt, r, delay)
		}
	}
	if ran != 1 || q.len() != 0 {
		t.Fatalf("handler ran %d times, %d dead letters; want the new subject's event neither run nor dead-lettered", ran, q.len())
	}
	// A minute later acct-a is idle and makes room: the redelivery applies.
	clk.now = clk.now.Add(time.Minute)
	if r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 3}); r.Action != consumer.Ack || ran != 2 {
		t.Fatalf("redelivery once a subject is idle: %+v (handler ran %d), want applied", r, ran)
	}
	// MaxAttempts still bounds the retries.
	r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("acct-c", 1, `{}`)), Attempt: 3})
	if r.Action != consumer.DeadLetter || r.Reason != "ordering state full; gave up after 3 attempts" || q.len() != 1 || ran != 2 {
		t.Fatalf("last attempt on a full state: %+v, want dead-letter", r)
	}
}

// TestSubjectTooLargeForOrderingMemoryDeadLetters: a subject that would not
// fit an ordering.Memory's MaxBytes even with the state empty can never be
// recorded. It is dead-lettered at its first attempt (ErrInvalidEvent), not
// retried as "ordering state full" until MaxAttempts while the subject's
// later events wait behind it.
func TestSubjectTooLargeForOrderingMemoryDeadLetters(t *testing.T) {
	ctx := context.Background()
	mem, err := ordering.NewMemory(ordering.MemoryConfig{MaxBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var q dlq
	ran := 0
	c := mustConsumer(t, consumer.Config{
		Guard:       mustGuard(t, ordering.Config{State: mem}),
		Store:       memStore(t),
		MaxAttempts: 10,
		Handler:     func(context.Context, *contract.Event) error { ran++; return nil },
		DeadLetter:  q.add,
	})
	r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event(strings.Repeat("s", 2<<10), 1, `{}`)), Attempt: 1})
	if r.Action != consumer.DeadLetter || !errors.Is(r.Err, ordering.ErrInvalidEvent) || q.len() != 1 || ran != 0 {
		t.Fatalf("a subject larger than MaxBytes: %+v (handler ran %d, %d dead letters); want dead-lettered at the first attempt", r, ran, q.len())
	}
	if r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("acct", 1, `{}`)), Attempt: 1}); r.Action != consumer.Ack || ran != 1 {
		t.Fatalf("a short subject: %+v, want applied", r)
	}
}

func TestGapRejectedIsRetried(t *testing.T) {
	c := mustConsumer(t, consumer.Config{
		Guard:      mustGuard(t, ordering.Config{RetryAfter: 2 * time.Second}),
		Store:      memStore(t),
		MinBackoff: time.Second,
		Handler:    func(context.Context, *contract.Event) error { return nil },
	})
	r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 2, `{}`)), Attempt: 1})
	if r.Action != consumer.Retry || r.Decision != ordering.Gap || r.Delay != 2*time.Second || !errors.Is(r.Err, ordering.ErrGap) {
		t.Fatalf("%+v, want retry after the gap hint", r)
	}
	// The claim was released: the redelivery, once 1 arrived, applies.
	if r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{}`))}); r.Action != consumer.Ack {
		t.Fatal(r)
	}
	if r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 2, `{}`)), Attempt: 2}); r.Action != consumer.Ack || r.Decision != ordering.Apply {
		t.Fatalf("redelivered 2: %+v", r)
	}
}

func TestHeldEventSettledWithItsOwnCoordinates(t *testing.T) {
	var mu sync.Mutex
	seen := map[uint64]string{}
	c := mustConsumer(t, consumer.Config{
		Guard: mustGuard(t, ordering.Config{Gap: ordering.GapHold}),
		Store: memStore(t),
		Handler: func(ctx context.Context, e *contract.Event) error {
			mu.Lock()
			defer mu.Unlock()
			seen[e.Sequence] = logctx.CorrelationID(ctx)
			return nil
		},
	})
	var settled []consumer.Result
	d := consumer.Delivery{Data: encode(t, event("a", 2, `{}`)), Settle: func(r consumer.Result) { settled = append(settled, r) }}
	if r := c.Handle(context.Background(), d); r.Action != consumer.Hold {
		t.Fatalf("gap with Settle: %+v, want hold", r)
	}
	if r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{}`))}); r.Action != consumer.Ack {
		t.Fatal(r)
	}
	if len(settled) != 1 || settled[0].Action != consumer.Ack || settled[0].Event.Sequence != 2 {
		t.Fatalf("settled %+v, want one ack for sequence 2", settled)
	}
	if seen[1] != "corr-a-1" || seen[2] != "corr-a-2" {
		t.Fatalf("handler coordinates %v: each event must carry its own correlation id", seen)
	}
	// The held event's id was recorded: a redelivery is a duplicate.
	if r := c.Handle(context.Background(), d); r.Action != consumer.Ack || r.Reason != "duplicate: already processed" {
		t.Fatalf("redelivery of settled held event: %+v", r)
	}
}

// TestEventWithoutCorrelationIDInheritsNone: a held event without a
// correlation id is applied later, on the call of the event that filled its
// gap or of Sweep. Its Handler and the decision logs of its settlement must
// not carry that other call's correlation id; an event handled on its own
// Handle call keeps the id of the caller's context.
func TestEventWithoutCorrelationIDInheritsNone(t *testing.T) {
	clk := &stepClock{now: time.Unix(1_700_000_000, 0)}
	var buf bytes.Buffer
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	failed := false
	c := mustConsumer(t, consumer.Config{
		Guard:  mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk}),
		Store:  memStore(t),
		Logger: slog.New(h),
		Handler: func(ctx context.Context, e *contract.Event) error {
			seen[fmt.Sprintf("%s/%d", e.Subject, e.Sequence)] = logctx.CorrelationID(ctx)
			if e.Subject == "a" && e.Sequence == 3 && !failed {
				failed = true
				return contract.New(contract.KindUnavailable, "ledger", "down")
			}
			return nil
		},
	})
	anonymous := func(subject string, seq uint64) []byte {
		e := event(subject, seq, `{}`)
		e.CorrelationID = "" // a producer that sets none
		return encode(t, e)
	}
	var settled []consumer.Result
	hold := func(data []byte) {
		t.Helper()
		d := consumer.Delivery{Data: data, Settle: func(r consumer.Result) { settled = append(settled, r) }}
		if r := c.Handle(context.Background(), d); r.Action != consumer.Hold {
			t.Fatalf("%+v, want hold", r)
		}
	}
	// Released by the event that fills the gap: 2 applied, 3 fails.
	hold(anonymous("a", 2))
	hold(anonymous("a", 3))
	if r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{}`))}); r.Action != consumer.Ack {
		t.Fatal(r)
	}
	// Released by a Sweep whose context carries an id.
	hold(anonymous("b", 2))
	clk.now = clk.now.Add(10 * time.Second)
	if n := c.Sweep(logctx.WithCorrelationID(context.Background(), "sweeper")); n != 1 {
		t.Fatalf("sweep settled %d subjects, want 1", n)
	}
	// Handled on its own call: the caller's id stands.
	if r := c.Handle(logctx.WithCorrelationID(context.Background(), "req-9"), consumer.Delivery{Data: anonymous("c", 1)}); r.Action != consumer.Ack {
		t.Fatal(r)
	}
	if len(settled) != 3 || settled[1].Action != consumer.Retry {
		t.Fatalf("settled %+v, want 2 acked, 3 retried, b/2 acked", settled)
	}
	want := map[string]string{"a/1": "corr-a-1", "a/2": "", "a/3": "", "b/2": "", "c/1": "req-9"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("handler correlation ids %v, want %v", seen, want)
	}
	var retried bool
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["decision"] == "event retry scheduled" && m["sequence"] == 3.0 {
			retried = true
			if id, ok := m[logctx.KeyCorrelationID]; ok {
				t.Fatalf("retry of held a/3 logged under correlation id %v: %s", id, line)
			}
		}
	}
	if !retried {
		t.Fatalf("no retry logged for a/3:\n%s", buf.String())
	}
}

func TestHostileCorrelationIDLeftOut(t *testing.T) {
	var seen string
	c := mustConsumer(t, consumer.Config{Handler: func(ctx context.Context, _ *contract.Event) error {
		seen = logctx.CorrelationID(ctx)
		return nil
	}})
	e := event("a", 1, `{}`)
	e.CorrelationID = "line\nbreak\x1b[31m"
	if r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, e)}); r.Action != consumer.Ack {
		t.Fatalf("%+v: a bad correlation id is no reason to reject the event", r)
	}
	if seen != "" {
		t.Fatalf("handler saw correlation id %q, want it left out", seen)
	}
}

func TestSameIDOtherContentDeadLetters(t *testing.T) {
	var q dlq
	c := mustConsumer(t, consumer.Config{Store: memStore(t), DeadLetter: q.add, Handler: func(context.Context, *contract.Event) error { return nil }})
	if r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{"amount":1}`))}); r.Action != consumer.Ack {
		t.Fatal(r)
	}
	r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{"amount":999}`))})
	if r.Action != consumer.DeadLetter || !errors.Is(r.Err, contract.ErrConflict) || q.len() != 1 {
		t.Fatalf("%+v, want dead-letter: reused (source, id)", r)
	}
}

func TestInProgressElsewhereRetries(t *testing.T) {
	store := memStore(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	c := mustConsumer(t, consumer.Config{Name: "ledger", Store: store, MinBackoff: time.Second, Lease: 30 * time.Second,
		Handler: func(context.Context, *contract.Event) error {
			if calls.Add(1) == 1 {
				close(entered)
				<-release
			}
			return nil
		}})
	data := encode(t, event("a", 1, `{}`))
	first := make(chan consumer.Result)
	go func() { first <- c.Handle(context.Background(), consumer.Delivery{Data: data}) }()
	<-entered
	r := c.Handle(context.Background(), consumer.Delivery{Data: data})
	close(release)
	if r.Action != consumer.Retry || r.Delay < time.Second || r.Delay > 30*time.Second || !errors.Is(r.Err, contract.ErrConflict) {
		t.Fatalf("%+v, want retry within the first delivery's lease", r)
	}
	if r := <-first; r.Action != consumer.Ack || calls.Load() != 1 {
		t.Fatalf("first delivery %+v, handler ran %d times", r, calls.Load())
	}
}

// failingStore is an idempotency.Store that is down.
type failingStore struct{ idempotency.Store }

func (failingStore) Claim(context.Context, idempotency.ClaimRequest) (idempotency.Claim, error) {
	return idempotency.Claim{}, contract.New(contract.KindUnavailable, "store", "down")
}

func TestStoreDownRetries(t *testing.T) {
	var calls atomic.Int64
	c := mustConsumer(t, consumer.Config{Store: failingStore{}, Handler: func(context.Context, *contract.Event) error { calls.Add(1); return nil }})
	r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", 1, `{}`))})
	if r.Action != consumer.Retry || !errors.Is(r.Err, contract.ErrUnavailable) || calls.Load() != 0 {
		t.Fatalf("%+v (handler %d), want retry without running the handler", r, calls.Load())
	}
}

// TestClaimTooLargeDeadLetters: an event whose id the store refuses as too
// large (a MemoryStore shard's byte budget) can never be claimed: it is
// dead-lettered at once, as the executor refuses it (nothing runs), not
// retried MaxAttempts times as a store outage while its subject waits.
func TestClaimTooLargeDeadLetters(t *testing.T) {
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{MaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	var q dlq
	c := mustConsumer(t, consumer.Config{Store: store, DeadLetter: q.add,
		Handler: func(context.Context, *contract.Event) error { calls.Add(1); return nil }})
	e := event("a", 1, `{}`)
	e.ID = strings.Repeat("i", 8<<10)
	r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, e), Attempt: 1})
	if r.Action != consumer.DeadLetter || !errors.Is(r.Err, contract.ErrTooLarge) || calls.Load() != 0 || q.len() != 1 {
		t.Fatalf("%+v (handler %d, dead letters %d), want dead-lettered at once without running the handler", r, calls.Load(), q.len())
	}
}

// flakyStore is an idempotency.Store whose Claim answers "down" (an
// error) or "busy" (in progress elsewhere) while fault says so.
type flakyStore struct {
	idempotency.Store
	fault string
}

func (s *flakyStore) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	switch s.fault {
	case "down":
		return idempotency.Claim{}, contract.New(contract.KindUnavailable, "store", "down")
	case "busy":
		return idempotency.Claim{Status: idempotency.InProgress, LeaseRemaining: time.Second}, nil
	}
	return s.Store.Claim(ctx, req)
}

// TestMissingEventRetriedBeforeGuardRestartsHoldTimeout: the missing event
// of a held gap arrives late and is retried before the Guard decides it —
// the deduplication store fails, or says the event is in progress
// elsewhere. The Guard is told: the held events wait a full HoldTimeout
// from that failure, so a Sweep meanwhile does not skip the event and its
// redelivery is applied, not dropped as stale.
func TestMissingEventRetriedBeforeGuardRestartsHoldTimeout(t *testing.T) {
	for _, fault := range []string{"down", "busy"} {
		t.Run(fault, func(t *testing.T) {
			ctx := context.Background()
			clk := &stepClock{now: time.Unix(1_700_000_000, 0)}
			store := &flakyStore{Store: memStore(t)}
			var applied []uint64
			c := mustConsumer(t, consumer.Config{
				Guard: mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: 30 * time.Second, Clock: clk}),
				Store: store,
				Handler: func(_ context.Context, e *contract.Event) error {
					applied = append(applied, e.Sequence)
					return nil
				},
			})
			var settled []consumer.Result
			held := consumer.Delivery{Data: encode(t, event("a", 2, `{}`)), Settle: func(r consumer.Result) { settled = append(settled, r) }}
			if r := c.Handle(ctx, held); r.Action != consumer.Hold {
				t.Fatalf("%+v, want hold", r)
			}
			clk.now = clk.now.Add(25 * time.Second)
			data := encode(t, event("a", 1, `{}`))
			store.fault = fault
			if r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 1}); r.Action != consumer.Retry || len(applied) != 0 {
				t.Fatalf("missing event with the store %s: %+v (applied %v), want retry", fault, r, applied)
			}
			store.fault = ""
			// 35s after the hold, 10s after the failure: the wait restarted.
			clk.now = clk.now.Add(10 * time.Second)
			if n := c.Sweep(ctx); n != 0 || len(settled) != 0 {
				t.Fatalf("sweep 10s after the missing event failed settled %d subjects (%+v): it skipped an event about to be redelivered", n, settled)
			}
			if r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 2}); r.Action != consumer.Ack || r.Decision != ordering.Apply {
				t.Fatalf("redelivery of the missing event: %+v, want applied", r)
			}
			if fmt.Sprint(applied) != "[1 2]" || len(settled) != 1 || settled[0].Action != consumer.Ack {
				t.Fatalf("applied %v, settled %+v; want [1 2] and the held event acked", applied, settled)
			}
		})
	}
}

func TestDecisionsLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	c := mustConsumer(t, consumer.Config{Store: memStore(t), Guard: mustGuard(t, ordering.Config{Logger: log}), Logger: log,
		Handler: func(context.Context, *contract.Event) error { return nil }})
	data := encode(t, event("a", 1, `{"secret":"do-not-log"}`))
	c.Handle(context.Background(), consumer.Delivery{Data: data})
	c.Handle(context.Background(), consumer.Delivery{Data: data})
	c.Handle(context.Background(), consumer.Delivery{Data: []byte("garbage")})
	out := buf.String()
	for _, want := range []string{`"decision":"duplicate event dropped"`, `"reason":"(source, id) already processed"`, `"decision":"event dead-lettered"`, `"reason":"malformed event"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "do-not-log") || strings.Contains(out, "a-1") {
		t.Fatalf("log carries the event body or id:\n%s", out)
	}
}

func TestConfigInvalid(t *testing.T) {
	h := func(context.Context, *contract.Event) error { return nil }
	for _, tc := range []struct {
		cfg  consumer.Config
		want string
	}{
		{consumer.Config{}, "Config.Handler: required"},
		{consumer.Config{Handler: h, MaxAttempts: -1}, "Config.MaxAttempts: must be >= 0, got -1"},
		{consumer.Config{Handler: h, MinBackoff: -1}, "Config.MinBackoff: must be >= 0, got -1ns"},
		{consumer.Config{Handler: h, MaxBackoff: -1}, "Config.MaxBackoff: must be >= 0, got -1ns"},
		{consumer.Config{Handler: h, MinBackoff: time.Minute, MaxBackoff: time.Second}, "Config.MaxBackoff: must be >= MinBackoff (1m0s), got 1s"},
		{consumer.Config{Handler: h, MaxEventBytes: -5}, "Config.MaxEventBytes: must be >= 0, got -5"},
		{consumer.Config{Handler: h, Lease: -1}, "Config.Lease: must be >= 0, got -1ns"},
		{consumer.Config{Handler: h, Lease: time.Nanosecond}, "Config.Lease: must be >= 1ms, got 1ns"},
		{consumer.Config{Handler: h, Lease: 999 * time.Microsecond}, "Config.Lease: must be >= 1ms, got 999µs"},
		{consumer.Config{Handler: h, Retention: -1}, "Config.Retention: must be >= 0, got -1ns"},
		{consumer.Config{Handler: h, Lease: time.Hour, Retention: time.Minute}, "Config.Retention: must be >= Lease (1h0m0s), got 1m0s"},
		{consumer.Config{Handler: h, Store: (*idempotency.MemoryStore)(nil)}, "Config.Store: nil *idempotency.MemoryStore"},
		// A zero Guard refused every event as above the highest sequence
		// its (missing) State records: each was dead-lettered at once.
		{consumer.Config{Handler: h, Guard: &ordering.Guard{}}, "Config.Guard: not created with ordering.New"},
	} {
		_, err := consumer.New(tc.cfg)
		ce := contract.As(err)
		if !errors.Is(err, contract.ErrInvalid) || ce.Code != "config.invalid" || ce.Detail != tc.want {
			t.Fatalf("New: %v, want config.invalid %q", err, tc.want)
		}
		// The field is also machine-readable, as in limit and breaker.
		if len(ce.Fields) != 1 || !strings.HasPrefix(tc.want, ce.Fields[0].Name+": ") {
			t.Fatalf("New: fields %v, want the field of %q", ce.Fields, tc.want)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[consumer.Action]string{consumer.Ack: "ack", consumer.Retry: "retry", consumer.DeadLetter: "dead_letter", consumer.Hold: "hold", 0: "unknown"} {
		if a.String() != want {
			t.Fatalf("%d: %q", a, a.String())
		}
	}
}
