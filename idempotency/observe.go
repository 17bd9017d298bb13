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
	counter metric.Int64Counter
	// opts holds one ready-made option slice per outcome: passing it with
	// ... spares Add's variadic slice, which would escape through the
	// counter interface and cost an allocation per decision.
	opts [len(outcomes)][]metric.AddOption
}

func newObserver(component string, log *slog.Logger, mp metric.MeterProvider) (*observer, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter(meterName).Int64Counter("sadpath.idempotency.outcomes",
		metric.WithDescription("Idempotency decisions by outcome: executed, replayed, conflict, mismatch, lease_lost, store_error."),
		metric.WithUnit("{decision}"))
	if err != nil {
		return nil, err
	}
	o := &observer{log: log, counter: c}
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
