package breaker

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/sadpath/sadpath/contract"
)

var (
	errOpenState       = gobreaker.ErrOpenState
	errTooManyRequests = gobreaker.ErrTooManyRequests

	// Outcomes as errors handed to gobreaker, so it classifies without
	// calling Classify a second time.
	errFailure = errors.New("breaker: failure")
	errIgnore  = errors.New("breaker: ignored")
	errGate    = errors.New("breaker: open delay")
	errTrip    = errors.New("breaker: trip")
	// errGoexit is the panic a call that leaves by runtime.Goexit is
	// turned into, until exec recovers it: see exec.
	errGoexit = errors.New("breaker: runtime.Goexit")
)

// heldOff is the panic a call whose result the breaker discards (see
// finish: a half-open probe held off by a Trip, a call spanning a state
// change) is turned into when it panics or leaves by runtime.Goexit, and so
// is a call admitted by gobreaker that never ran, because a hook reporting
// a transition before it panicked or exited, until exec recovers it and
// re-raises v (nil: Goexit, which goes on). gobreaker
// counts every panic, as the error fmt.Errorf("%v", p): heldOff's text makes
// IsExcluded exclude it, so it neither reopens the breaker nor counts as a
// consecutive trip, and still frees its probe slot.
type heldOff struct{ v any }

const heldOffText = "breaker: call ended by panic or runtime.Goexit after its result was discarded"

func (*heldOff) Error() string { return heldOffText }

// hookEnded is the panic a call whose Config.OnCall hook panicked or left
// by runtime.Goexit is turned into, until exec recovers it and re-raises v
// (nil: Goexit, which goes on). The call itself had returned with outcome
// o: its Error text makes gobreaker count o (see excluded and successful),
// not the failure it counts any other panic as, so a failing hook never
// trips the breaker on successful calls.
type hookEnded struct {
	v any
	o Outcome
}

const (
	hookSuccessText = "breaker: OnCall ended by panic or runtime.Goexit after a success"
	hookIgnoredText = "breaker: OnCall ended by panic or runtime.Goexit after an ignored call"
	hookFailureText = "breaker: OnCall ended by panic or runtime.Goexit after a failure"
)

func (h *hookEnded) Error() string {
	switch h.o {
	case Success:
		return hookSuccessText
	case Ignore:
		return hookIgnoredText
	}
	return hookFailureText
}

// excluded is gobreaker's IsExcluded: the outcomes it must not count.
func excluded(err error) bool {
	if err == nil || err == errFailure {
		return false
	}
	if err == errIgnore || err == errGate {
		return true
	}
	s := err.Error()
	return s == heldOffText || s == hookIgnoredText // a held-off call's panic (see heldOff), an ignored call's hook (see hookEnded)
}

// successful is gobreaker's IsSuccessful: a nil error, or the panic of the
// OnCall hook of a successful call (see hookEnded).
func successful(err error) bool {
	return err == nil || err != errFailure && err.Error() == hookSuccessText
}

const (
	forcedNone int32 = iota
	forcedOpen
	forcedClosed
)

// Breaker is a circuit breaker: it watches the outcomes of calls to one
// dependency and, when too many fail, fails fast instead of calling it.
//
// The model: in the closed state calls flow and are counted over a rolling
// window; once the window holds MinCalls counted calls and the failure ratio
// reaches FailureRatio, the breaker opens. Open, every call fails at once
// with a *contract.Error of KindUnavailable whose RetryAfter is the time
// until the next probe. After the open delay (OpenTimeout, doubling with
// jitter on each consecutive trip up to MaxOpenTimeout) the breaker is
// half-open: HalfOpenProbes calls go through; if all succeed it closes, if
// one fails it opens again.
//
// Counting, tripping and probe limiting are gobreaker/v2's
// CircuitBreaker; Breaker adds classification, slow calls, the growing open
// delay on an injectable clock, operator control, and observation with
// context.
//
// A Breaker is safe for concurrent use. Build one with New; the zero value is
// not usable.
type Breaker struct {
	name   string
	cb     *gobreaker.CircuitBreaker[struct{}]
	cfg    Config
	slow   int64 // SlowCallThreshold in ns; 0 = off
	clock  Clock // nil = system clock
	epoch  time.Time
	random func() float64

	forced    atomic.Int32
	openUntil atomic.Int64  // b.now() deadline of the open delay; 0 = not open by delay
	pending   atomic.Int32  // transitions queued by gobreaker's callback
	gen       atomic.Uint64 // gobreaker's state changes: the result of a call that spans one is discarded
	// consecutive trips without a close, or since Reset ended a ForceOpen:
	// written from gobreaker's callbacks, and by Reset
	trips atomic.Int64

	// guarded by gobreaker's mutex (written only from its callbacks)
	tripCount Counts // counts of the last ReadyToTrip that returned true

	opMu    sync.Mutex // serialises the operator calls: Trip, Probe, ForceOpen, ForceClosed, Reset
	tripOn  atomic.Bool
	tripReq atomic.Pointer[tripRequest]

	pmu      sync.Mutex
	queue    []queued
	draining bool   // one goroutine reports at a time, in queue order
	changes  uint64 // underlying changes queued (or dropped while forced); guarded by pmu

	probeWait  time.Duration // RetryAfter of a CodeTooManyProbes rejection: see New
	errOp      string        // prebuilt Detail strings: rejection allocates one *contract.Error only
	detailOpen string
	detailFull string

	inst     *instruments
	observed bool // inst or Config.OnCall is set: a call's outcome goes somewhere

	// afterStateRead, when set (by internal tests only), runs in
	// clearOpenDelay between its read of gobreaker's state and pmu: where a
	// probe ending on another goroutine can change that state.
	afterStateRead func()
}

