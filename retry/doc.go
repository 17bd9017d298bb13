/*
Package retry retries calls to dependencies without turning a failing
dependency into a retry storm: jittered exponential backoff, classified
errors, a bounded number of attempts and time, deadlines honoured, and a
retry budget shared by every caller of a dependency.

Retry without backoff is a fast car without brakes. Every default here is a
brake: at most 3 attempts, at most 30s of retrying, full jitter, no retry of
errors that are not known to be transient.

# Model

A [Policy] is an immutable, validated configuration built once with [New]
and shared. [Do] calls a function with it:

	policy, err := retry.New(retry.Config{Name: "fx-rates", AttemptTimeout: time.Second})
	...
	rate, err := retry.Do(ctx, policy, func(ctx context.Context) (Rate, error) {
		return fx.Get(ctx, "EUR", "USD")
	})

[DoVoid] is the same for functions that only return an error. Do keeps its
per-call state on its own stack, so one Policy serves any number of
goroutines. A nil *Policy means New(Config{}); the zero [Config] is a valid,
safe policy, and every zero field means the default documented on it.
A bad value is rejected by New with a [contract.KindInvalid] error naming
the field ("Config.MaxAttempts: must be >= 1, got -1").

# Waits

The [Strategy] shapes the waits, as in the AWS "Exponential Backoff And
Jitter" analysis, with exp(n) = min(MaxDelay, InitialDelay·Multiplier^(n-1))
for the n-th retry:

	FullJitter (default)  uniform [0, exp(n))                    fewest calls under contention
	EqualJitter           exp(n)/2 + uniform [0, exp(n)/2)
	DecorrelatedJitter    min(MaxDelay, uniform [InitialDelay, 3·previous))
	Exponential           exp(n)                                  no jitter: clients retry in lockstep
	Constant              InitialDelay

The examples/jitter program reproduces the AWS experiment with these
strategies. [Policy.BackOff] exposes the same waits as a backoff/v4
BackOff for code that runs its own loop.

# Classification

Each failure is classified ([Classify], [Class]). Errors speak
[contract] kinds, so no string matching is needed:

  - transient — rate limited, unavailable, timeout (including an attempt
    timeout's context.DeadlineExceeded), or any error marked
    WithRetryable(true) — is retried;
  - overloaded ([contract.KindOverloaded]: "do not retry") stops at once;
  - anything else — invalid, unauthorized, conflict, canceled, and errors
    that are not *contract.Error at all — is permanent and returned at once.
    A backoff/v4 backoff.Permanent error is permanent too.

[Config.Classifier] is asked first and may answer [Unknown] to defer to
the default: the chain of responsibility of aws-sdk-go-v2's retryers.

Retry at one layer. A failure that is already another retry layer's
give-up — an [*Error] from an inner Do, or from a [Transport] under an
http.Client (inside its *url.Error) — is permanent: that layer retried as
far as its policy and budget allowed, and retrying it again would multiply
the attempts (3 × 3 = 9 calls to a dependency that is down) and bypass its
budget. The outer Do makes one attempt and returns an *Error with
[StopPermanent] that unwraps to the inner one, so errors.Is(err,
retry.StopBudget) still tells why (an inner give-up as overloaded stops the
outer Do with [StopOverloaded]). Either way the give-up is logged and
counted once, by the inner layer: an outer Do that made no retry of its
own neither logs nor counts it again. An inner give-up with [StopContext] is
not final: the context the inner layer was given ended, which, while the
caller's context is alive, is the outer layer's own AttemptTimeout, and
the outer layer retries that timeout as any other. A Classifier answering
Transient for it overrides this. A Transport that gives up on a status returns the last
response, not an error: code that turns such a response into an error
under an outer Do should make it permanent too (see [Transport]).

# Time

Do stops at whichever comes first:

  - MaxAttempts attempts (the first included);
  - MaxElapsedTime: a retry whose wait would end after it is not made. It
    is measured from the end of the first failed attempt, so that the
    success path reads no clock at all; the first attempt is bounded by the
    context and AttemptTimeout;
  - the context deadline: a wait is never longer than the time left, and a
    retry is not started unless the deadline leaves, after the wait, a full
    AttemptTimeout (when one is set). Do gives up early with [StopDeadline]
    instead of sleeping into a deadline it cannot meet, and checks again
    when the wait ends, in case it ended late;
  - the context being canceled, which ends a wait at once ([StopContext]);
    no attempt starts on a context that is done.

The two time bounds are checked again on a fresh reading of the clock after
the OnRetry hook has run and the [Transport] has drained the discarded
response, before the retry is logged, so the time those take counts too.

A [contract.RetryAfter] hint lengthens a wait (never shortens it) and is
always capped by MaxDelay; MaxDelay may not exceed MaxElapsedTime. A hostile
"Retry-After: 1743441600000" therefore costs at most MaxDelay, and a hint
longer than MaxElapsedTime still allows a retry after MaxDelay. Such a
capped wait can fill MaxElapsedTime exactly (MaxDelay defaults to
MaxElapsedTime when that is 10s or less), so on the second check the time
the hook or the drain took is taken off the wait instead of dropping the
retry: the wait is cut to end at MaxElapsedTime, never before the failure
plus the wait first granted, and the deadline is checked on the cut wait as
on any other. A wait from the backoff curve is never cut: a retry it no
longer fits is not made.

A circuit breaker's rejection is the exception to the cap: its hint is the
time until the breaker lets a probe through (package breaker's rejections,
errors.Is [gobreaker.ErrOpenState]), and any retry before it is turned away
again without reaching the dependency. When that hint is longer than MaxDelay,
Do gives up at once with [StopRetryAfter] instead of sleeping into a certain
rejection, so a retry around an open breaker (a Transport over a
breaker.Transport, Do around breaker.Do) fails as fast as the breaker does;
on the first attempt without a log line or count of its own, as the breaker
logs its opening once and counts its rejections. A shorter hint is waited
for like any other. A rate limiter of this process refusing the call
(package limit's: KindRateLimited wrapping contract.ErrRefusedLocally) is
the same: its hint is the time until its bucket holds a token, and a hint
longer than MaxDelay stops Do with StopRetryAfter. A dependency's own
429 or 503 hint is advice: it is waited for, capped by MaxDelay.

AttemptTimeout gives each attempt's context its own deadline.

# Budgets

A [Budget] is shared by every caller of one dependency (put the same value
in each Config) and refuses retries when too many are being made, so a
dependency that is down sees about its normal traffic, not MaxAttempts
times it. Both common styles are provided:

  - [TokenBucket], gRPC retry throttling: 10 tokens, a failure costs 1, a
    success refunds 0.1, retries only while more than 5 tokens remain;
  - [RatioBudget], the SRE book / Envoy / Linkerd style: retries at most 10 %
    of recent calls, with a minimum so a quiet dependency can still retry.

A circuit breaker's rejection (errors.Is [gobreaker.ErrOpenState] or
[gobreaker.ErrTooManyRequests]) is no failure to the budget: the call never
reached the dependency, so it adds none of the load the budget guards
against, and an outage behind an open breaker does not empty a
TokenBucket with rejections alone (retries refused until some 50
successes after the dependency is back). Nor is a refusal by a rate
limiter or bulkhead of this process (package limit's, errors.Is
[contract.ErrRefusedLocally]): a burst over a client-side rate limit does
not cost a healthy dependency its retries. A retry after a rejection still
asks the budget: it may reach the dependency.

When the budget refuses, Do returns the original failure inside an *Error
with [StopBudget], logs the decision "retry budget exhausted" (paced: see
Logs and telemetry) and counts it.

# The final error

When Do gives up it returns an [*Error]: the attempts made, the time spent,
the [StopReason] and the last failure. It unwraps to that failure, so
errors.Is(err, contract.ErrUnavailable) and contract.KindOf keep working,
errors.Is(err, retry.StopBudget) tells why it stopped, and [Error.Timeout]
reports whether a deadline ended it or the last failure was a timeout:

	retry: payments-gateway: gave up after 3 attempts in 1.2s (attempts exhausted): payments.charge: unavailable

# Logs and telemetry

With [Config.Logger] set, each retry is logged at Info as the decision
"retrying" (attempt, delay, error kind and text, dependency) and each
give-up after a retry at Warn, through [logctx.Decision], so the
coordinates on the context (correlation id, operation, entity) are on
every record.

A dependency that is down makes every call retry and give up: at 10,000
calls a second that would be 30,000 lines a second. The lines are paced
per Policy and decision (retrying, gave up retrying, retry budget
exhausted): at most the first 5 in 10 seconds are written at their level,
the others at Debug (a handler at Debug still sees every one; the counters
below count every one), and the next line at the level carries
[logctx.KeySuppressed], how many were written at Debug since. Occasional
retries are logged as before. Once a decision that was paced has not
occurred for 10 seconds, the next call that succeeds logs its end at Info, once: "retries
ended", "give-ups ended", "retry budget available again", with the
dependency, that call's coordinates and what was suppressed since
the last line. The check costs a successful call one atomic load.

Idempotency keys, tokens and bodies are never logged: in the error text,
the URL of a *url.Error (an http.Client failure) is shown as
scheme://host/path, without the user info, query and fragment that carry
credentials.

Unless [Config.DisableTelemetry] is set, retries and give-ups are counted
(sadpath.retry.retries, sadpath.retry.give_ups) with a meter from
[Config.MeterProvider] (default: the global otel MeterProvider) and added
as span events to the span in the context. Only the failure path touches
otel; a first-try success makes no otel call.

# HTTP

[Transport] is an http.RoundTripper retrying only safe requests:
idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) and requests carrying
an Idempotency-Key header, which is sent unchanged on every attempt
([TransportConfig.GenerateIdempotencyKey] adds one to POSTs). It retries
connection errors (an HTTP/2 connection closed after a GOAWAY, as a
server drains for a deploy, or lost to an unanswered PING included) and
429, 502, 503 and 504 (configurable), honours Retry-After (via
[contract.ErrorFromStatusAt]), stops at once on a 503 problem with code
"overloaded" or "retryable": false ([contract.KindOverloaded] as
[contract.ParseProblem] reads it; a body [contract.IsJSONMediaType]
accepts is peeked at, bounded by [contract.MaxProblemBody]) and on any
retried status whose problem says "retryable": false. A 409 answering a
request that carries an Idempotency-Key is retried, with the same key,
when its problem says "retryable": true: the IETF draft's "the original
request is still being processed", as idempotency.Middleware answers it
with the remaining lease as Retry-After; any other 409 is returned at
once. It rewinds bodies with GetBody (a body
without GetBody gets one attempt), drains and closes every discarded
response (each peek and drain bounded by [TransportConfig.BodyTimeout], 1s
by default, so a body stalled after its header cannot hang RoundTrip),
and sets http.request.resend_count on the request's span. When
it gives up on a status the caller receives the last response, body intact
(but for a body that stalled past BodyTimeout);
when it gives up on attempts that timed out, the http.Client's error is
still a timeout to os.IsTimeout (see [Error.Timeout]).

# Testing

Time is read and slept through a [Clock]. The retrytest package provides a
fake whose Sleep advances virtual time at once, so tests of retrying code
run in microseconds and can assert every wait.

# backoff/v4 and its pitfalls

The exponential curve is computed by github.com/cenkalti/backoff/v4's
ExponentialBackOff, and its Permanent errors are honoured. Its pitfalls are
not inherited:

  - ExponentialBackOff is not safe for concurrent use: Do creates one per
    call, on the failure path only, and never shares it;
  - its MaxElapsedTime defaults to 15 minutes and is measured from
    creation: here it is set to 0 (off) and Do applies its own, 30s by
    default, and validated against MaxDelay;
  - its randomization is ±50 % around the curve, not the AWS jitters: set to
    0 here, with full, equal or decorrelated jitter applied on top;
  - a Retry-After longer than MaxElapsedTime silently disables retries in
    its loop: here a hint is capped by MaxDelay (<= MaxElapsedTime), and any
    give-up carries an explicit StopReason;
  - its loop starts a wait that the context deadline cannot accommodate
    and only fails when the deadline fires: Do checks the deadline before
    every wait and gives up at once.

# Performance

A first-try success under a policy without budget or attempt timeout costs
one context check and one indirect call, with no allocation, no clock read
and no otel call: about 2 ns more than calling the function directly,
the cost of Do's own call frame (Do is too large for Go's default inlining
budget). A binary built with profile-guided optimization (go build -pgo)
inlines Do where the profile finds it hot, and the frame goes too.
BENCHMARKS.md, at the repository's root, has the measurements beside
backoff.Retry.
*/
package retry
