package ordering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// Decision is what the Guard decided for one event.
type Decision uint8

// The decisions, from the event's sequence s and the subject's last applied
// sequence l.
const (
	Apply     Decision = iota + 1 // s == l+1: the next one; applied
	Duplicate                     // s == l: already applied; dropped
	Stale                         // s < l: older than the last applied; dropped
	Gap                           // s > l+1: ahead of the next expected; held or rejected
)

// String returns the decision's name ("apply", "duplicate", "stale", "gap").
func (d Decision) String() string {
	switch d {
	case Apply:
		return "apply"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Gap:
		return "gap"
	}
	return "unknown"
}

// GapPolicy says what the Guard does with an event ahead of the next
// expected sequence.
type GapPolicy uint8

const (
	// GapReject returns ErrGap at once: the caller redelivers the event later
	// (a broker NAK with a delay). It is the default: nothing is kept in memory.
	GapReject GapPolicy = iota
	// GapHold keeps the event in a bounded buffer until the missing events
	// arrive (then it is applied right after them) or HoldTimeout passes
	// (then OnTimeout decides). Only events processed with a non-nil
	// SettleFunc are held; the others are rejected as with GapReject.
	GapHold
)

// TimeoutAction says what happens to held events once the oldest of a
// subject has waited HoldTimeout (see Config.HoldTimeout for when the wait
// starts).
type TimeoutAction uint8

const (
	// TimeoutSkip gives up on the missing sequences: it logs a "gap skipped"
	// decision, records the sequence before the lowest held one as applied
	// and applies the held events in order. Events of the skipped sequences
	// that arrive later are stale. When the timeout is applied on the
	// Process call of one of the missing events, that event is not skipped:
	// only the sequences before it are, and it is applied. It is the default.
	//
	// When the State refuses the skip with an error of KindInvalid (it
	// cannot record that sequence: see BoundedState), retrying would never
	// succeed: the held events from the lowest on are settled with that
	// error, a permanent one. After any other State error they stay held
	// and the next Process or Sweep of the subject tries again.
	//
	// Its promise — a skipped sequence went unseen, or kept failing without
	// a redelivery, for HoldTimeout — holds across the processes sharing a
	// RedeliveryState (ordering/pgstate) whose Guards all skip gaps: each
	// records the failures it sees there, and a skip honours those of the
	// others (see RedeliveryState and, for the limits, the package
	// documentation, "Gaps"). Over a State shared without being one, it
	// holds per Guard only: when the missing event fails in process B
	// while process A holds events behind it, A's timeout can record the
	// skip, and B's redelivery of the event is then dropped as stale; use
	// TimeoutReject there, or route each subject to one Guard (one
	// consumer per subject partition).
	TimeoutSkip TimeoutAction = iota
	// TimeoutReject settles every held event of the subject with ErrGap, so
	// the caller redelivers them later; not on the Process call of one of
	// the missing events, which has arrived: the held events are applied
	// behind it, or rejected on a later call if the gap stays open.
	TimeoutReject
)

// Config configures a Guard. The zero value is valid: an in-memory state
// with its defaults, gaps rejected at once, no logging.
type Config struct {
	// State keeps the last applied sequence per subject. Nil means a new
	// Memory state with the default MemoryConfig; a nil pointer (a nil
	// *Memory) is refused.
	State State

	// Gap is the gap policy. The zero value is GapReject.
	//
	// MaxHeld, HoldTimeout and OnTimeout configure the hold buffer and
	// apply only under GapHold. Under GapReject, which holds nothing, they
	// are validated but have no effect, and New accepts them: one Config
	// can then switch policy by a flag alone (as a deployment or a test
	// comparing both does), and Guard.MaxHeld, which broker adapters size
	// their unacknowledged-message limits with, reports 0 whatever they
	// say. Setting them does not turn holding on: set Gap to GapHold.
	Gap GapPolicy

	// MaxHeld bounds how many deliveries the hold buffer keeps, over all
	// subjects. Zero means 1024. A gap event that does not fit is rejected
	// with ErrGap. GapHold only (see Gap).
	MaxHeld int

	// HoldTimeout is how long held events wait for the missing ones. Zero
	// means 30s. GapHold only (see Gap). The wait of a subject's held events starts when the gap
	// before them opens: when the first of them is held, and again each
	// time the missing event is delivered but fails (its ApplyFunc or the
	// State returns an error, whether it came directly or was released from
	// the hold; or it failed before Process decided it: the State failed
	// first, or the caller reported it with Guard.Failed — see the package
	// documentation for which events count as missing). A failed event thus
	// always has a full HoldTimeout for its redelivery before TimeoutSkip
	// gives up on it: choose a HoldTimeout longer than the caller's retry
	// delay, or have the caller report that delay with Guard.Retrying
	// (package consumer does), which restarts the wait at the redelivery.
	//
	// The wait and its restarts are this Guard's: with a State shared by
	// several processes, each Guard times out its own held events. Under
	// TimeoutSkip on a RedeliveryState (ordering/pgstate), the failures
	// the other processes' Guards see restart it too, through the State.
	// See TimeoutSkip.
	HoldTimeout time.Duration

	// OnTimeout is what happens when HoldTimeout passes. The zero value is
	// TimeoutSkip. GapHold only (see Gap).
	OnTimeout TimeoutAction

	// MaxGap bounds how far ahead of the next expected sequence an event
	// may be: an event with sequence s on a subject whose last applied
	// sequence is l is refused when s > l+1+MaxGap, at once and whatever
	// the gap policy, with an error matching ErrInvalidEvent (permanent:
	// package consumer dead-letters it). It is neither held nor rejected
	// for a redelivery, and never moves the subject forward: without the
	// bound, one absurd sequence (a producer bug sending 2^63) held under
	// TimeoutSkip is skipped to after HoldTimeout, and every real event of
	// the subject after it is dropped as stale for good.
	//
	// Zero means unlimited, the default: l is 0 for a subject the State
	// does not know, and a Memory state forgets every subject when the
	// process restarts (and idle ones after MemoryConfig.IdleTTL), so any
	// default bound would refuse, for good, every further event of a
	// subject with a longer history than the bound, where a gap hold with
	// TimeoutSkip catches up. Set it (10,000 is well above any real
	// producer's gap) with a State that never forgets a subject
	// (ordering/pgstate) and a stream the consumer reads from its start.
	// Negative is invalid.
	MaxGap int

	// RetryAfter is the retry-after hint of ErrGap errors. Zero means 1s.
	RetryAfter time.Duration

	// Clock times held events. Nil means the system clock.
	Clock Clock

	// Logger receives one record per decision other than apply (apply is
	// logged at debug level); those a lasting gap or failure repeats on
	// every event are paced (see the package documentation). Nil means no
	// logging.
	Logger *slog.Logger
}