// New returns a Breaker configured by cfg, or a *contract.Error of
// KindInvalid naming the first bad field.
func New(cfg Config) (*Breaker, error) {
	c, err := cfg.withDefaults("Config")
	if err != nil {
		return nil, err
	}
	b := &Breaker{
		name:       c.Name,
		cfg:        c,
		slow:       int64(c.SlowCallThreshold),
		clock:      c.Clock,
		random:     c.Rand,
		errOp:      c.Name,
		detailOpen: "circuit breaker is open: failing fast",
		detailFull: "circuit breaker is half-open and its probes are taken: failing fast",
	}
	if b.clock != nil {
		b.epoch = b.clock.Now()
	} else {
		b.epoch = time.Now()
	}
	if b.random == nil {
		b.random = rand.Float64
	}
	// A call turned away by probes in flight may go through as soon as they
	// end: they close the breaker, or one fails and reopens it (its
	// rejections then carry the open delay). How long they run is unknown;
	// a healthy probe ends within SlowCallThreshold (a longer one is a
	// failure), else one second, the unit of an HTTP Retry-After. At least
	// a millisecond, at most OpenTimeout.
	b.probeWait = time.Second
	if c.SlowCallThreshold > 0 {
		b.probeWait = max(c.SlowCallThreshold, time.Millisecond)
	}
	b.probeWait = min(b.probeWait, c.OpenTimeout)
	minCalls, ratio := uint32(c.MinCalls), c.FailureRatio
	// gobreaker rounds Interval up to a whole number of BucketPeriods: a
	// Window that Buckets does not divide to the nanosecond would get one
	// bucket more (1s in 3 buckets counted over 1.33s), so the window is
	// Buckets whole periods, short of Window by under Buckets nanoseconds.
	period := c.Window / time.Duration(c.Buckets)
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         c.Name,
		MaxRequests:  uint32(c.HalfOpenProbes),
		Interval:     period * time.Duration(c.Buckets),
		BucketPeriod: period,
		// The open delay is enforced by b.openUntil on b's clock, so
		// gobreaker's own open state ends at once: the first call after
		// the delay turns it half-open.
		Timeout: time.Nanosecond,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			if b.tripOn.Load() {
				b.tripCount = countsOf(n)
				return true
			}
			counted := n.TotalSuccesses + n.TotalFailures
			if counted < minCalls || float64(n.TotalFailures) < ratio*float64(counted) {
				return false
			}
			b.tripCount = countsOf(n)
			return true
		},
		OnStateChange: b.onGobreakerChange,
		IsSuccessful:  successful,
		IsExcluded:    excluded,
	})
	if !c.DisableMetrics {
		inst, err := newInstruments(b, c.MeterProvider)
		if err != nil {
			return nil, contract.Wrap(contract.KindInternal, "breaker", err)
		}
		b.inst = inst
	}
	b.observed = b.inst != nil || b.cfg.OnCall != nil
	return b, nil
}

