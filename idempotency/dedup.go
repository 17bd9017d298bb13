package idempotency

import (
	"context"

	"github.com/sadpath/sadpath/contract"
)

// dedupScopePrefix keeps event ids apart from HTTP scopes in a shared store.
const dedupScopePrefix = "\x00sadpath.event\x00"

// Dedup is consumer-side deduplication of messages: a handler runs at most
// once per (source, id) within the retention window, however often the
// broker redelivers.
//
// An id is recorded as processed only after its handler succeeded. While
// the handler runs, the id is claimed (a concurrent redelivery gets
// ErrInProgress, retryable, or waits under the Wait policy); if the handler
// fails or panics the claim is released, so the redelivery runs it again.
// Marking an id seen before the handler succeeded would turn a failed first
// delivery into a silent drop of every redelivery.
//
// Dedup is configured with the executor's Config (Codec and StoreError are
// not used) and is safe for concurrent use.
type Dedup struct {
	ex *Executor
}

// NewDedup returns a Dedup configured by cfg, or a KindInvalid error naming
// the bad field.
func NewDedup(cfg Config) (*Dedup, error) {
	ex, err := newExecutor(cfg, "Config", "event")
	if err != nil {
		return nil, err
	}
	return &Dedup{ex: ex}, nil
}

// Handle runs fn unless the message (source, id) was already processed
// successfully within the retention window. It returns duplicate true, and
// a nil error, when fn was skipped for that reason; otherwise fn's error,
// ErrInProgress while another delivery of the message is being handled,
// ErrStoreUnavailable (fail closed: fn did not run, ack nothing), or an
// error matching contract.ErrTooLarge, not retryable, when the store
// refuses the id as too large (fn did not run). An empty id is refused
// without running fn: a KindInvalid error, code
// idempotency.message_id_missing.
func (d *Dedup) Handle(ctx context.Context, source, id string, fn func(context.Context) error) (duplicate bool, err error) {
	if id == "" {
		return false, contract.New(contract.KindInvalid, "idempotency.dedup", "message id is empty").WithCode("idempotency.message_id_missing")
	}
	ran := false
	_, _, replayed, err := d.ex.run(ctx, Key{Scope: dedupScopePrefix + source, Key: id}, "", false, nil, func(ctx context.Context) (Result, bool, error) {
		ran = true
		if ferr := fn(ctx); ferr != nil {
			return Result{}, false, ferr
		}
		return Result{}, true, nil
	})
	return replayed && !ran && err == nil, err
}

// HandleEvent is Handle for a contract.Event, identified by its Source and ID.
func (d *Dedup) HandleEvent(ctx context.Context, ev contract.Event, fn func(context.Context, contract.Event) error) (duplicate bool, err error) {
	return d.Handle(ctx, ev.Source, ev.ID, func(ctx context.Context) error { return fn(ctx, ev) })
}