// Outcome is the result of processing one event.
type Outcome struct {
	Decision Decision // what was decided
	Sequence uint64   // the event's sequence
	Last     uint64   // the subject's last applied sequence after the decision
	Held     bool     // Gap only: the event is held and will be settled later
}

// ApplyFunc applies one event: the caller's effect. With a persistent State
// it runs inside the State's transaction (see ordering/pgstate).
//
// It runs while its subject is locked in the State, like a callback under a
// sync.Mutex: it must not call Process or Sweep for its own subject (they
// wait for the lock its caller holds: for ever on Memory, until the context
// ends on pgstate). See the package documentation,
// "Calling the Guard from an ApplyFunc".
type ApplyFunc func(ctx context.Context, ev *contract.Event) error

// SettleFunc is called once for every held delivery, when its fate is
// decided: applied (Decision Apply, or Duplicate/Stale when another delivery
// of it got there first) with err nil, failed with the ApplyFunc's or the
// State's error, or rejected with ErrGap. It may run on the goroutine of
// another Process call or of Sweep, and must not call Process or Sweep for
// the same subject; it may call Failed and Retrying (a failed delivery is
// no longer held when it is settled).
type SettleFunc func(ctx context.Context, ev *contract.Event, o Outcome, err error)

// Guard decides, per subject, whether each event is applied, dropped as a
// duplicate or stale, or is a gap, and applies the events it accepts in
// sequence order, exactly once per State.
//
// Events are ordered by (Subject, Sequence); sequences of a subject start at
// 1 and increase by 1. A Guard is safe for concurrent use: events of
// different subjects are processed in parallel, events of the same subject
// one at a time (the State serialises them). Create one with New; the zero
// value is not usable.
type Guard struct {
	state       State
	mem         *Memory // fast path when state is a *Memory
	policy      GapPolicy
	maxHeld     int
	holdTimeout time.Duration
	onTimeout   TimeoutAction
	retryAfter  time.Duration
	maxGap      uint64 // 0: unlimited
	clock       Clock
	log         *slog.Logger
	logs        *lograte.Set // pacing of the decisions logged: non-nil with log
	hold        hold
	maxSeq      uint64 // highest sequence the state can record
	// shared is the state when it records redeliveries for the Guards of
	// other processes (RedeliveryState) and this Guard skips gaps
	// (GapHold with TimeoutSkip): nil otherwise.
	shared RedeliveryState
}