func countsOf(n gobreaker.Counts) Counts {
	return Counts{
		Requests:             n.Requests,
		Successes:            n.TotalSuccesses,
		Failures:             n.TotalFailures,
		Ignored:              n.TotalExclusions,
		ConsecutiveSuccesses: n.ConsecutiveSuccesses,
		ConsecutiveFailures:  n.ConsecutiveFailures,
	}
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// now returns the time since b.epoch on b's clock (monotonic for the system clock).
func (b *Breaker) now() int64 {
	if b.clock == nil {
		return int64(time.Since(b.epoch))
	}
	return int64(b.clock.Now().Sub(b.epoch))
}

// State returns the current state. An open breaker whose delay has passed
// reports StateHalfOpen: its next call is a probe (or StateClosed in the
// race Trip describes, where a probe that completed as it was tripped
// closed it).
func (b *Breaker) State() State {
	switch b.forced.Load() {
	case forcedOpen:
		return StateForcedOpen
	case forcedClosed:
		return StateForcedClosed
	}
	if u := b.openUntil.Load(); u != 0 && b.now() < u {
		return StateOpen
	}
	switch b.cb.State() {
	case gobreaker.StateClosed:
		return StateClosed
	default: // gobreaker's open state lasts 1ns: it is half-open for any caller
		return StateHalfOpen
	}
}

// Counts returns the counts of the current window (closed) or of the
// current half-open period.
func (b *Breaker) Counts() Counts {
	b.cb.State() // gobreaker ages its window out on State, not on Counts
	return countsOf(b.cb.Counts())
}

// RetryAfter returns how long until the breaker lets a probe through: zero
// when calls go through (closed, half-open, forced closed, even over an open
// delay beneath the force). While forced open no probe goes through until
// Reset: it returns OpenTimeout, the hint the rejections carry.
func (b *Breaker) RetryAfter() time.Duration {
	switch b.forced.Load() {
	case forcedOpen:
		return b.cfg.OpenTimeout
	case forcedClosed:
		return 0
	}
	if u := b.openUntil.Load(); u != 0 {
		if d := u - b.now(); d > 0 {
			return time.Duration(d)
		}
	}
	return 0
}

// Do runs fn if b lets the call through and returns its result. A rejected
// call returns a *contract.Error of KindUnavailable (code CodeOpen or
// CodeTooManyProbes, Op the breaker's name, errors.Is ErrOpen or
// ErrTooManyProbes) without calling fn. Its RetryAfter is, when open, the
// time until the next probe (OpenTimeout while forced open); when the
// half-open probes are taken, the time by which they can have ended:
// SlowCallThreshold when set (a healthy probe ends within it), else one
// second, at most OpenTimeout either way — the probes may close the breaker
// at any moment, and a retry that finds it reopened is told the open delay.
//
// fn's error is classified by Config.Classify; a call longer than
// SlowCallThreshold counts as a failure whatever its result, which Do still
// returns. A panic in fn counts as a failure and is re-raised; so does
// runtime.Goexit (t.FailNow, wrappers that call it): the call counts as a
// failure and the goroutine goes on exiting.
func Do[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	var (
		res  T
		err  error
		zero T
	)
	classify := b.cfg.Classify
	if rej := b.exec(ctx, func() Outcome {
		if res, err = fn(ctx); err == nil {
			return Success
		}
		return classify(err)
	}); rej != nil {
		return zero, rej
	}
	return res, err
}

// Execute is Do for a function without a result.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	var err error
	classify := b.cfg.Classify
	if rej := b.exec(ctx, func() Outcome {
		if err = fn(ctx); err == nil {
			return Success
		}
		return classify(err)
	}); rej != nil {
		return rej
	}
	return err
}

