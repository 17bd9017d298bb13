package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/internal/owner"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

// Action is what the broker adapter does with a delivery.
type Action uint8

const (
	// Ack acknowledges the delivery: the event was applied, or it was a
	// duplicate or stale and is dropped.
	Ack Action = iota + 1
	// Retry asks for a redelivery after Result.Delay (a NAK with delay).
	Retry
	// DeadLetter gives the delivery up for good (a JetStream Term): the
	// event is bad or failed permanently, or MaxAttempts was reached. The
	// DeadLetter callback has already been called.
	DeadLetter
	// Hold leaves the delivery unacknowledged: the event is held by the
	// ordering Guard until the missing ones arrive; Delivery.Settle is called
	// later with the final Result (Ack, Retry or DeadLetter).
	Hold
)

// String returns the action's name ("ack", "retry", "dead_letter", "hold").
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case DeadLetter:
		return "dead_letter"
	case Hold:
		return "hold"
	}
	return "unknown"
}

// Delivery is one delivery of an encoded event by a broker.
type Delivery struct {
	// Data is the event in the CloudEvents JSON format.
	Data []byte
	// Attempt counts deliveries of this message, 1 for the first (JetStream's
	// NumDelivered). Zero is read as 1.
	Attempt int
	// Settle, when set, lets the Guard hold a gap event: Handle answers
	// Hold, and Settle is called once, later and possibly on another
	// goroutine, with the final Result. Without it gaps are retried.
	Settle func(Result)
}

// Result is the decision for one delivery.
type Result struct {
	// Action is what the adapter must do with the delivery.
	Action Action
	// Delay is how long to wait before the redelivery (Retry only).
	Delay time.Duration
	// Reason says why, in a few words: "applied", "duplicate: already
	// processed", "malformed event"…
	Reason string
	// Decision is the ordering Guard's decision, 0 when no Guard ran.
	Decision ordering.Decision
	// Event is the decoded event, nil when Data could not be decoded.
	Event *contract.Event
	// Err is the error behind a Retry or DeadLetter.
	Err error
}

// Handler applies one event: the consumer's effect. Return a *contract.Error
// so the consumer can tell a transient failure (KindUnavailable, KindTimeout,
// KindRateLimited: retried with backoff) from a permanent one (anything not
// retryable, including unclassified errors: dead-lettered at once).
type Handler func(ctx context.Context, ev *contract.Event) error

// DeadLetterFunc receives every delivery given up: the raw delivery, the
// decoded event when there is one, and the reason as a *contract.Error
// chain. Store it somewhere a human will look; it must not block for long.
type DeadLetterFunc func(ctx context.Context, d Delivery, ev *contract.Event, err error)