// New returns a Guard configured by cfg, or an error of KindInvalid (code
// "config.invalid") naming the first bad field.
func New(cfg Config) (*Guard, error) {
	switch {
	case cfg.Gap > GapHold:
		return nil, configError("Config.Gap", "unknown policy %d", cfg.Gap)
	case cfg.OnTimeout > TimeoutReject:
		return nil, configError("Config.OnTimeout", "unknown action %d", cfg.OnTimeout)
	case cfg.MaxHeld < 0:
		return nil, configError("Config.MaxHeld", "must be >= 0, got %d", cfg.MaxHeld)
	case cfg.HoldTimeout < 0:
		return nil, configError("Config.HoldTimeout", "must be >= 0, got %s", cfg.HoldTimeout)
	case cfg.MaxGap < 0:
		return nil, configError("Config.MaxGap", "must be >= 0, got %d", cfg.MaxGap)
	case cfg.RetryAfter < 0:
		return nil, configError("Config.RetryAfter", "must be >= 0, got %s", cfg.RetryAfter)
	case cfg.State != nil && nilPointer(cfg.State):
		// A nil *Memory (a NewMemory whose error was ignored) or nil
		// *pgstate.State would panic at the first event.
		return nil, configError("Config.State", "nil %T", cfg.State)
	}
	g := &Guard{
		state:       cfg.State,
		policy:      cfg.Gap,
		maxHeld:     cfg.MaxHeld,
		holdTimeout: cfg.HoldTimeout,
		onTimeout:   cfg.OnTimeout,
		retryAfter:  cfg.RetryAfter,
		maxGap:      uint64(cfg.MaxGap),
		clock:       cfg.Clock,
		log:         cfg.Logger,
	}
	if g.state == nil {
		m, err := NewMemory(MemoryConfig{Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		g.state = m
	}
	g.mem, _ = g.state.(*Memory)
	g.maxSeq = math.MaxUint64
	if b, ok := g.state.(BoundedState); ok {
		g.maxSeq = b.MaxSequence()
	}
	if rs, ok := g.state.(RedeliveryState); ok && g.policy == GapHold && g.onTimeout == TimeoutSkip {
		g.shared = rs
	}
	if g.maxHeld == 0 {
		g.maxHeld = 1024
	}
	if g.holdTimeout == 0 {
		g.holdTimeout = 30 * time.Second
	}
	if g.retryAfter == 0 {
		g.retryAfter = time.Second
	}
	if g.clock == nil {
		g.clock = systemClock{}
	}
	if g.log != nil {
		g.logs = lograte.NewSet(numPaced)
	}
	return g, nil
}

// nilPointer reports whether v is a nil pointer in a non-nil interface.
func nilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// State returns the Guard's state.
func (g *Guard) State() State { return g.state }

// Held returns how many deliveries the hold buffer keeps.
func (g *Guard) Held() int { return int(g.hold.count.Load()) }

// MaxHeld returns the most deliveries the Guard holds at once: Config.MaxHeld
// (1024 when zero) under GapHold, 0 under GapReject, which holds nothing.
// A broker adapter whose held messages stay unacknowledged sizes its
// unacknowledged-message limit with it (see consumer/jetstream).
func (g *Guard) MaxHeld() int {
	if g.policy != GapHold {
		return 0
	}
	return g.maxHeld
}

// Failed tells the Guard that ev was delivered but failed before Process
// decided it — the caller's own checks came first and failed (a
// deduplication store down, the event in progress elsewhere) — and that the
// caller will redeliver it. When ev is one of the sequences a gap of its
// subject waits for (above the last applied sequence, below the lowest held
// one), the wait of the events held behind the gap restarts, as when the
// missing event fails inside Process (see Config.HoldTimeout): its
// redelivery gets a full HoldTimeout before TimeoutSkip gives up on it.
// Otherwise, and for an event without subject or sequence, Failed does
// nothing. It reads the State's last applied sequence only when ev lies
// below the lowest held event of its subject; when that read fails, the
// wait restarts (ev may be the missing one).
//
// Under GapHold with TimeoutSkip on a RedeliveryState (ordering/pgstate),
// it also records there that ev's redelivery is due now, for the Guards of
// the other processes sharing the State, unless ev is at or below the
// subject's last applied sequence: one write, without waiting for the
// subject's lock; a failure of it is logged.
//
// Callers that pass every delivery to Process need not call it: Process
// restarts the wait itself when the missing event fails. Retrying does
// what Failed does and also takes the redelivery's delay into account.
func (g *Guard) Failed(ctx context.Context, ev *contract.Event) {
	if ev == nil || ev.Subject == "" || ev.Sequence == 0 {
		return
	}
	now := g.clock.Now()
	g.undecided(ctx, ev, now)
	g.share(ctx, ev, now)
}

// Retrying tells the Guard that ev failed — in Process, released from the
// hold, or before Process decided it (see Failed) — and that the caller
// redelivers it after delay. When ev is one of the sequences a gap of its
// subject waits for (above the last applied sequence, below the lowest held
// one), the wait of the events held behind the gap restarts at the
// redelivery, now plus delay, rather than now: a redelivery later than
// HoldTimeout (a long backoff, a lease left by a crashed instance) still
// gets a full HoldTimeout before TimeoutSkip gives up on the event and
// drops it as stale. Otherwise, and for an event without subject or
// sequence, it does nothing. A negative delay counts as 0. Like Failed, it
// reads the State's last applied sequence only when ev lies below the
// lowest held event of its subject, and records the redelivery, due now
// plus delay, in a RedeliveryState for the other processes' Guards.
//
// Package consumer calls it for every delivery it answers with Retry for
// a reason other than a gap, with the Result's delay.
func (g *Guard) Retrying(ctx context.Context, ev *contract.Event, delay time.Duration) {
	if ev == nil || ev.Subject == "" || ev.Sequence == 0 {
		return
	}
	at := g.clock.Now().Add(max(delay, 0))
	g.undecided(ctx, ev, at)
	g.share(ctx, ev, at)
}

// Process decides ev and, when it is the next of its subject, applies it
// with apply and records its sequence. Held events that become next are
// applied right after it, in order, and settled.
//
// The answers:
//   - Apply with a nil error: apply ran and succeeded, the sequence is recorded.
//   - Apply with an error: apply failed (its error is returned unchanged);
//     nothing is recorded, so a redelivery applies it again.
//   - Duplicate or Stale, nil error: dropped; apply did not run.
//   - Gap with Held: kept in the hold buffer; settle will be called later.
//     The error is nil even when the State failed after deciding the gap
//     (a failed commit): a gap stores nothing, so the hold stands and settle
//     is the delivery's only answer.
//   - Gap with an error matching ErrGap: rejected; redeliver it later.
//   - An error matching ErrInvalidEvent: ev has no subject, sequence 0, or
//     a sequence above the highest the State can record (BoundedState);
//     or (with Decision Gap) it is further ahead of the next expected
//     sequence than Config.MaxGap. It is permanent; nothing was applied or
//     held.
//   - Any other error comes from the State; nothing was applied.
//
// ev must not be modified after the call while it may be held.
func (g *Guard) Process(ctx context.Context, ev *contract.Event, apply ApplyFunc, settle SettleFunc) (Outcome, error) {
	switch {
	case ev == nil:
		return Outcome{}, invalidEvent("nil event")
	case ev.Subject == "":
		return Outcome{Sequence: ev.Sequence}, invalidEvent("event has no subject")
	case ev.Sequence == 0:
		return Outcome{}, invalidEvent("event has no sequence (sequences start at 1)")
	case apply == nil:
		return Outcome{Sequence: ev.Sequence}, invalidEvent("nil ApplyFunc")
	case ev.Sequence > g.maxSeq:
		// Refused up front: it could never be recorded as applied, so
		// applying it would be rolled back and holding it would keep it
		// until a timeout skip the State cannot store either.
		return Outcome{Sequence: ev.Sequence}, invalidEvent(fmt.Sprintf("sequence %d is above the highest the state can record (%d)", ev.Sequence, g.maxSeq))
	}
	if g.hold.count.Load() > 0 {
		g.expire(ctx, ev.Subject, ev.Sequence)
	}
	o, err := g.advance(ctx, ev, apply, settle)
	if err != nil {
		if o.Decision == Gap && errors.Is(err, ErrInvalidEvent) {
			g.pacedDecision(ctx, gRefused, slog.LevelError, "gap: event refused", contract.As(err).Detail, ev.Subject, o)
		}
		return o, err
	}
	switch o.Decision {
	case Apply:
		if g.log != nil && g.log.Enabled(ctx, slog.LevelDebug) {
			g.decision(ctx, slog.LevelDebug, "event applied", "next in sequence", ev.Subject, o)
		}
		if g.logs != nil && g.logs.Active() {
			g.logs.LogEnds(ctx, g.log, g.clock, pacedEnd)
		}
		if g.hold.count.Load() > 0 {
			// Another delivery of this event may be held: it is settled too.
			if he := g.hold.take(ev.Subject, ev.Sequence); he != nil {
				g.settle(ctx, he, Outcome{Decision: Duplicate, Sequence: o.Sequence, Last: o.Last}, nil)
			}
			g.drain(ctx, ev.Subject, ev.Sequence+1)
		}
	case Duplicate:
		if g.log != nil {
			g.decision(ctx, slog.LevelInfo, "duplicate event dropped",
				fmt.Sprintf("sequence %d already applied", o.Sequence), ev.Subject, o)
		}
	case Stale:
		if g.log != nil {
			g.pacedDecision(ctx, gStale, slog.LevelWarn, "stale event dropped",
				fmt.Sprintf("sequence %d is older than last applied %d", o.Sequence, o.Last), ev.Subject, o)
		}
	case Gap:
		if o.Held {
			if g.log != nil {
				g.pacedDecision(ctx, gHeld, slog.LevelInfo, "gap: event held",
					fmt.Sprintf("expected sequence %d, got %d", o.Last+1, o.Sequence), ev.Subject, o)
			}
			return o, nil
		}
		reason := fmt.Sprintf("expected sequence %d, got %d", o.Last+1, o.Sequence)
		if g.policy == GapHold && settle != nil {
			reason += "; hold buffer full"
		}
		g.pacedDecision(ctx, gRejected, slog.LevelWarn, "gap: event rejected", reason, ev.Subject, o)
		return o, gapError(fmt.Sprintf("subject %q: %s", ev.Subject, reason), g.retryAfter)
	}
	return o, nil
}

// advance decides ev against the State and applies it when it is next.
func (g *Guard) advance(ctx context.Context, ev *contract.Event, apply ApplyFunc, settle SettleFunc) (Outcome, error) {
	if g.mem != nil {
		// Direct calls on the concrete state: no closure escapes, so the
		// in-order path allocates nothing.
		e, err := g.mem.lock(ev.Subject)
		if err != nil {
			g.undecided(ctx, ev, g.clock.Now())
			return Outcome{Sequence: ev.Sequence}, err
		}
		return g.decideLocked(ctx, e, ev, apply, settle)
	}
	var o Outcome
	var err error
	if g.shared != nil {
		err = g.shared.AdvanceRedelivery(ctx, ev.Subject, func(ctx context.Context, last uint64, _ func(context.Context, uint64) (time.Time, error)) (uint64, Redelivery, error) {
			var next uint64
			var err error
			next, o, err = g.decide(ctx, last, ev, apply, settle)
			if err != nil && o.Decision == Apply {
				// The apply failed: ev is redelivered. Recorded before the
				// subject is unlocked, so that no Guard sharing the State
				// skips it in a timeout meanwhile (see expireGap).
				return next, Redelivery{Sequence: ev.Sequence, At: g.clock.Now()}, err
			}
			return next, Redelivery{}, err
		})
	} else {
		err = g.state.Advance(ctx, ev.Subject, func(ctx context.Context, last uint64) (uint64, error) {
			var next uint64
			var err error
			next, o, err = g.decide(ctx, last, ev, apply, settle)
			return next, err
		})
	}
	switch {
	case err == nil:
	case o.Held:
		// The State failed after decide returned (a failed commit). On the
		// gap path the transaction stores no sequence and runs no apply
		// (pgstate at most creates the subject's row at 0, which the next
		// Advance creates again), so nothing the held event needs is lost;
		// and it was added to the hold while the subject was locked, so the
		// apply of the missing event still finds it when it drains. The
		// delivery is held: answering the error too would give it two fates.
		g.pacedDecision(ctx, gStateIgnored, slog.LevelWarn, "state error ignored",
			"event held; a gap stores nothing: "+err.Error(), ev.Subject, o)
		return o, nil
	case o.Decision == 0:
		// The State failed before calling decide (BEGIN, the subject's
		// row lock): nothing was decided, ev may be the missing event.
		now := g.clock.Now()
		g.undecided(ctx, ev, now)
		g.share(ctx, ev, now)
	case o.Decision == Apply && o.Last == ev.Sequence:
		// apply succeeded but the State could not record it: the event
		// failed after all, and the gap it was filling opens again.
		g.restartWait(ev.Subject)
		g.share(ctx, ev, g.clock.Now())
	}
	return o, err
}

// advanceState runs fn with subject locked in the State: through
// AdvanceRedelivery when the State records redeliveries for the other
// processes' Guards (see Guard.shared), through Advance otherwise, fn then
// receiving no due function and its Redelivery being ignored.
func (g *Guard) advanceState(ctx context.Context, subject string, fn RedeliveryFunc) error {
	if g.shared != nil {
		return g.shared.AdvanceRedelivery(ctx, subject, fn)
	}
	return g.state.Advance(ctx, subject, func(ctx context.Context, last uint64) (uint64, error) {
		next, _, err := fn(ctx, last, nil)
		return next, err
	})
}

// share records in a RedeliveryState that ev, which failed, is due to be
// redelivered at at, so that the Guards of the other processes sharing
// the State do not skip it in a timeout before then plus their
// HoldTimeout. Best effort: a State error is logged (paced: a State that
// is down fails it for every event). It does nothing
// unless the Guard skips gaps on such a State (see Guard.shared).
func (g *Guard) share(ctx context.Context, ev *contract.Event, at time.Time) {
	if g.shared == nil || ev.Sequence > g.maxSeq {
		return
	}
	if err := g.shared.Redelivering(ctx, ev.Subject, Redelivery{Sequence: ev.Sequence, At: at}); err != nil {
		g.pacedDecision(ctx, gNotRecorded, slog.LevelWarn, "redelivery not recorded", "state error: "+err.Error(), ev.Subject, Outcome{Sequence: ev.Sequence})
	}
}

func (g *Guard) decideLocked(ctx context.Context, e *memEntry, ev *contract.Event, apply ApplyFunc, settle SettleFunc) (Outcome, error) {
	defer g.mem.unlock(ev.Subject, e)
	last := e.last.Load()
	next, o, err := g.decide(ctx, last, ev, apply, settle)
	if err == nil && next > last {
		e.last.Store(next)
	}
	return o, err
}

// decide runs with the subject locked in the State.
func (g *Guard) decide(ctx context.Context, last uint64, ev *contract.Event, apply ApplyFunc, settle SettleFunc) (uint64, Outcome, error) {
	o := Outcome{Sequence: ev.Sequence, Last: last}
	seq := ev.Sequence
	switch {
	case seq == last:
		o.Decision = Duplicate
		return last, o, nil
	case seq < last:
		o.Decision = Stale
		return last, o, nil
	case seq > last+1:
		o.Decision = Gap
		if g.maxGap > 0 && seq-last-1 > g.maxGap {
			// An absurd sequence: holding it would let a timeout skip to
			// it, and every real event after would be stale.
			return last, o, invalidEvent(fmt.Sprintf("expected sequence %d, got %d: more than Config.MaxGap (%d) ahead", last+1, seq, g.maxGap))
		}
		if g.policy == GapHold && settle != nil {
			// Added while the subject is locked: a concurrent apply of the
			// missing event either ran before (and we would not be here) or
			// runs after and finds this event when it drains.
			o.Held = g.hold.add(ev, apply, settle, g.clock.Now(), g.maxHeld)
		}
		return last, o, nil
	}
	o.Decision = Apply
	if err := apply(ctx, ev); err != nil {
		// Under the subject lock: a timeout skip of this sequence that has
		// not taken the lock yet sees the restarted wait (see expireGap).
		g.restartWait(ev.Subject)
		return last, o, err
	}
	o.Last = seq
	return seq, o, nil
}

// drain applies the held events of subject from sequence next on, in order,
// until one is missing or fails.
func (g *Guard) drain(ctx context.Context, subject string, next uint64) {
	var claimed *heldEvent // released if apply or a settle panics
	defer func() {
		if claimed != nil {
			g.hold.release(claimed)
		}
	}()
	for {
		he := g.hold.claim(subject, next)
		if he == nil {
			return
		}
		claimed = he
		o, err := g.advance(ctx, &he.ev, he.apply, nil)
		if err == nil && o.Decision == Gap {
			// Another drainer took the missing event before us and may have
			// applied it between our decision and this put, finding nothing
			// to release: look once more. Otherwise keep waiting.
			claimed = nil
			g.hold.put(he)
			if last, lerr := g.state.Last(ctx, subject); lerr == nil && last+1 == he.ev.Sequence {
				next = he.ev.Sequence
				continue
			}
			return
		}
		if err != nil {
			// he.ev is missing again until its redelivery (decide already
			// restarted the wait when apply failed; not when the State did).
			// The wait restarts before he leaves the in-flight set, so that
			// no timeout skips he.ev meanwhile, and he leaves it before it
			// is settled, so that the settle sees he.ev as missing, not held
			// (package consumer then calls Retrying with its delay).
			g.restartWait(subject)
			claimed = nil
			g.hold.release(he)
			g.settle(ctx, he, o, err)
			return
		}
		g.decision(g.heldContext(ctx, &he.ev), slog.LevelInfo, "held event released",
			fmt.Sprintf("sequence %d is now %s", o.Sequence, o.Decision), subject, o)
		g.settle(ctx, he, o, err)
		claimed = nil
		g.hold.release(he)
		next++
	}
}

// undecided restarts the wait of the events held behind ev when ev, which
// failed before it was decided (the State failed before deciding it, or the
// caller's own checks did: see Failed), is one of the sequences their gap
// waits for: above the subject's last applied, below its lowest held. Its
// redelivery then has a full HoldTimeout, as after any failure of the
// missing event (see Config.HoldTimeout).
//
// Nothing was decided, so the last applied sequence is read. When that
// fails too, the wait restarts on ev being below the lowest held alone: a
// duplicate or stale ev restarting it by mistake only delays the timeout
// of the events held behind the gap by a HoldTimeout, while a missing event
// not restarting it would be skipped and its redelivery dropped as stale.
// Held events (the drain path) are themselves the lowest held: drain
// restarts the wait after any failure of theirs.
//
// The subject is not locked here, and need not be: a timeout skip running
// at the same time either looks at the hold again under the subject's lock
// after this restart, and waits, or recorded the skip before, when ev had
// not been seen yet — the restart then only delays events held behind a
// later gap.
func (g *Guard) undecided(ctx context.Context, ev *contract.Event, at time.Time) {
	if g.hold.count.Load() == 0 {
		return
	}
	lo, _, ok := g.hold.oldest(ev.Subject)
	if !ok || ev.Sequence >= lo {
		return // nothing held, or ev is held (or behind the held events)
	}
	if last, err := g.state.Last(ctx, ev.Subject); err == nil && ev.Sequence <= last {
		return // duplicate or stale: not a sequence the gap waits for
	}
	g.hold.touch(ev.Subject, at)
}

// restartWait restarts the wait of subject's held events: the next expected
// event was delivered but failed, so the gap before them has just opened
// again. The failed event then has a full HoldTimeout for its redelivery;
// without the restart, events held long before would have a timeout skip
// it at once, and its redelivery would be dropped as stale.
func (g *Guard) restartWait(subject string) {
	g.hold.touch(subject, g.clock.Now())
}

// Sweep applies the timeout policy to every subject whose oldest held event
// waited HoldTimeout, and returns how many subjects it settled. Process
// does the same for the subject it processes; call Sweep periodically
// (the consumer adapters do) so that a gap on a quiet subject is settled too.
func (g *Guard) Sweep(ctx context.Context) int {
	if g.hold.count.Load() == 0 {
		return 0
	}
	n := 0
	for _, s := range g.hold.subjectsList() {
		if g.expire(ctx, s, 0) {
			n++
		}
	}
	return n
}

// expire applies the timeout policy to subject when its oldest held event
// waited HoldTimeout, and reports whether it did. arriving is the sequence
// of the event Process is about to decide, 0 for Sweep: a gap it lies in
// is skipped only up to it (see expireGap). Under TimeoutSkip it
// skips gap after gap while the events still held behind the next gap have
// also waited HoldTimeout, so one Sweep settles everything that timed out
// rather than one gap per sweep. A wait restarts when the gap reopens
// (restartWait): a held event that fails while this runs stops it there.
func (g *Guard) expire(ctx context.Context, subject string, arriving uint64) bool {
	now := g.clock.Now()
	settled := false
	var prevMin uint64
	for {
		minSeq, since, ok := g.hold.oldest(subject)
		if !ok || now.Sub(since) < g.holdTimeout || (settled && minSeq <= prevMin) {
			return settled // nothing (more) timed out, or no progress
		}
		if !g.expireGap(ctx, subject, minSeq, now, since, arriving) {
			return settled
		}
		settled, prevMin = true, minSeq
	}
}

// expireGap settles the gap before minSeq, the lowest held sequence of
// subject, whose oldest entry (waiting since since) had waited HoldTimeout
// at now: TimeoutReject settles every held event of the subject with a gap
// error; TimeoutSkip records minSeq-1 as applied and drains what follows,
// after checking again under the subject's lock that the hold still says
// so. When arriving, the event being processed, is one of the sequences the
// gap waits for, it is no longer missing: TimeoutSkip skips only the
// sequences before it (none when it is the next one), and Process applies
// it; TimeoutReject rejects nothing on that call. It reports false when
// nothing was settled: the hold changed meanwhile, nothing before arriving
// is missing, arriving is one TimeoutReject leaves the gap to, or the State
// failed with an error worth retrying.
func (g *Guard) expireGap(ctx context.Context, subject string, minSeq uint64, now, since time.Time, arriving uint64) bool {
	if g.onTimeout == TimeoutReject {
		if arriving != 0 && arriving < minSeq {
			// The event being processed may be one the gap waits for: it
			// has arrived, and the held events are applied behind it
			// rather than rejected for a redelivery. The timeout applies
			// again on the next call should the gap stay open.
			if last, err := g.state.Last(ctx, subject); err != nil || last < arriving {
				return false
			}
		}
		for _, he := range g.hold.takeAll(subject) {
			o := Outcome{Decision: Gap, Sequence: he.ev.Sequence}
			reason := fmt.Sprintf("held %s waiting for sequences before %d", now.Sub(since), minSeq)
			g.pacedDecision(g.heldContext(ctx, &he.ev), gHeldRejected, slog.LevelWarn, "gap: held event rejected", reason, subject, o)
			g.settle(ctx, he, o, gapError(fmt.Sprintf("subject %q: %s", subject, reason), g.retryAfter))
		}
		return true
	}
	var from, to uint64
	current := false
	var postponed time.Time // a sequence of the gap is due to be redelivered then
	err := g.advanceState(ctx, subject, func(ctx context.Context, last uint64, due func(context.Context, uint64) (time.Time, error)) (uint64, Redelivery, error) {
		// Look again now that the subject is locked: since expire looked,
		// the missing event may have failed (restarting the wait) or an
		// event below minSeq may have been held. Skipping then would drop
		// a redelivery or record a held event as applied.
		lo, s, ok := g.hold.oldest(subject)
		if !ok || lo != minSeq || now.Sub(s) < g.holdTimeout {
			return last, Redelivery{}, nil
		}
		to = minSeq - 1
		if last < arriving && arriving < minSeq {
			// The event being processed is one the gap waits for: it has
			// arrived, skipping it would drop it as stale. Skip only what
			// is still missing before it.
			if arriving == last+1 {
				return last, Redelivery{}, nil
			}
			to = arriving - 1
		}
		if due != nil && last < to {
			// The same look at the failures recorded in the State by
			// every Guard sharing it: a sequence to skip that failed in
			// another process and is due to be redelivered restarts the
			// wait at its redelivery, as a failure seen here does.
			at, err := due(ctx, to)
			if err != nil {
				return last, Redelivery{}, err
			}
			if !at.IsZero() && now.Sub(at) < g.holdTimeout {
				g.hold.touch(subject, at)
				postponed = at
				return last, Redelivery{}, nil
			}
		}
		from, since, current = last+1, s, true
		if last < to {
			return to, Redelivery{}, nil
		}
		return last, Redelivery{}, nil
	})
	if err != nil {
		g.pacedDecision(ctx, gSkipFailed, slog.LevelError, "gap skip failed", "state error: "+err.Error(), subject, Outcome{Decision: Gap, Sequence: minSeq})
		if !current || !errors.Is(err, contract.ErrInvalid) {
			return false // the next sweep tries again
		}
		// The State refuses to record minSeq-1 (a sequence above what it
		// can store): it never will, and the events held from minSeq on
		// can never be applied. Settle them with the permanent error so
		// the caller dead-letters them rather than holding them forever.
		for _, he := range g.hold.takeFrom(subject, minSeq) {
			o := Outcome{Decision: Gap, Sequence: he.ev.Sequence}
			g.pacedDecision(g.heldContext(ctx, &he.ev), gHeldRefused, slog.LevelError, "gap: held event refused", "state refuses the skip: "+err.Error(), subject, o)
			g.settle(ctx, he, o, err)
		}
		return true
	}
	if !current {
		if !postponed.IsZero() {
			g.decision(ctx, slog.LevelInfo, "gap skip postponed",
				fmt.Sprintf("a sequence at or before %d failed and is due to be redelivered at %s", to, postponed.Format(time.RFC3339Nano)),
				subject, Outcome{Decision: Gap, Sequence: minSeq})
		}
		return false
	}
	if from <= to {
		g.decision(ctx, slog.LevelWarn, "gap skipped",
			fmt.Sprintf("waited %s for sequences %d..%d", now.Sub(since), from, to),
			subject, Outcome{Decision: Gap, Sequence: minSeq, Last: to})
	}
	// Held events at or below the recorded sequence are settled as
	// duplicate or stale by drain's advance; start from the lowest.
	g.drainFrom(ctx, subject)
	return true
}

// drainFrom drains subject starting at its lowest held sequence.
func (g *Guard) drainFrom(ctx context.Context, subject string) {
	for {
		lo, _, ok := g.hold.oldest(subject)
		if !ok {
			return
		}
		before := g.hold.count.Load()
		g.drain(ctx, subject, lo)
		if g.hold.count.Load() == before {
			return // nothing could be released
		}
	}
}

func (g *Guard) settle(ctx context.Context, he *heldEvent, o Outcome, err error) {
	for _, s := range he.settles {
		s(ctx, &he.ev, o, err)
	}
}

// heldContext returns ctx for the log line about ev, a held event decided
// on the call of another event or of Sweep, whose correlation id ctx
// carries: the line carries ev's own correlation id (logctx.ExtractEvent),
// or none when ev has no valid one, never the other call's.
func (g *Guard) heldContext(ctx context.Context, ev *contract.Event) context.Context {
	if g.log == nil {
		return ctx
	}
	if cctx, err := logctx.ExtractEvent(ctx, ev); err == nil && ev.CorrelationID != "" {
		return cctx
	}
	if logctx.CorrelationID(ctx) != "" {
		return logctx.WithCorrelationID(ctx, "")
	}
	return ctx
}

func (g *Guard) decision(ctx context.Context, level slog.Level, decision, reason, subject string, o Outcome) {
	if g.log == nil {
		return
	}
	g.logDecision(ctx, level, decision, reason, subject, o, 0)
}

func (g *Guard) logDecision(ctx context.Context, level slog.Level, decision, reason, subject string, o Outcome, suppressed int64) {
	logctx.Decision(ctx, g.log, level, decision, reason, lograte.Suppressed([]slog.Attr{
		slog.String("subject", logctx.Short(subject)), // a hostile megabyte subject is cut
		slog.Uint64("sequence", o.Sequence),
		slog.Uint64("last_sequence", o.Last)}, suppressed)...)
}

// The decisions a gap that stays open, a producer replaying old events or
// a State that is down repeats on every event: their lines are paced (see
// package lograte), a few every 10s per Guard and decision instead of one
// per event.
const (
	gHeld = iota
	gRejected
	gHeldRejected
	gStale
	gRefused
	gStateIgnored
	gSkipFailed
	gHeldRefused
	gNotRecorded
	numPaced
)

// pacedDecision logs decision as Guard.decision does, at level or at Debug
// as the pace of slot says.
func (g *Guard) pacedDecision(ctx context.Context, slot int, level slog.Level, decision, reason, subject string, o Outcome) {
	if g.log == nil {
		return
	}
	level, n := g.logs.Occur(slot, g.clock.Now(), level)
	if g.log.Enabled(ctx, level) {
		g.logDecision(ctx, level, decision, reason, subject, o, n)
	}
}

func pacedEnd(slot int) (string, string) {
	return [numPaced]string{
		gHeld:         "gap holds ended",
		gRejected:     "gap rejections ended",
		gHeldRejected: "held event rejections ended",
		gStale:        "stale events ended",
		gRefused:      "gap refusals ended",
		gStateIgnored: "state errors ended",
		gSkipFailed:   "gap skip failures ended",
		gHeldRefused:  "held event refusals ended",
		gNotRecorded:  "redeliveries recorded again",
	}[slot], lograte.EndReason
}
