package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// Outcome names, used as the decision in logs and as the "outcome"
// attribute of the sadpath.idempotency.outcomes counter.
const (
	OutcomeExecuted   = "executed"    // the operation ran and its result was recorded (or released)
	OutcomeReplayed   = "replayed"    // a stored result was returned; nothing ran
	OutcomeConflict   = "conflict"    // a duplicate met a running operation and failed fast (or gave up waiting)
	OutcomeMismatch   = "mismatch"    // the key was reused with another payload
	OutcomeLeaseLost  = "lease_lost"  // the owner lost its lease while running: its result was not recorded
	OutcomeStoreError = "store_error" // the store failed
)

var outcomes = [...]string{OutcomeExecuted, OutcomeReplayed, OutcomeConflict, OutcomeMismatch, OutcomeLeaseLost, OutcomeStoreError}

type outcome uint8

const (
	oExecuted outcome = iota
	oReplayed
	oConflict
	oMismatch
	oLeaseLost
	oStoreError
)

// KeyHash is the log attribute carrying a short hash of the scope and key:
// logs never print a raw idempotency key, which may be guessable or secret.
const KeyHash = "idempotency_key_hash"

// meterName names the Meter taken from the MeterProvider.
const meterName = "github.com/sadpath/sadpath/idempotency"

type observer struct {
	log     *slog.Logger
	clock   Clock
	logs    *lograte.Set // pacing of the decisions in paced: non-nil with log
	counter metric.Int64Counter
	// opts holds one ready-made option slice per outcome: passing it with
	// ... spares Add's variadic slice, which would escape through the
	// counter interface and cost an allocation per decision.
	opts [len(outcomes)][]metric.AddOption
}

func newObserver(component string, log *slog.Logger, clock Clock, mp metric.MeterProvider) (*observer, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter(meterName).Int64Counter("sadpath.idempotency.outcomes",
		metric.WithDescription("Idempotency decisions by outcome: executed, replayed, conflict, mismatch, lease_lost, store_error."),
		metric.WithUnit("{decision}"))
	if err != nil {
		return nil, err
	}
	o := &observer{log: log, clock: clock, counter: c}
	if log != nil {
		o.logs = lograte.NewSet(numPaced)
	}
	for i, name := range outcomes {
		o.opts[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("outcome", name), attribute.String("component", component)))}
	}
	return o, nil
}

// note counts an outcome and logs it as a decision. The key is logged only
// as a hash, computed only when the record will be written.
func (o *observer) note(ctx context.Context, oc outcome, level slog.Level, reason string, key Key, attrs ...slog.Attr) {
	o.counter.Add(ctx, 1, o.opts[oc]...)
	if o.log == nil || !o.log.Enabled(ctx, level) {
		return
	}
	all := make([]slog.Attr, 0, 1+len(attrs))
	all = append(all, slog.String(KeyHash, hashKey(key)))
	all = append(all, attrs...)
	logctx.Decision(ctx, o.log, level, outcomes[oc], reason, all...)
}

// The decisions a store that is down or slow, or a key hammered by
// retries, repeats on every call: their lines are paced (see package
// lograte), so that an outage writes a few lines every 10s instead of one
// per call. paced gives the outcome, level and reason of each.
const (
	pClaimTooLarge = iota
	pFailOpen
	pFailClosed
	pConflictFast
	pConflictWait
	pUnknownStatus
	pPanicLeaseLost
	pPanicReleaseFailed
	pLeaseLostRunning
	pResultTooLarge
	pResultHeld
	pLeaseLostCompleting
	pCompleteFailed
	pLeaseLostReleasing
	pReleaseFailed
	pRenewLeaseOut
	pRenewFailed
	pNested
	numPaced
)