// Config configures a Consumer. Handler is required; every other zero field
// means its documented default.
type Config struct {
	// Name names the consumer: the operation in logs and the scope of its
	// deduplication records. Zero means "consumer".
	Name string

	// Handler applies the events. Required.
	Handler Handler

	// Store deduplicates events by (source, id) across redeliveries,
	// restarts and, with a shared store, instances. Nil means no
	// deduplication by id (the Guard still drops sequence duplicates); a
	// nil pointer (a nil *idempotency.MemoryStore) is refused. The Handler
	// runs under the claim of its event's id (scope "consumer/" + Name,
	// key contract.Event.DedupKey): an idempotency.Do, Middleware or
	// pgstore.DoTx it makes with that key on the same store could only
	// meet the claim in progress, and fails at once with
	// idempotency.ErrNestedCall (the event is dead-lettered), as a Do
	// nested in a Do does; so does a Handle the Handler makes with its
	// own delivery (that delivery is dead-lettered, the claim untouched).
	// The claim gives the Handler no fencing token: idempotency.Token
	// reports false.
	Store idempotency.Store

	// Guard orders events per subject, created with ordering.New (a zero
	// Guard is refused). Nil means events are handled in whatever order
	// they arrive. With a Guard, events without a subject
	// or sequence are dead-lettered.
	Guard *ordering.Guard

	// DeadLetter receives deliveries given up. Nil means they are only logged.
	DeadLetter DeadLetterFunc

	// MaxAttempts is the delivery attempt at which a retryable failure is
	// dead-lettered instead of retried. Zero means 10. Gap rejections count:
	// size it with the longest gap you are willing to wait for in mind.
	// Failures of Store or of the Guard's State before the Handler ran are
	// retried until it whatever their class (a missing table too): size it,
	// with MaxBackoff, for the time an operator needs to fix them. Their
	// refusals of the event itself (contract.ErrTooLarge,
	// ordering.ErrInvalidEvent) are dead-lettered at once.
	// A delivery that fails while Handle's context is done (a shutdown) is
	// retried whatever its attempt: the failure may be the cancellation's.
	MaxAttempts int

	// MinBackoff and MaxBackoff bound the exponential redelivery delay:
	// MinBackoff × 2^(attempt-1), lengthened to an error's retry-after
	// hint, and at most MaxBackoff (a hint too: a dependency answering
	// "Retry-After: 86400" costs MaxBackoff, not a day). Zero means 1s
	// and 1m (MinBackoff when it is longer); set both, MaxBackoff must be
	// >= MinBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration // see MinBackoff

	// MaxEventBytes bounds the size of an encoded event; larger ones are
	// dead-lettered. Zero means 1 MiB.
	MaxEventBytes int

	// Lease is how long a (source, id) claim is held while the handler
	// runs. Zero means 1m; otherwise at least idempotency.MinLease (1ms),
	// the stores' resolution. Make it longer than the slowest handler run:
	// once it expires, a redelivery may claim the id and run the handler
	// concurrently (with a Guard, the subject lock still serialises them
	// and the second is dropped as a duplicate). Retention is how long a processed id is
	// remembered. Zero means 24h (Lease when it is longer); it must be
	// >= Lease.
	Lease     time.Duration
	Retention time.Duration // see Lease

	// Logger receives the decisions (dead-letter, retry, duplicate); those
	// a failure repeats on every delivery are paced (see Logs under
	// sustained failure in the package documentation). Nil means no
	// logging.
	Logger *slog.Logger
}

// Consumer turns deliveries into decisions. It is safe for concurrent use.
// Create one with New; the zero value is not usable.
type Consumer struct {
	name        string
	scope       string
	handler     Handler
	store       idempotency.Store
	storeID     any // owner.StoreID of store: what a nested call compares
	guard       *ordering.Guard
	deadLetter  DeadLetterFunc
	maxAttempts int
	minBackoff  time.Duration
	maxBackoff  time.Duration
	maxBytes    int
	lease       time.Duration
	retention   time.Duration
	log         *slog.Logger
	logs        *lograte.Set  // pacing of the decisions logged: non-nil with log
	clock       lograte.Clock // times the pacing
}