// exec admits the call, runs run (which calls the user's function and
// classifies its result), and records the outcome. It returns the rejection
// error, or nil when run ran.
func (b *Breaker) exec(ctx context.Context, run func() Outcome) error {
	if ctx == nil {
		ctx = context.Background()
	}
	switch b.forced.Load() {
	case forcedNone:
	case forcedOpen:
		b.record(ctx, Rejected)
		return b.rejectErr(CodeOpen, errOpenState, b.cfg.OpenTimeout)
	default: // forced closed: run uncounted by the breaker, in metrics only
		b.runForcedClosed(ctx, run)
		return nil
	}
	if u := b.openUntil.Load(); u != 0 {
		if d := u - b.now(); d > 0 {
			b.record(ctx, Rejected)
			return b.rejectErr(CodeOpen, errOpenState, time.Duration(d))
		}
		b.endOpenDelay(ctx, u, "open delay elapsed: probing")
	}
	// One deferred check reports the transitions this call caused, whether
	// it returned, panicked or called runtime.Goexit, and ends the errGoexit
	// panic of the latter (see below): the goroutine goes on exiting. It
	// also ends a heldOff panic, re-raising the call's own panic after the
	// report (or letting its Goexit go on).
	goexit := false // a panic of exec's own (errGoexit, heldOff) is on its way up
	defer func() {
		if goexit {
			r := recover()
			if h, ok := r.(*heldOff); ok {
				r = h.v // the call's own panic; nil for Goexit
			} else if h, ok := r.(*hookEnded); ok {
				r = h.v // OnCall's panic; nil for Goexit
			} else if r == errGoexit {
				r = nil
			} // else not ours: raised while gobreaker counted the call
			if r != nil {
				if b.pending.Load() != 0 {
					b.flush(ctx)
				}
				panic(r)
			}
		}
		if b.pending.Load() != 0 {
			b.flush(ctx)
		}
	}()
	_, gerr := b.cb.Execute(func() (struct{}, error) {
		const (
			admitted  = iota
			running   // in run: the user's function
			recording // in record, after run returned o: Config.OnCall
			returned
		)
		phase := admitted
		var (
			gen uint64
			o   Outcome
		)
		// A call that does not return counts as a failure. gobreaker
		// counts a panic so (its recover) and re-raises it, but knows
		// nothing of runtime.Goexit (t.FailNow, and wrappers that call
		// it): the call would keep its half-open probe slot for good. So
		// Goexit is turned into a panic for gobreaker, which counts it and
		// frees the slot, and exec recovers that panic. A call whose result
		// is discarded (finish) must not be counted by gobreaker either: its
		// panic or Goexit becomes a heldOff panic, which gobreaker excludes.
		// A call that returned counts as its outcome o even when OnCall then
		// panics or exits: that becomes a hookEnded panic, counted as o. A
		// call that never ran (a hook reporting a transition before it
		// panicked or exited) is not counted: a heldOff panic too.
		defer func() {
			if phase == returned {
				return
			}
			if phase == recording {
				goexit = true // exec recovers the hookEnded panic and re-raises OnCall's
				panic(&hookEnded{v: recover(), o: o})
			}
			if phase == admitted { // a hook reporting a transition: the call never ran, nothing to count
				goexit = true
				panic(&heldOff{v: recover()})
			}
			if phase == running && !b.finish(ctx, gen, Failure) {
				goexit = true // exec recovers the heldOff panic and re-raises the call's own
				panic(&heldOff{v: recover()})
			}
			if r := recover(); r != nil {
				panic(r) // a panic, re-raised unchanged; gobreaker counts it
			}
			goexit = true
			panic(errGoexit)
		}()
		if b.pending.Load() != 0 {
			b.flush(ctx) // report the half-open transition before the probe runs
		}
		if u := b.openUntil.Load(); u != 0 {
			if b.now() < u {
				phase = returned
				return struct{}{}, errGate // tripped while this call was being admitted
			}
			b.endOpenDelay(ctx, u, "open delay elapsed: probing")
		}
		gen = b.gen.Load()
		var start int64
		if b.slow != 0 {
			start = b.now()
		}
		phase = running
		o = ran(run())
		phase = returned
		if b.slow != 0 && b.now()-start > b.slow {
			o = Slow // whatever it returned, a caller's error included: the latency is the dependency's
		}
		// finish, written out: the closed path pays no call when the
		// outcome goes nowhere (no metrics, no OnCall).
		if b.openUntil.Load() != 0 || b.gen.Load() != gen {
			b.count(ctx, o)
			return struct{}{}, errIgnore
		}
		if b.observed {
			phase = recording
			b.record(ctx, o)
			phase = returned
		}
		switch o {
		case Success:
			return struct{}{}, nil
		case Ignore:
			return struct{}{}, errIgnore
		}
		return struct{}{}, errFailure
	})
	switch gerr {
	case nil, errFailure, errIgnore:
		return nil
	case errTooManyRequests:
		b.record(ctx, Rejected)
		return b.rejectErr(CodeTooManyProbes, errTooManyRequests, b.probeWait)
	}
	// errGate, or gobreaker's open state (a 1ns race)
	b.record(ctx, Rejected)
	ra := b.RetryAfter()
	if ra == 0 {
		ra = time.Millisecond
	}
	return b.rejectErr(CodeOpen, errOpenState, ra)
}

// runForcedClosed runs a call ForceClosed lets through: uncounted by the
// breaker and not reported to Config.OnCall, but in the metrics with the
// outcome it would have in any other state: Slow past SlowCallThreshold
// whatever it returned, Failure when it panics or leaves by
// runtime.Goexit, which go on unchanged (the deferred count recovers
// nothing). Off the closed path, which keeps its own inline timing.
func (b *Breaker) runForcedClosed(ctx context.Context, run func() Outcome) {
	if b.inst == nil { // the outcome goes nowhere
		run()
		return
	}
	var start int64
	if b.slow != 0 {
		start = b.now()
	}
	returned := false
	defer func() {
		if !returned {
			b.count(ctx, Failure)
		}
	}()
	o := ran(run())
	returned = true
	if b.slow != 0 && b.now()-start > b.slow {
		o = Slow // whatever it returned, as in every other state
	}
	b.count(ctx, o)
}