var paced = [numPaced]struct {
	oc     outcome
	level  slog.Level
	reason string
}{
	pClaimTooLarge:       {oStoreError, slog.LevelWarn, "store refused the claim as too large: not running"},
	pFailOpen:            {oStoreError, slog.LevelWarn, "store failed: running without idempotency (fail open)"},
	pFailClosed:          {oStoreError, slog.LevelError, "store failed: not running (fail closed)"},
	pConflictFast:        {oConflict, slog.LevelInfo, "in progress elsewhere: failing fast"},
	pConflictWait:        {oConflict, slog.LevelInfo, "in progress elsewhere: gave up waiting"},
	pUnknownStatus:       {oStoreError, slog.LevelError, "store answered an unknown claim status"},
	pPanicLeaseLost:      {oLeaseLost, slog.LevelWarn, "ran and panicked, and the lease was lost before releasing"},
	pPanicReleaseFailed:  {oStoreError, slog.LevelError, "ran and panicked, and the release failed: the key stays claimed until its lease expires"},
	pLeaseLostRunning:    {oLeaseLost, slog.LevelError, "lease lost while running: result not recorded"},
	pResultTooLarge:      {oStoreError, slog.LevelWarn, "ran, but the result was too large to store: duplicates get a conflict"},
	pResultHeld:          {oStoreError, slog.LevelError, "ran, but neither the result nor the record that it ran could be stored: the key is held in progress for the retention period"},
	pLeaseLostCompleting: {oLeaseLost, slog.LevelError, "lease lost before completing: result not recorded"},
	pCompleteFailed:      {oStoreError, slog.LevelError, "ran but could not record the result"},
	pLeaseLostReleasing:  {oLeaseLost, slog.LevelWarn, "lease lost before releasing"},
	pReleaseFailed:       {oStoreError, slog.LevelError, "release failed: the key stays claimed until its lease expires"},
	pRenewLeaseOut:       {oStoreError, slog.LevelError, "lease renewal failed and the lease has run out: canceling the operation"},
	pRenewFailed:         {oStoreError, slog.LevelWarn, "lease renewal failed"},
	pNested:              {oConflict, slog.LevelError, "called inside the running operation holding the same key: failing rather than waiting for itself"},
}

// notePaced counts the outcome of paced decision p and logs it as a
// decision, at its level or, when more than a few of p occurred in the
// last 10s, at Debug (see package lograte).
func (o *observer) notePaced(ctx context.Context, p int, key Key, attrs ...slog.Attr) {
	d := &paced[p]
	o.counter.Add(ctx, 1, o.opts[d.oc]...)
	if o.log == nil {
		return
	}
	level, n := o.logs.Occur(p, o.clock.Now(), d.level)
	if !o.log.Enabled(ctx, level) {
		return
	}
	all := make([]slog.Attr, 0, 2+len(attrs))
	all = append(all, slog.String(KeyHash, hashKey(key)))
	all = append(all, attrs...)
	logctx.Decision(ctx, o.log, level, outcomes[d.oc], d.reason, lograte.Suppressed(all, n)...)
}

// ended logs, once each, the end of the paced decisions that have not
// occurred for 10s, on a call whose claim the store answered. It costs an
// atomic load while none is going on.
func (o *observer) ended(ctx context.Context) {
	if o.logs != nil && o.logs.Active() {
		o.logs.LogEnds(ctx, o.log, o.clock, pacedEnd)
	}
}

func pacedEnd(p int) (string, string) {
	d := &paced[p]
	return outcomes[d.oc] + " ended", d.reason + ": " + lograte.EndReason
}

// hashKey returns 12 hex digits of SHA-256 over scope and key: enough to
// correlate log lines, useless to replay a request. The scope is framed by
// its length (a uvarint, as the Redis and PostgreSQL stores frame it for
// their record ids), not ended by a separator: scope and key may hold any
// byte, NUL included, and ("a\x00b", "c") and ("a", "b\x00c") are two
// keys, which must not share a hash.
func hashKey(k Key) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k.Scope)))])
	h.Write([]byte(k.Scope))
	h.Write([]byte(k.Key))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:6])
}