// New returns a Consumer configured by cfg, or an error of KindInvalid
// (code "config.invalid") naming the first bad field.
func New(cfg Config) (*Consumer, error) {
	bad := func(field, format string, args ...any) error { // named in Detail and in Fields
		return contract.ConfigError("consumer", field, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Handler == nil:
		return nil, bad("Config.Handler", "required")
	case cfg.MaxAttempts < 0:
		return nil, bad("Config.MaxAttempts", "must be >= 0, got %d", cfg.MaxAttempts)
	case cfg.MinBackoff < 0:
		return nil, bad("Config.MinBackoff", "must be >= 0, got %s", cfg.MinBackoff)
	case cfg.MaxBackoff < 0:
		return nil, bad("Config.MaxBackoff", "must be >= 0, got %s", cfg.MaxBackoff)
	case cfg.MaxEventBytes < 0:
		return nil, bad("Config.MaxEventBytes", "must be >= 0, got %d", cfg.MaxEventBytes)
	case cfg.Lease < 0:
		return nil, bad("Config.Lease", "must be >= 0, got %s", cfg.Lease)
	case cfg.Lease > 0 && cfg.Lease < idempotency.MinLease:
		return nil, bad("Config.Lease", "must be >= %s, got %s", idempotency.MinLease, cfg.Lease)
	case cfg.Retention < 0:
		return nil, bad("Config.Retention", "must be >= 0, got %s", cfg.Retention)
	case cfg.Store != nil && nilPointer(cfg.Store):
		// A nil *idempotency.MemoryStore (a constructor whose error was
		// ignored) would panic at the first delivery.
		return nil, bad("Config.Store", "nil %T", cfg.Store)
	case cfg.Guard != nil && cfg.Guard.State() == nil:
		// A zero Guard refuses every event as above the highest sequence
		// its State can record: each would be dead-lettered at once.
		return nil, bad("Config.Guard", "not created with ordering.New")
	}
	c := &Consumer{
		name:        cfg.Name,
		handler:     cfg.Handler,
		store:       cfg.Store,
		guard:       cfg.Guard,
		deadLetter:  cfg.DeadLetter,
		maxAttempts: orDefault(cfg.MaxAttempts, 10),
		minBackoff:  orDefault(cfg.MinBackoff, time.Second),
		maxBackoff:  orDefault(cfg.MaxBackoff, max(time.Minute, cfg.MinBackoff)),
		maxBytes:    orDefault(cfg.MaxEventBytes, 1<<20),
		lease:       orDefault(cfg.Lease, time.Minute),
		retention:   orDefault(cfg.Retention, max(24*time.Hour, cfg.Lease)),
		log:         cfg.Logger,
		clock:       lograte.System{},
	}
	if c.log != nil {
		c.logs = lograte.NewSet(numPaced)
	}
	if c.name == "" {
		c.name = "consumer"
	}
	if c.maxBackoff < c.minBackoff {
		return nil, bad("Config.MaxBackoff", "must be >= MinBackoff (%s), got %s", c.minBackoff, c.maxBackoff)
	}
	if c.retention < c.lease {
		return nil, bad("Config.Retention", "must be >= Lease (%s), got %s", c.lease, c.retention)
	}
	c.scope = "consumer/" + c.name
	c.storeID = owner.StoreID(c.store, c)
	return c, nil
}

// nilPointer reports whether v is a nil pointer in a non-nil interface.
func nilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// MaxHeld returns the most deliveries Handle may leave on Hold at once,
// unsettled: the Guard's MaxHeld (see ordering.Guard.MaxHeld), 0 without a
// Guard or when it rejects gaps. A broker adapter whose held messages count
// against an unacknowledged-message limit checks that limit against it.
func (c *Consumer) MaxHeld() int {
	if c.guard == nil {
		return 0
	}
	return c.guard.MaxHeld()
}

// MaxAttempts returns the delivery attempt at which a retryable failure is
// dead-lettered: Config.MaxAttempts, 10 when zero. Deliveries go past it
// only when the failure is not the event's (in progress elsewhere, a
// shutdown). A broker adapter whose own redelivery limit drops a message
// silently checks that limit against it.
func (c *Consumer) MaxAttempts() int { return c.maxAttempts }

// Sweep applies the Guard's hold timeout (see ordering.Guard.Sweep). Broker
// adapters call it periodically; it does nothing without a Guard.
func (c *Consumer) Sweep(ctx context.Context) int {
	if c.guard == nil {
		return 0
	}
	return c.guard.Sweep(ctx)
}

// Handle decodes one delivery strictly, drops it when its (source, id) was
// already processed, passes it through the ordering Guard, runs the Handler
// with the event's coordinates on ctx, and returns what the broker adapter
// must do with the delivery. It never panics on bad input: undecodable,
// oversized or invalid events are dead-lettered, and a panicking Handler, or
// one returning a nil *contract.Error as a non-nil error, is a permanent
// failure.
func (c *Consumer) Handle(ctx context.Context, d Delivery) Result {
	r := c.handle(ctx, d)
	if r.Action == Ack && c.log != nil && c.logs.Active() {
		c.logEnds(ctx)
	}
	return r
}

func (c *Consumer) handle(ctx context.Context, d Delivery) Result {
	if d.Attempt < 1 {
		d.Attempt = 1
	}
	ctx = logctx.WithOperation(ctx, c.name)
	if len(d.Data) > c.maxBytes {
		err := &contract.Error{Kind: contract.KindTooLarge, Code: "event.too_large", Op: c.name,
			Detail: fmt.Sprintf("event is %d bytes, limit %d", len(d.Data), c.maxBytes)}
		return c.dead(ctx, d, nil, sDeadInvalid, "event too large", err)
	}
	ev, err := contract.DecodeEvent(d.Data)
	if err != nil {
		return c.dead(ctx, d, nil, sDeadInvalid, "malformed event", err)
	}
	e := &ev
	ctx = c.coordinates(ctx, e)
	if logctx.CorrelationID(ctx) != "" && !validCorrelationID(e) {
		// The id on ctx is the caller's, kept for this event's own lines;
		// mark ctx as this event's so that events applied or settled on
		// this call (held ones the Guard releases) do not inherit it.
		ctx = context.WithValue(ctx, ownerKey{}, e)
	}
	if c.guard != nil && (e.Subject == "" || e.Sequence == 0) {
		err := &contract.Error{Kind: contract.KindInvalid, Code: "ordering.invalid_event", Op: c.name,
			Detail: "an ordered consumer needs subject and sequence"}
		return c.dead(ctx, d, e, sDeadInvalid, "event cannot be ordered", err)
	}

	var token uint64
	key := idempotency.Key{Scope: c.scope, Key: e.DedupKey()}
	if c.store != nil {
		if o, ok := ctx.Value(owner.Key{}).(owner.Op); ok && owner.Nested(o, c.storeID, key.Scope, key.Key) {
			// A Handler (or an operation holding this key) handing the
			// consumer the event it is handling: the claim could only
			// find that call in progress, and every redelivery would
			// too. Fail at once, as a nested idempotency.Do does, without
			// touching the claim the enclosing call holds.
			err := *(idempotency.ErrNestedCall.(*contract.Error))
			err.Op = c.name
			return c.dead(ctx, d, e, sDeadNested, "nested call: the event is being handled by the call it came from", &err)
		}
		claim, err := c.store.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: fingerprint(e), Lease: c.lease, Retention: c.retention})
		if err != nil {
			if errors.Is(err, contract.ErrTooLarge) {
				// Refused, not failed (an id over a MemoryStore shard's
				// budget): no redelivery can be claimed, as the
				// idempotency executor says too.
				return c.dead(ctx, d, e, sDeadInvalid, "dedup store refused the event id as too large", err)
			}
			return c.retry(ctx, d, e, sRetryStore, "dedup store failed", err)
		}
		switch claim.Status {
		case idempotency.Completed:
			c.logDecision(ctx, unpaced, slog.LevelInfo, "duplicate event dropped", "(source, id) already processed", e)
			return Result{Action: Ack, Reason: "duplicate: already processed", Event: e}
		case idempotency.InProgress:
			delay := max(claim.LeaseRemaining, c.minBackoff)
			c.retrying(ctx, e, delay)
			c.logDecision(ctx, sRetryInProgress, slog.LevelInfo, "event retry scheduled", "(source, id) in progress elsewhere", e, slog.Duration("delay", delay))
			return Result{Action: Retry, Delay: delay, Reason: "in progress elsewhere", Event: e,
				Err: &contract.Error{Kind: contract.KindConflict, Code: "consumer.in_progress", Op: c.name, Detail: "event is being processed elsewhere"}}
		case idempotency.Mismatch:
			err := &contract.Error{Kind: contract.KindConflict, Code: "consumer.event_mismatch", Op: c.name,
				Detail: "an event with the same source and id but other content was processed"}
			return c.dead(ctx, d, e, sDeadInvalid, "same (source, id), other content", err)
		}
		token = claim.Token
		// The Handler runs under this claim: an idempotency.Do or
		// pgstore.DoTx it makes with the same key and store could only
		// meet the claim in progress, and fails at once instead.
		cc := &claimCtx{Context: ctx, storeID: c.storeID, key: key}
		defer cc.ended.Store(true)
		ctx = cc
	}

	if c.guard == nil {
		if err := c.apply(ctx, e); err != nil {
			c.release(ctx, key, token, e)
			return c.failed(ctx, d, e, 0, err)
		}
		c.complete(ctx, key, token, e)
		return Result{Action: Ack, Reason: "applied", Event: e}
	}

	var settle ordering.SettleFunc
	if d.Settle != nil {
		settle = func(ctx context.Context, ev *contract.Event, o ordering.Outcome, err error) {
			if !sameEvent(ev, e) {
				// Another event claiming the same (subject, sequence) was
				// held first, and the Guard settled this delivery with its
				// fate: report this event's own. Its sequence was applied
				// by the other: a duplicate, as it is when it arrives after.
				// The other failed: this one never ran, redeliver it.
				switch {
				case err == nil && o.Decision == ordering.Apply:
					o.Decision = ordering.Duplicate
				case err != nil && !errors.Is(err, ordering.ErrGap):
					err = (&contract.Error{Kind: contract.KindConflict, Code: "consumer.sequence_taken", Op: c.name,
						Detail: "another event held with the same subject and sequence failed", Cause: err}).WithRetryable(true)
				}
			}
			d.Settle(c.settled(ctx, d, e, o, err))
		}
	}
	o, err := c.guard.Process(ctx, e, c.apply, settle)
	if err != nil {
		c.release(ctx, key, token, e)
		return c.failed(ctx, d, e, o.Decision, err)
	}
	switch o.Decision {
	case ordering.Apply:
		c.complete(ctx, key, token, e)
		return Result{Action: Ack, Reason: "applied", Decision: o.Decision, Event: e}
	case ordering.Duplicate, ordering.Stale:
		c.complete(ctx, key, token, e)
		return Result{Action: Ack, Reason: o.Decision.String() + ": dropped", Decision: o.Decision, Event: e}
	default: // held
		c.release(ctx, key, token, e)
		return Result{Action: Hold, Reason: "gap: held", Decision: o.Decision, Event: e}
	}
}