// ran returns the outcome of a call that ran as Classify gave it, or Failure
// for one such a call cannot have (Rejected, or a value past the constants,
// from a Config.Classify or TransportConfig.Classify): counted, reported and
// in the metrics as a failure.
func ran(o Outcome) Outcome {
	if o > Slow {
		return Failure
	}
	return o
}

// finish records the outcome o of a call that ran since gobreaker's state
// change gen, and reports whether gobreaker may count it. A call that spans
// a state change or a Trip is in the metrics only: its result belongs to
// the state before, so neither gobreaker nor Config.OnCall counts it.
// gobreaker discards it anyway after a state change (a new generation);
// after an open delay set while the call ran by a Trip that found the
// half-open probes taken (see Trip), gobreaker must not close or reopen on
// it. (A state change that lands between this check and gobreaker's count
// is still reported to OnCall: a race of nanoseconds.)
func (b *Breaker) finish(ctx context.Context, gen uint64, o Outcome) bool {
	if b.openUntil.Load() != 0 || b.gen.Load() != gen {
		b.count(ctx, o)
		return false
	}
	b.record(ctx, o)
	return true
}

// endOpenDelay clears the open delay u (see clearOpenDelay) and reports it.
func (b *Breaker) endOpenDelay(ctx context.Context, u int64, reason string) {
	if b.clearOpenDelay(ctx, u, reason) {
		b.flush(ctx)
	}
}

// clearOpenDelay clears the open delay u and queues the transition to
// half-open; only the caller that clears it queues it, so it is reported
// once. When gobreaker closed during the delay (a probe completed as a Trip
// held it open: see onGobreakerChange) the breaker closes instead. It
// reports whether it cleared the delay; the caller flushes.
//
// The state is read before pmu is taken (gobreaker's callbacks take pmu under
// gobreaker's mutex), so a held-off probe may close the breaker in between:
// its callback counts the change in gen before it takes pmu, so under pmu an
// unchanged gen means the state read still stands, and a change means
// reading it again once the callback is done (State waits for gobreaker's
// mutex).
func (b *Breaker) clearOpenDelay(ctx context.Context, u int64, reason string) bool {
	for {
		gen := b.gen.Load()
		t := Transition{Name: b.name, From: StateOpen, To: StateHalfOpen, Reason: reason}
		if b.cb.State() == gobreaker.StateClosed {
			t.To = StateClosed
			t.Reason = "open delay ended: " + strconv.Itoa(b.cfg.HalfOpenProbes) + " probes had succeeded as it was tripped"
		}
		if f := b.afterStateRead; f != nil {
			f()
		}
		b.pmu.Lock() // clear and queue atomically, so the report keeps state order
		if b.gen.Load() != gen {
			b.pmu.Unlock()
			continue
		}
		ok := b.openUntil.CompareAndSwap(u, 0)
		if ok {
			b.queueLocked(queued{ctx: ctx, t: t})
		}
		b.pmu.Unlock()
		return ok
	}
}

func (b *Breaker) rejectErr(code string, cause error, retryAfter time.Duration) error {
	detail := b.detailOpen
	if cause == errTooManyRequests {
		detail = b.detailFull
	}
	return &contract.Error{
		Kind:       contract.KindUnavailable,
		Code:       code,
		Op:         b.errOp,
		Detail:     detail,
		RetryAfter: retryAfter,
		Cause:      cause,
	}
}

// openDelay returns the open delay of the n-th consecutive trip (n >= 1):
// OpenTimeout doubled n-1 times, capped at MaxOpenTimeout, and for n >= 2
// shortened at random by up to Jitter, never below OpenTimeout.
func (b *Breaker) openDelay(n int) time.Duration {
	base, maxd := b.cfg.OpenTimeout, b.cfg.MaxOpenTimeout
	d := base
	for i := 1; i < n && d < maxd; i++ {
		if d > maxd/2 {
			d = maxd
			break
		}
		d *= 2
	}
	d = min(d, maxd)
	if n >= 2 {
		r := b.random()
		if !(r >= 0 && r < 1) { // outside the documented [0, 1), NaN included: no jitter
			r = 0
		}
		d -= time.Duration(float64(d) * b.cfg.Jitter * r)
		d = max(d, base)
	}
	return d
}

