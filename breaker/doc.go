// Package breaker fails fast when a dependency is failing or slow, and
// recovers on its own when it comes back.
//
// "What happens if the database gets slow for thirty seconds?" Without a
// breaker, callers pile up goroutines and connections behind it and every
// request waits for its timeout. With one, after enough calls have failed (or
// been too slow) the breaker opens and calls fail at once with an honest
// error saying when to retry; a few probe calls later find out whether the
// dependency is back.
//
// # Model
//
// A Breaker has three states.
//
//   - Closed: calls flow. Their outcomes are counted over a rolling window
//     (Config.Window, in Config.Buckets buckets). Once the window holds at
//     least Config.MinCalls counted calls and failures/(successes+failures)
//     reaches Config.FailureRatio, the breaker opens. A failure rate, not a
//     run of consecutive failures: a dependency failing one call in two
//     trips it even if successes interleave.
//   - Open: every call fails immediately, without running, with a
//     *contract.Error of KindUnavailable whose RetryAfter is the time until
//     the next probe. The open delay is Config.OpenTimeout on the first trip
//     and doubles on every consecutive trip (a failed probe), shortened at
//     random by up to Config.Jitter and capped at Config.MaxOpenTimeout, so
//     a long outage is probed less and less often and instances tripped
//     together do not probe in lockstep. A close resets the growth, and
//     so does Reset after ForceOpen.
//   - Half-open: Config.HalfOpenProbes calls go through; the others fail
//     fast (code CodeTooManyProbes), with a RetryAfter of the time by which
//     the probes can have ended (Config.SlowCallThreshold, else one second;
//     at most OpenTimeout). If every probe succeeds the breaker
//     closes; the first failed probe opens it again.
//
// Operators can take over during an incident: ForceOpen isolates the
// dependency, ForceClosed lets every call through uncounted, Reset hands
// control back. Trip opens the breaker for a given time and Probe ends the
// open delay now; package breaker/redisstate uses both to share state
// between instances. A force wins: while the breaker is forced, Trip and
// Probe do nothing, so neither an operator's Trip nor the other instances
// change it until Reset. The operator calls are serialised.
//
// # Classification
//
// Only the dependency's failures count. Config.Classify (default Classify)
// sorts a call's error: nil is a Success; the caller's own errors — contract
// kinds invalid, unauthorized, forbidden, not found, conflict, precondition
// failed, too large, and canceled (context.Canceled) — are ignored: a flood
// of quick bad requests never opens the breaker; so is a refusal by a rate
// limiter of this process (rate limited wrapping contract.ErrRefusedLocally,
// package limit's), which says how much the callers send, not how the
// dependency does; timeouts (context.DeadlineExceeded too), unavailable (a
// full bulkhead of package limit's too), rate limited by the dependency,
// overloaded, internal and unknown errors are failures. A call that takes longer than
// Config.SlowCallThreshold is a failure whatever it returned, a caller's
// error included — the caller still gets its result — so a dependency that
// turns slow trips the breaker before callers time out, and one that hangs
// until its callers give up (their context canceled) trips it too. A panic
// is a failure and is re-raised unchanged; a call that leaves by
// runtime.Goexit (t.FailNow) is a failure too, and its goroutine still
// exits. A call that started before a state change and ended after it
// belongs to the state before: it is counted in the metrics only, however
// it ended (a panic is still re-raised). So is a call ForceClosed lets
// through, classified the same way (slow, a panic a failure).
//
// # Calling
//
// Do wraps a function returning a value; Execute one returning only an error:
//
//	b, err := breaker.New(breaker.Config{Name: "payments-gateway", SlowCallThreshold: 2 * time.Second})
//	...
//	charge, err := breaker.Do(ctx, b, func(ctx context.Context) (Charge, error) {
//		return gateway.Charge(ctx, req)
//	})
//	if errors.Is(err, contract.ErrUnavailable) { // open: d, _ := contract.RetryAfter(err) is how long until it lets a probe through
//
// The rejection error matches errors.Is(err, contract.ErrUnavailable) and
// errors.Is(err, ErrOpen) (which is gobreaker.ErrOpenState), carries the
// breaker's name in its Op and is written by contract.WriteProblem as a 503
// with Retry-After.
//
// For HTTP clients, Transport keeps one breaker per downstream host (URL.Host
// in lower case, port included, or TransportConfig.Key) in a bounded
// Registry, whose overflow and empty-key breakers are named OverflowName and
// EmptyName, names no key's breaker takes: 5xx, 429 and transport errors
// such as timeouts count as failures, other 4xx do not (unless slower than
// the breakers' Config.SlowCallThreshold, like any call).
//
// # Observation
//
// Every state change is reported exactly once, after the breaker's locks are
// released (a hook may call the breaker, operator calls included), with the
// context of the call that caused it — so the log record carries that
// call's correlation id and operation (package logctx):
//
//   - a decision record through logctx.Decision on Config.Logger ("breaker
//     opened: failing fast", reason "failure rate 0.60 over 20 calls >=
//     0.50", with dependency, from, state, open_for and the counts);
//   - Config.OnStateChange(ctx, Transition);
//   - the otel metrics MetricTransitions and MetricState, next to
//     MetricCalls counted per outcome, on Config.MeterProvider (default
//     otel's global provider). Config.DisableMetrics removes them entirely.
//
// The reported transitions chain: each one's From is the To of the one
// before. A force is one transition (closed > forced_open, say); while the
// breaker is forced nothing else is reported, and Reset reports the state it
// hands control back to.
//
// # gobreaker
//
// Counting over the rolling window, the failure-rate decision, probe
// limiting in half-open, discarding results of calls that started in an
// earlier state, and panic handling are github.com/sony/gobreaker/v2's
// CircuitBreaker. gobreaker reads the system clock, has a fixed open timeout
// and reports state changes without a context, under its lock; so Breaker
// keeps the open delay itself, on Config.Clock, lets gobreaker's open state
// last one nanosecond, and queues gobreaker's state-change callbacks to
// report them after the lock with the caller's context. The rolling window
// alone follows the system clock.
//
// # Defaults, zero value, concurrency
//
// The zero value of Config, plus a Name, is a usable configuration: window
// 60s in 10 buckets, 20 calls minimum, failure ratio 0.5, open 30s growing to
// 4m, jitter 0.2, 3 probes, no slow-call threshold. New rejects a bad value
// with a *contract.Error of KindInvalid (code CodeConfigInvalid) naming the
// field. A Breaker must be made with New and is safe for concurrent use; the
// closed path takes gobreaker's mutex twice, like gobreaker itself, and
// allocates nothing; a rejection allocates its error and takes no lock.
package breaker