// retrying tells the Guard that e is retried after delay (see
// ordering.Guard.Retrying): when e is the missing event of a held gap, the
// events held behind it wait a full HoldTimeout from its redelivery, so a
// hold timeout does not skip it first, however long its backoff or the
// lease it waits for.
func (c *Consumer) retrying(ctx context.Context, e *contract.Event, delay time.Duration) {
	if c.guard != nil && e != nil {
		c.guard.Retrying(ctx, e, delay)
	}
}

// settled turns the final fate of a held event into a Result.
func (c *Consumer) settled(ctx context.Context, d Delivery, e *contract.Event, o ordering.Outcome, err error) Result {
	ctx = c.ownCoordinates(logctx.WithOperation(ctx, c.name), e)
	if err != nil {
		return c.failed(ctx, d, e, o.Decision, err)
	}
	if c.store != nil {
		// Record the id as processed, best effort: the Guard already
		// protects the effect, the record saves later redeliveries a trip.
		key := idempotency.Key{Scope: c.scope, Key: e.DedupKey()}
		if claim, err := c.store.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: fingerprint(e), Lease: c.lease, Retention: c.retention}); err == nil && claim.Status == idempotency.Claimed {
			c.complete(ctx, key, claim.Token, e)
		}
	}
	return Result{Action: Ack, Reason: "held then " + o.Decision.String(), Decision: o.Decision, Event: e}
}

