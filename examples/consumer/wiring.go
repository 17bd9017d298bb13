package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// Options configure one run of the example. Zero fields mean the defaults
// of the command-line flags.
type Options struct {
	Events        int     // valid events to produce; 0 means 1000
	Subjects      int     // payments they are spread over; 0 means 20
	DupRate       float64 // probability an event is delivered twice
	RepublishRate float64 // probability an event is republished under a new id
	FailRate      float64 // probability one handler attempt fails transiently (injected)
	Seed          uint64  // the workload and the injected failures follow it

	NATSURL string        // empty: in-memory broker simulation
	Stream  string        // JetStream stream name; "" means DefaultStream
	Timeout time.Duration // bound on a NATS run; 0 means 1m

	// MaxHeld bounds the ordering Guard's hold buffer; 0 means
	// max(1024, Events): the example shuffles the whole stream, so the
	// disorder window is the stream. A small one (-max-held 64) shows what
	// an undersized buffer costs: gaps rejected and redelivered over and
	// over until their hold times out.
	MaxHeld int

	// Logger receives the JSON decision logs. Nil means no logging.
	Logger *slog.Logger
}

// DefaultStream is the JetStream stream the NATS mode creates and deletes.
const DefaultStream = "SADPATH_CONSUMER_EXAMPLE"

// Limits on Options: a demo, not a load generator.
const (
	maxEvents   = 1_000_000
	maxFailRate = 0.5
)