// onGobreakerChange runs under gobreaker's mutex: it updates the open delay
// and queues the transition; the calling goroutine reports it (flush) once
// the mutex is released.
func (b *Breaker) onGobreakerChange(_ string, from, to gobreaker.State) {
	b.gen.Add(1)
	switch to {
	case gobreaker.StateOpen:
		d := b.openDelay(int(b.trips.Add(1)))
		req := b.tripReq.Load()
		if req != nil && req.openFor > 0 {
			d = req.openFor
		}
		t := Transition{Name: b.name, From: StateClosed, To: StateOpen, OpenFor: d}
		switch {
		case req != nil:
			t.Reason = req.reason
			t.From = stateOf(from)
		case from == gobreaker.StateClosed:
			t.Counts = b.tripCount
			t.Reason = "failure rate " + strconv.FormatFloat(b.tripCount.FailureRate(), 'f', 2, 64) +
				" over " + strconv.Itoa(int(b.tripCount.Successes+b.tripCount.Failures)) +
				" calls >= " + strconv.FormatFloat(b.cfg.FailureRatio, 'f', 2, 64)
		default:
			t.From = StateHalfOpen
			t.Reason = "probe failed"
		}
		b.pmu.Lock()
		b.openLocked(b.now()+int64(d), queued{t: t})
		b.pmu.Unlock()
	case gobreaker.StateClosed:
		b.trips.Store(0)
		t := Transition{Name: b.name, From: stateOf(from), To: StateClosed,
			Reason: strconv.Itoa(b.cfg.HalfOpenProbes) + " probes succeeded"}
		b.pmu.Lock()
		report := true
		if u := b.openUntil.Load(); u != 0 {
			// A Trip landed as the last probe completed (exec ignores the
			// probes a Trip held off): the breaker was reported open. It
			// stays open while the delay lasts, without a report, and
			// endOpenDelay reports open > closed when the delay ends.
			report = b.now() >= u && b.openUntil.CompareAndSwap(u, 0)
			t.From = StateOpen
		}
		if report {
			b.queueLocked(queued{t: t})
		}
		b.pmu.Unlock()
	}
	// gobreaker's open -> half-open is reported by exec when the open delay
	// on b's clock has elapsed.
}

// openLocked opens the breaker by delay until until and queues q, which
// reports it; pmu must be held, so no caller ends the delay (endOpenDelay)
// before its opening is queued. A breaker already open by delay stays open:
// a Trip held its half-open probes off and one of them failed as it landed,
// or another Trip won the race. Then nothing changed state, so nothing is
// reported, and the later deadline stands: a failed probe never shortens an
// operator's Trip.
func (b *Breaker) openLocked(until int64, q queued) {
	if b.openUntil.Load() != 0 {
		b.extendOpen(until)
		return
	}
	b.openUntil.Store(until)
	b.queueLocked(q)
}

// extendOpen moves the open deadline to until when that is later; it does
// nothing when the delay was ended meanwhile.
func (b *Breaker) extendOpen(until int64) {
	for {
		u := b.openUntil.Load()
		if u == 0 || u >= until || b.openUntil.CompareAndSwap(u, until) {
			return
		}
	}
}

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateClosed:
		return StateClosed
	case gobreaker.StateOpen:
		return StateOpen
	}
	return StateHalfOpen
}

// queued is a transition waiting to be reported; ctx is nil when the
// transition came from gobreaker's callback, which has none: the goroutine
// that reports it is then the one whose call caused it (or, under a race, a
// concurrent caller).
type queued struct {
	ctx context.Context
	t   Transition
}

// queueLocked queues a change of the underlying breaker; pmu must be held.
// While the breaker is forced nothing is queued: State() stays forced, and
// Reset reports the state it hands control back to. (Only a call admitted
// before the force can change the underlying breaker then: Trip and Probe
// do nothing while forced.)
func (b *Breaker) queueLocked(q queued) {
	b.changes++
	if b.forced.Load() != forcedNone {
		return
	}
	b.queue = append(b.queue, q)
	b.pending.Add(1)
}

// enqueueForced queues an operator's change to or from a forced state.
// It sets forced to f and queues t only if no underlying change was queued
// (or dropped) since changes was v; it reports whether it did.
func (b *Breaker) enqueueForced(ctx context.Context, v uint64, f int32, t Transition) bool {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	if b.changes != v {
		return false
	}
	b.forced.Store(f)
	if t.From != t.To {
		b.queue = append(b.queue, queued{ctx: ctx, t: t})
		b.pending.Add(1)
	}
	return true
}

func (b *Breaker) changeCount() uint64 {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	return b.changes
}

// flush reports the queued transitions, in order, with their own context
// or else ctx. When another goroutine is reporting, flush returns at once and
// that goroutine reports these too, so a hook may call the breaker: no lock
// of the breaker is held while a hook runs (the operator calls flush after
// releasing opMu).
func (b *Breaker) flush(ctx context.Context) {
	for {
		b.pmu.Lock()
		if b.draining || len(b.queue) == 0 {
			b.pmu.Unlock()
			return
		}
		q := b.queue
		b.queue = nil
		b.pending.Store(0)
		b.draining = true
		b.pmu.Unlock()
		b.drain(ctx, q)
	}
}