// apply runs the Handler, turning a panic, or a nil *contract.Error
// returned as a non-nil error, into a permanent error.
func (c *Consumer) apply(ctx context.Context, e *contract.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &contract.Error{Kind: contract.KindInternal, Code: "consumer.handler_panic", Op: c.name,
				Detail: "handler panicked", Cause: fmt.Errorf("panic: %v\n%s", p, debug.Stack())}
		}
	}()
	// Held events are applied on the call of the event that filled the gap,
	// or of Sweep: give the handler this event's coordinates, not that one's.
	err = c.handler(c.ownCoordinates(ctx, e), e)
	if ce, ok := err.(*contract.Error); ok && ce == nil {
		// A nil *contract.Error returned as error is a non-nil error (the
		// typed nil pitfall) whose methods panic: classifying it crashed
		// Handle. It is a handler bug: a permanent error, like a panic.
		err = &contract.Error{Kind: contract.KindInternal, Code: "consumer.handler_nil_error", Op: c.name,
			Detail: "handler returned a nil *contract.Error as a non-nil error"}
	}
	return err
}

// failed decides between Retry and DeadLetter for an error.
func (c *Consumer) failed(ctx context.Context, d Delivery, e *contract.Event, dec ordering.Decision, err error) Result {
	var r Result
	switch {
	case errors.Is(err, ordering.ErrGap):
		r = c.retry(ctx, d, e, sRetryGap, "gap: missing earlier events", err)
	case errors.Is(err, ordering.ErrInvalidEvent):
		r = c.dead(ctx, d, e, sDeadInvalid, "event cannot be ordered", err) // e.g. a sequence its State cannot record
	case c.guard != nil && dec == 0 && contract.KindOf(err) == contract.KindOverloaded:
		// The Guard's State failed before deciding (the Handler never
		// ran) because it is full: ordering.Memory at MaxSubjects with no
		// subject idle for IdleTTL yet. That passes as subjects go idle:
		// retry, bounded by MaxAttempts like any transient failure.
		r = c.retry(ctx, d, e, sRetryStateFull, "ordering state full", err)
	case c.guard != nil && dec == 0:
		// Any other failure of the State before deciding (a pgstate
		// table missing, a permission revoked, the database unreachable):
		// the Handler never ran, and the event is not at fault — a
		// redelivery after the operator's fix succeeds. Retried whatever
		// its class, until MaxAttempts, as a dedup store failure is:
		// dead-lettering it at once would drop every valid event of the
		// stream for an outage. The reason names the State.
		r = c.retry(ctx, d, e, sRetryStateFailed, "ordering state failed", err)
	case contract.Retryable(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		r = c.retry(ctx, d, e, sRetryHandler, "handler failed, transient", err)
	default:
		r = c.dead(ctx, d, e, sDeadPermanent, "handler failed, permanent", err)
	}
	r.Decision = dec
	return r
}

func (c *Consumer) retry(ctx context.Context, d Delivery, e *contract.Event, slot int, reason string, err error) Result {
	// Once ctx is done (a shutdown) a transient failure may be the
	// cancellation's, not the event's: never give the event up for it.
	if d.Attempt >= c.maxAttempts && ctx.Err() == nil {
		return c.dead(ctx, d, e, slot+sDeadGaveUp, fmt.Sprintf("%s; gave up after %d attempts", reason, d.Attempt), err)
	}
	delay := c.backoff(d.Attempt)
	if ra, ok := contract.RetryAfter(err); ok && ra > delay {
		// Capped as the backoff is: a hint comes from the dependency (a
		// Retry-After of a day, or a hostile one) and would otherwise park
		// the event, and the events a Guard holds behind it, that long.
		delay = min(ra, c.maxBackoff)
	}
	if !errors.Is(err, ordering.ErrGap) {
		c.retrying(ctx, e, delay)
	}
	c.logDecision(ctx, slot, slog.LevelWarn, "event retry scheduled", reason, e,
		slog.Int("attempt", d.Attempt), slog.Duration("delay", delay), slog.String("error", contract.As(err).CodeOrKind()))
	return Result{Action: Retry, Delay: delay, Reason: reason, Event: e, Err: err}
}

// backoff is MinBackoff × 2^(attempt-1), at most MaxBackoff.
func (c *Consumer) backoff(attempt int) time.Duration {
	d := c.minBackoff
	for i := 1; i < attempt && d < c.maxBackoff; i++ {
		if d > c.maxBackoff/2 { // doubling would pass the cap, or overflow
			return c.maxBackoff
		}
		d *= 2
	}
	return min(d, c.maxBackoff)
}

func (c *Consumer) dead(ctx context.Context, d Delivery, e *contract.Event, slot int, reason string, err error) Result {
	c.logDecision(ctx, slot, slog.LevelError, "event dead-lettered", reason, e,
		slog.Int("attempt", d.Attempt), slog.String("error", contract.As(err).CodeOrKind()))
	if c.deadLetter != nil {
		c.deadLetter(ctx, d, e, err)
	}
	return Result{Action: DeadLetter, Reason: reason, Event: e, Err: err}
}

func (c *Consumer) complete(ctx context.Context, key idempotency.Key, token uint64, e *contract.Event) {
	if c.store == nil {
		return
	}
	// The effect is done: a lost record only costs a later redelivery a
	// trip through the Guard (or the Handler, without one).
	if err := c.store.Complete(context.WithoutCancel(ctx), key, token, idempotency.Result{}); err != nil {
		c.logDecision(ctx, sNotStored, slog.LevelWarn, "dedup record not stored", "store: "+contract.As(err).CodeOrKind(), e)
	}
}

func (c *Consumer) release(ctx context.Context, key idempotency.Key, token uint64, e *contract.Event) {
	if c.store == nil {
		return
	}
	if err := c.store.Release(context.WithoutCancel(ctx), key, token); err != nil {
		c.logDecision(ctx, sNotReleased, slog.LevelWarn, "dedup claim not released", "store: "+contract.As(err).CodeOrKind(), e)
	}
}

// coordinates puts the event's correlation id (when valid, see
// logctx.ValidateCorrelationID) and subject on ctx for every log line
// written while it is handled. An event without a valid id keeps the one
// ctx carries: Handle's caller's.
func (c *Consumer) coordinates(ctx context.Context, e *contract.Event) context.Context {
	if e.CorrelationID != "" && e.CorrelationID != logctx.CorrelationID(ctx) {
		// An id that is not a valid correlation id (hostile bytes, too
		// long) is left out of the logs; the event itself is still fine.
		if cctx, err := logctx.ExtractEvent(ctx, e); err == nil {
			ctx = cctx
		}
	}
	if kind, id := logctx.Entity(ctx); e.Subject != "" && (kind != "subject" || id != e.Subject) {
		ctx = logctx.WithEntity(ctx, "subject", e.Subject)
	}
	return ctx
}

// ownCoordinates is coordinates for the Handler and the settlement of e,
// which may run on the call of another event (a held event released by the
// one that filled its gap) or of Sweep: when e has no valid correlation id,
// the id ctx carries is cleared unless ctx is e's own Handle call's, so e's
// lines never carry another event's id.
func (c *Consumer) ownCoordinates(ctx context.Context, e *contract.Event) context.Context {
	ctx = c.coordinates(ctx, e)
	if logctx.CorrelationID(ctx) != "" && !validCorrelationID(e) {
		if own, _ := ctx.Value(ownerKey{}).(*contract.Event); !sameEvent(own, e) {
			ctx = logctx.WithCorrelationID(ctx, "")
		}
	}
	return ctx
}

// claimCtx is the context of a Handle call holding the claim of its
// event's id (an owner.Op): an idempotency.Do, Middleware or pgstore.DoTx
// given it, with that key on the same store, is refused with
// idempotency.ErrNestedCall rather than meeting the claim in progress.
// The claim has no token for the Handler: idempotency.Token reports false,
// not the token of an operation enclosing Handle, which is another key's.
// Events the Guard releases from the hold on this call run under it too:
// the claim is still held then, so a call they make with this event's key
// is refused as well.
type claimCtx struct {
	context.Context
	storeID any
	key     idempotency.Key
	ended   atomic.Bool // Handle returned: the claim is over
}

func (c *claimCtx) Value(key any) any {
	if _, ok := key.(owner.Key); ok {
		return c
	}
	return c.Context.Value(key)
}

func (c *claimCtx) Parent() context.Context { return c.Context }

func (c *claimCtx) Holds(store any, scope, key string) bool {
	return c.storeID == store && c.key.Scope == scope && c.key.Key == key && !c.ended.Load()
}

func (c *claimCtx) Token() (uint64, bool) { return 0, false }

// ownerKey marks the context of a Handle call with its event (see Handle):
// only when the event has no valid correlation id and the caller's context
// carries one, the one case where it matters.
type ownerKey struct{}

func validCorrelationID(e *contract.Event) bool {
	return e.CorrelationID != "" && logctx.ValidateCorrelationID(e.CorrelationID) == nil
}

// sameEvent reports whether a and b are the same event: the same pointer,
// or a redelivery of it (same source, id, subject and sequence).
func sameEvent(a, b *contract.Event) bool {
	return a != nil && b != nil && (a == b ||
		a.Source == b.Source && a.ID == b.ID && a.Subject == b.Subject && a.Sequence == b.Sequence)
}

// logDecision logs a decision about e; a paced one (slot, not unpaced)
// at level or at Debug as its pace says (see package lograte).
func (c *Consumer) logDecision(ctx context.Context, slot int, level slog.Level, decision, reason string, e *contract.Event, attrs ...slog.Attr) {
	if c.log == nil {
		return
	}
	var n int64
	if slot != unpaced {
		level, n = c.logs.Occur(slot, c.clock.Now(), level)
	}
	if !c.log.Enabled(ctx, level) {
		return
	}
	if e != nil {
		// A hostile megabyte type or source is cut, as the Guard cuts a subject.
		attrs = append(attrs, slog.String("event_type", logctx.Short(e.Type)), slog.String("event_source", logctx.Short(e.Source)))
		if e.Sequence != 0 {
			attrs = append(attrs, slog.Uint64("sequence", e.Sequence))
		}
	}
	logctx.Decision(ctx, c.log, level, decision, reason, lograte.Suppressed(attrs, n)...)
}

// The decisions a failing dependency (the dedup store, the ordering
// State, what the Handler calls) or a bad producer repeats on every
// delivery: their lines are paced (see package lograte), so that an outage
// writes a few lines every 10s instead of one per delivery. A dead letter
// after MaxAttempts is paced by the reason it was retried for
// (sDeadGaveUp + that retry's slot).
const (
	sRetryStore = iota
	sRetryInProgress
	sRetryGap
	sRetryStateFull
	sRetryStateFailed
	sRetryHandler
	numRetry
)

const sDeadGaveUp = numRetry

const (
	sDeadInvalid = 2*numRetry + iota
	sDeadNested
	sDeadPermanent
	sNotStored
	sNotReleased
	numPaced

	unpaced = -1
)

// retryReasons are the reasons of the retry slots.
var retryReasons = [numRetry]string{
	sRetryStore:       "dedup store failed",
	sRetryInProgress:  "(source, id) in progress elsewhere",
	sRetryGap:         "gap: missing earlier events",
	sRetryStateFull:   "ordering state full",
	sRetryStateFailed: "ordering state failed",
	sRetryHandler:     "handler failed, transient",
}

// logEnds logs, once each, the end of the paced decisions that have not
// occurred for 10s, on a delivery acknowledged.
func (c *Consumer) logEnds(ctx context.Context) {
	c.logs.LogEnds(logctx.WithOperation(ctx, c.name), c.log, c.clock, pacedEnd)
}

func pacedEnd(slot int) (string, string) {
	switch {
	case slot < numRetry:
		return "event retries ended", retryReasons[slot] + ": " + lograte.EndReason
	case slot < 2*numRetry:
		return "event dead letters ended", retryReasons[slot-sDeadGaveUp] + ", gave up: " + lograte.EndReason
	case slot == sDeadInvalid:
		return "event dead letters ended", "invalid events: " + lograte.EndReason
	case slot == sDeadNested:
		return "event dead letters ended", "nested calls: " + lograte.EndReason
	case slot == sDeadPermanent:
		return "event dead letters ended", "handler failed, permanent: " + lograte.EndReason
	case slot == sNotStored:
		return "dedup records stored again", lograte.EndReason
	}
	return "dedup claims released again", lograte.EndReason
}

// fingerprint digests what makes an event's content: a redelivery has the
// same one, another event reusing (source, id) a different one.
func fingerprint(e *contract.Event) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{e.Type, e.Subject, e.DataSchema} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], e.Sequence)
	h.Write(n[:])
	h.Write(e.Data)
	return hex.EncodeToString(h.Sum(nil))
}