// withDefaults returns o with its zero fields defaulted, or an error of
// KindInvalid (code "config.invalid") naming the first bad flag.
func (o Options) withDefaults() (Options, error) {
	bad := func(format string, args ...any) error {
		return &contract.Error{Kind: contract.KindInvalid, Code: "config.invalid", Op: "examples/consumer", Detail: fmt.Sprintf(format, args...)}
	}
	rate := func(name string, v, limit float64) error {
		if !(v >= 0 && v <= limit) { // also rejects NaN
			return bad("-%s: must be in [0, %g], got %g", name, limit, v)
		}
		return nil
	}
	if o.Events == 0 {
		o.Events = 1000
	}
	if o.Subjects == 0 {
		o.Subjects = min(20, o.Events)
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	if o.MaxHeld == 0 {
		o.MaxHeld = max(1024, o.Events)
	}
	switch {
	case o.Events < 1 || o.Events > maxEvents:
		return o, bad("-events: must be in [1, %d], got %d", maxEvents, o.Events)
	case o.Subjects < 1 || o.Subjects > o.Events:
		return o, bad("-subjects: must be in [1, -events (%d)], got %d", o.Events, o.Subjects)
	case rate("dup-rate", o.DupRate, 1) != nil:
		return o, rate("dup-rate", o.DupRate, 1)
	case rate("republish-rate", o.RepublishRate, 1) != nil:
		return o, rate("republish-rate", o.RepublishRate, 1)
	case rate("fail-rate", o.FailRate, maxFailRate) != nil:
		return o, rate("fail-rate", o.FailRate, maxFailRate)
	case !validStream(o.Stream):
		return o, bad("-stream: must be 1 to 64 letters, digits, '-' or '_', got %q", o.Stream)
	case o.Timeout < 0:
		return o, bad("-timeout: must be >= 0, got %s", o.Timeout)
	case o.MaxHeld < 1:
		return o, bad("-max-held: must be >= 1, got %d", o.MaxHeld)
	}
	return o, nil
}

func validStream(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Counts are what happened to the deliveries.
type Counts struct {
	Deliveries   int // Handle calls, redeliveries included
	Redeliveries int // deliveries with attempt > 1

	// The broker-side actions, one per delivery.
	Acked        int // acknowledged: applied, or dropped as duplicate/stale
	Retried      int // NAK with delay: redelivered later
	DeadLettered int // terminated: never redelivered
	Held         int // left pending while the Guard held the gap

	// Why.
	Applied           int // the handler ran and succeeded
	DupByID           int // dropped by the idempotency store: (source, id) already processed
	DupBySeq          int // dropped by the Guard: sequence already applied (a republished copy)
	Stale             int // dropped by the Guard: older than the last applied
	GapsHeld          int // held by the Guard until the missing events arrived
	GapsRejected      int // gap rejected (hold buffer full or timed out): redelivered
	JoinedHeld        int // copies held while an earlier copy was, acked when that copy was applied (NATS: derived, see Report.JoinedDerived)
	TransientFailures int // handler failures retried (injected -fail-rate)
	ServerDeduped     int // NATS only: publications JetStream dropped by Nats-Msg-Id
}

// Report is the outcome of a run.
type Report struct {
	Mode     string // "memory" or "nats"
	Options  Options
	Produced struct{ Events, Duplicates, Republished, Malformed, Deliveries int }
	Counts   Counts
	// DeadLetters are the dead-lettered deliveries' reasons, in order.
	DeadLetters []string
	// Problems lists every way the run differs from the in-order
	// application; empty means the run is correct.
	Problems []string
	// Payments is the consumer's projection.
	Payments map[string]Payment
	// Stored is how many messages the broker kept (NATS: publications
	// minus those JetStream dropped by Nats-Msg-Id).
	Stored  int
	Elapsed time.Duration
	// Figures that differ between memory and NATS mode.
	SimulatedTime time.Duration // memory: broker time the redeliveries took
	// JoinedDerived is true when Counts.JoinedHeld is not observed but
	// derived as the acknowledgements nothing else explains (NATS: the
	// Adapter does not expose the results of held deliveries). The memory
	// mode counts it from the Hold and Settle results.
	JoinedDerived bool
}

// OK reports whether the projection equals the in-order application and
// every delivery was settled as expected.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// app is the consumer side shared by both modes: the projection, the
// injected failures and the consumer.Consumer that protects them.
type app struct {
	proj *Projection
	c    *consumer.Consumer

	mu          sync.Mutex
	rng         *rand.Rand
	failRate    float64
	failures    int
	deadLetters []string
}

// appConfig is what differs between the modes.
type appConfig struct {
	clock       interface{ Now() time.Time } // nil: the system clock
	store       idempotency.Store
	state       ordering.State
	holdTimeout time.Duration
	retryAfter  time.Duration
	minBackoff  time.Duration
	maxBackoff  time.Duration
	logger      *slog.Logger
}

// newApp wires the consumer: strict decoding, deduplication by (source, id)
// in store, the ordering Guard holding gaps (rejecting them for redelivery
// after holdTimeout: a payment ledger waits for late events, it never skips
// them), and the projection as the handler.
func newApp(o Options, ac appConfig) (*app, error) {
	a := &app{
		proj:     NewProjection(),
		rng:      rand.New(rand.NewPCG(o.Seed, 0xfa11)), // #nosec G404 -- fault injection
		failRate: o.FailRate,
	}
	var clock ordering.Clock
	if ac.clock != nil {
		clock = ac.clock
	}
	guard, err := ordering.New(ordering.Config{
		State:       ac.state,
		Gap:         ordering.GapHold,
		MaxHeld:     o.MaxHeld,
		HoldTimeout: ac.holdTimeout,
		OnTimeout:   ordering.TimeoutReject,
		RetryAfter:  ac.retryAfter,
		Clock:       clock,
		Logger:      ac.logger,
	})
	if err != nil {
		return nil, err
	}
	a.c, err = consumer.New(consumer.Config{
		Name:    "payment-projection",
		Handler: a.handle,
		Store:   ac.store,
		Guard:   guard,
		DeadLetter: func(ctx context.Context, d consumer.Delivery, ev *contract.Event, err error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			reason := contract.As(err).CodeOrKind() + ": " + detail(err)
			if d.Attempt > 1 {
				reason += fmt.Sprintf(" (given up at attempt %d)", d.Attempt)
			}
			a.deadLetters = append(a.deadLetters, reason)
		},
		// Gap rejections count as attempts: leave room for a long gap.
		MaxAttempts: 50,
		MinBackoff:  ac.minBackoff,
		MaxBackoff:  ac.maxBackoff,
		Logger:      ac.logger,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// errLedgerDown is the injected transient failure.
var errLedgerDown = contract.New(contract.KindUnavailable, "projection", "ledger database unavailable (injected)").WithCode("ledger.unavailable")

// handle is the consumer's Handler: the projection, behind a dependency
// that fails now and then.
func (a *app) handle(ctx context.Context, ev *contract.Event) error {
	a.mu.Lock()
	fail := a.failRate > 0 && a.rng.Float64() < a.failRate
	if fail {
		a.failures++
	}
	a.mu.Unlock()
	if fail {
		return errLedgerDown
	}
	return a.proj.Apply(ev)
}

func (a *app) deadLettered() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.deadLetters...)
}

// detail is the error's detail without its operation prefix, with the
// invalid fields it names.
func detail(err error) string {
	ce := contract.As(err)
	if ce == nil || ce.Detail == "" {
		return err.Error()
	}
	d := ce.Detail
	for i, f := range ce.Fields {
		if i == 3 {
			d += fmt.Sprintf("; … %d more", len(ce.Fields)-3)
			break
		}
		d += "; " + f.Name + ": " + f.Reason
	}
	return d
}

// verify fills r.Problems: the projection against the in-order
// application, and the bookkeeping every run must satisfy.
func verify(r *Report, w *Workload, a *app) error {
	want, err := InOrder(w.Events)
	if err != nil {
		return err
	}
	r.Payments = a.proj.Payments()
	r.DeadLetters = a.deadLettered()
	r.Problems = a.proj.Verify(want)
	c := &r.Counts
	if r.JoinedDerived {
		// Every acknowledgement not accounted for by an application or a
		// logged drop settled a copy that had joined a held delivery (or
		// a held copy settled as a duplicate, which the Guard does not
		// log): at least 0, at most every delivery held.
		c.JoinedHeld = c.Acked - c.Applied - c.DupByID - c.DupBySeq - c.Stale
		if c.JoinedHeld < 0 || c.JoinedHeld > c.GapsHeld {
			r.Problems = append(r.Problems, fmt.Sprintf("%d acked, but %d applied + %d dropped by id + %d by sequence + %d stale leaves %d acks for %d held deliveries",
				c.Acked, c.Applied, c.DupByID, c.DupBySeq, c.Stale, c.JoinedHeld, c.GapsHeld))
		}
	}
	if c.Applied != len(w.Events) {
		r.Problems = append(r.Problems, fmt.Sprintf("applied %d events, want %d", c.Applied, len(w.Events)))
	}
	if c.DeadLettered != w.Malformed {
		r.Problems = append(r.Problems, fmt.Sprintf("dead-lettered %d deliveries, want the %d malformed ones", c.DeadLettered, w.Malformed))
	}
	if n := len(r.DeadLetters); n != w.Malformed {
		r.Problems = append(r.Problems, fmt.Sprintf("the DeadLetter callback received %d deliveries, want %d", n, w.Malformed))
	}
	return nil
}

// outstanding says what the run still waits for, "" when nothing.
func (a *app) outstanding(events, malformed int) string {
	applied, dead := a.proj.Applications(), len(a.deadLettered())
	if applied < events || dead < malformed {
		return fmt.Sprintf("%d of %d events applied, %d of %d malformed dead-lettered", applied, events, dead, malformed)
	}
	return ""
}

// classify counts one final Result (not Hold) by its reason.
func (c *Counts) classify(r consumer.Result) {
	switch r.Action {
	case consumer.Ack:
		c.Acked++
		switch {
		case r.Reason == "duplicate: already processed":
			c.DupByID++
		case r.Decision == ordering.Duplicate:
			c.DupBySeq++
		case r.Decision == ordering.Stale:
			c.Stale++
		}
	case consumer.Retry:
		c.Retried++
		if errors.Is(r.Err, ordering.ErrGap) {
			c.GapsRejected++
		} else {
			c.TransientFailures++
		}
	case consumer.DeadLetter:
		c.DeadLettered++
	case consumer.Hold:
		c.Held++
		c.GapsHeld++
	}
}