func (b *Breaker) drain(ctx context.Context, q []queued) {
	i := 0
	defer func() {
		b.pmu.Lock()
		if i++; i < len(q) { // a hook panicked or exited: keep the rest, in order
			b.queue = append(q[i:len(q):len(q)], b.queue...)
			b.pending.Store(int32(len(b.queue)))
		}
		b.draining = false
		b.pmu.Unlock()
	}()
	for ; i < len(q); i++ {
		c := q[i].ctx
		if c == nil {
			c = ctx
		}
		b.emit(c, q[i].t)
	}
}

// Trip opens the breaker now, as if it had tripped, for openFor (zero means
// the delay of the next consecutive trip; at most a year), giving reason in
// the logged transition. An operator uses it to isolate a dependency for a
// while; breaker/redisstate uses it to apply a trip seen by another instance.
// Tripping an open breaker extends its delay to openFor when that is longer.
//
// Tripping a half-open breaker whose probes are in flight opens it for
// openFor (zero: OpenTimeout) all the same. The probes run to their end but
// their results are ignored, as are those of any call that started in an
// earlier state: whether they succeed, fail, panic (the panic still reaches
// their caller) or leave by runtime.Goexit, the breaker stays open for the
// whole delay, then probes again. Only a probe that had completed as the
// Trip landed still counts: if it failed, the later of the two delays
// stands; if it closed the breaker, the breaker stays open for the delay and
// then closes, reported as open > closed.
//
// Trip does nothing while the breaker is forced (ForceOpen, ForceClosed):
// an operator's force wins over Trip and over the other instances of
// breaker/redisstate, until Reset.
func (b *Breaker) Trip(ctx context.Context, openFor time.Duration, reason string) {
	openFor = min(max(openFor, 0), maxOpen) // keeps now+openFor from overflowing
	if reason == "" {
		reason = "tripped by operator"
	}
	b.opMu.Lock()
	defer b.flush(ctx) // after the unlock: a hook may call the breaker
	defer b.opMu.Unlock()
	if b.forced.Load() != forcedNone {
		return
	}
	b.trip(ctx, openFor, reason)
}

// trip is Trip without its checks; opMu must be held. It queues the
// transitions; the caller flushes them after releasing opMu.
func (b *Breaker) trip(ctx context.Context, openFor time.Duration, reason string) {
	for {
		if u := b.openUntil.Load(); u != 0 {
			if b.now() < u {
				if openFor > 0 {
					b.extendOpen(b.now() + int64(openFor))
				}
				return
			}
			b.clearOpenDelay(ctx, u, "open delay elapsed")
		}
		gen := b.gen.Load()
		b.tripReq.Store(&tripRequest{openFor: openFor, reason: reason})
		b.tripOn.Store(true)
		_, err := b.cb.Execute(func() (struct{}, error) { return struct{}{}, errTrip })
		b.tripOn.Store(false)
		b.tripReq.Store(nil)
		if err != errTooManyRequests {
			return
		}
		// Half-open with probes in flight: hold them off by delay. A probe
		// that ended since the slots were found taken may have changed the
		// state (the last one closed the breaker, reported half_open >
		// closed): gobreaker's callback counts the change in gen before it
		// takes pmu, so under pmu an unchanged gen means half-open still,
		// and a change means trying again on the state it left, once the
		// callback is done (it runs under gobreaker's mutex, which State
		// takes): a probe that failed has set the open delay, which the
		// Trip extends, as it would have.
		d := openFor
		if d == 0 {
			d = b.cfg.OpenTimeout
		}
		b.pmu.Lock()
		if b.gen.Load() != gen {
			b.pmu.Unlock()
			b.cb.State()
			continue
		}
		b.openLocked(b.now()+int64(d), queued{ctx: ctx, t: Transition{Name: b.name, From: StateHalfOpen, To: StateOpen, Reason: reason, OpenFor: d}})
		b.pmu.Unlock()
		return
	}
}

type tripRequest struct {
	openFor time.Duration
	reason  string
}

// Probe ends the open delay now: the next call is a half-open probe. It does
// nothing when the breaker is not open, or is forced (see Trip).
// breaker/redisstate uses it when another instance saw the dependency
// recover.
func (b *Breaker) Probe(ctx context.Context) {
	b.opMu.Lock()
	defer b.flush(ctx) // after the unlock: a hook may call the breaker
	defer b.opMu.Unlock()
	if b.forced.Load() != forcedNone {
		return
	}
	if u := b.openUntil.Load(); u != 0 {
		b.clearOpenDelay(ctx, u, "probe requested")
	}
}

// ForceOpen isolates the dependency: every call fails fast until Reset.
// It is reported as one transition, from the state it leaves to
// StateForcedOpen. The underlying breaker is tripped too, so that after
// Reset it probes before closing.
func (b *Breaker) ForceOpen(ctx context.Context, reason string) {
	if reason == "" {
		reason = "forced open by operator"
	}
	b.opMu.Lock()
	defer b.flush(ctx) // after the unlock: a hook may call the breaker
	defer b.opMu.Unlock()
	for {
		v := b.changeCount()
		from := b.reported(ctx)
		if from == StateForcedOpen {
			return
		}
		if b.enqueueForced(ctx, v, forcedOpen, Transition{Name: b.name, From: from, To: StateForcedOpen, Reason: reason}) {
			break
		}
	}
	b.trip(ctx, 0, reason) // forced: not reported
}

// ForceClosed lets every call through uncounted until Reset, whatever the
// failures: for an operator who knows better than the breaker. The calls are
// not reported to Config.OnCall either (only to the metrics, with the
// outcome they have in any other state: slow past SlowCallThreshold, a
// failure when they panic or leave by runtime.Goexit), so
// breaker/redisstate does not share them with other instances.
func (b *Breaker) ForceClosed(ctx context.Context, reason string) {
	if reason == "" {
		reason = "forced closed by operator"
	}
	b.opMu.Lock()
	defer b.flush(ctx) // after the unlock: a hook may call the breaker
	defer b.opMu.Unlock()
	for {
		v := b.changeCount()
		from := b.reported(ctx)
		if from == StateForcedClosed {
			return
		}
		if b.enqueueForced(ctx, v, forcedClosed, Transition{Name: b.name, From: from, To: StateForcedClosed, Reason: reason}) {
			return
		}
	}
}

// Reset ends ForceOpen or ForceClosed and returns to automatic operation.
// After ForceOpen the breaker is half-open, as fresh as after a close: its
// next calls are probes, and if one fails the breaker opens for
// OpenTimeout, the growth of the open delay restarting from there (the
// trips before the force, and the force's own, are forgotten). After
// ForceClosed the breaker is in the state it was in beneath the force.
func (b *Breaker) Reset(ctx context.Context) {
	b.opMu.Lock()
	defer b.flush(ctx) // after the unlock: a hook may call the breaker
	defer b.opMu.Unlock()
	var from State
	switch b.forced.Load() {
	case forcedOpen:
		from = StateForcedOpen
		b.openUntil.Store(0)
		b.trips.Store(0)
	case forcedClosed:
		from = StateForcedClosed
	default:
		return
	}
	for {
		v := b.changeCount()
		to := b.underlying(ctx) // still forced: an elapsed delay ends unreported
		if b.enqueueForced(ctx, v, forcedNone, Transition{Name: b.name, From: from, To: to, Reason: "reset by operator"}) {
			return
		}
	}
}

// reported returns the state last reported: the forced state, or else the
// underlying one. opMu must be held.
func (b *Breaker) reported(ctx context.Context) State {
	switch b.forced.Load() {
	case forcedOpen:
		return StateForcedOpen
	case forcedClosed:
		return StateForcedClosed
	}
	return b.underlying(ctx)
}

// underlying returns the state of the breaker beneath any force, as
// reported. State() says half-open as soon as the open delay has passed,
// before anyone ended the delay and reported it (open > half_open); so an
// elapsed delay is ended first (clearOpenDelay: reported unless forced), and
// an operator's transition then follows the report before it. opMu must be
// held.
func (b *Breaker) underlying(ctx context.Context) State {
	for {
		u := b.openUntil.Load()
		if u == 0 {
			if b.cb.State() == gobreaker.StateClosed {
				return StateClosed
			}
			return StateHalfOpen // gobreaker's open state lasts 1ns
		}
		if b.now() < u {
			return StateOpen
		}
		b.clearOpenDelay(ctx, u, "open delay elapsed")
	}
}

// Close unregisters the breaker's state gauge from its MeterProvider, so a
// breaker created and dropped at run time can be garbage collected. The
// breaker keeps working; only its gauge stops being reported. Breakers that
// live as long as the process need not be closed.
func (b *Breaker) Close() error {
	if b.inst == nil || b.inst.reg == nil || !b.inst.closed.CompareAndSwap(false, true) {
		return nil
	}
	return b.inst.reg.Unregister()
}
