package ordering

import (
	"context"
	"time"
)

// State keeps the last applied sequence of every subject. Implementations
// must be safe for concurrent use; shared ones (ordering/pgstate) also across
// processes. The semantics every State must honour (ordering/statetest checks
// them):
//
//   - Last returns the last applied sequence of subject, 0 when none was
//     applied (or the subject was forgotten).
//   - Advance calls fn once with the last applied sequence while no other
//     Advance for the same subject runs, and then stores the sequence fn
//     returns when fn returns a nil error and a sequence greater than last.
//     A smaller or equal sequence changes nothing: the state never goes
//     backwards. When fn fails, nothing is stored and Advance returns fn's
//     error unchanged.
//   - A State that persists makes fn's effects and the new sequence atomic
//     when fn writes through the transaction it offers (pgstate.Tx): either
//     both are committed or neither is.
//   - Failures of the State itself are *contract.Error values of KindUnavailable
//     or KindTimeout (retryable), or KindOverloaded when a bounded State is full.
//     A sequence the State cannot store is refused with KindInvalid (see
//     BoundedState).
type State interface {
	Last(ctx context.Context, subject string) (uint64, error)
	Advance(ctx context.Context, subject string, fn func(ctx context.Context, last uint64) (uint64, error)) error
}

// BoundedState is a State that cannot record every uint64 sequence:
// MaxSequence returns the highest one it records (at least 1), and Advance
// refuses a greater one with an error of KindInvalid. ordering/pgstate is
// one (a bigint column: math.MaxInt64).
//
// A Guard on a BoundedState refuses an event above MaxSequence up front,
// with an error matching ErrInvalidEvent, since it can never be recorded as
// applied: applying it would be rolled back, and holding it would end in a
// timeout skip the State cannot record either. A State that does not
// implement BoundedState is taken to record any sequence; should its
// Advance refuse a timeout skip with KindInvalid anyway, the held events
// concerned are settled with that error (see TimeoutSkip).
type BoundedState interface {
	State
	MaxSequence() uint64
}

// Redelivery is an event of a subject that failed and will be delivered
// again: its sequence, and when its redelivery is due.
type Redelivery struct {
	Sequence uint64
	At       time.Time
}

// RedeliveryFunc is the function RedeliveryState.AdvanceRedelivery runs
// while the subject is locked. It is an Advance function (see State) that
// also receives due and returns, with the next sequence and its error, a
// Redelivery to record (none when its Sequence is 0). due(ctx, to) returns
// the latest At recorded for a sequence in (last, to], the zero time when
// there is none; it may be called only while the function runs.
type RedeliveryFunc func(ctx context.Context, last uint64, due func(ctx context.Context, to uint64) (time.Time, error)) (uint64, Redelivery, error)

// RedeliveryState is a State shared by several processes that also records,
// for every Guard sharing it, the events of a subject that failed and are
// due to be redelivered: with it, a TimeoutSkip decided by one process's
// Guard does not skip an event that has just failed in another (see
// TimeoutSkip). ordering/pgstate is one; Memory, which no other process
// shares, is not. A Guard uses it under GapHold with TimeoutSkip only.
//
//   - AdvanceRedelivery is Advance with a RedeliveryFunc. The Redelivery
//     the function returns is recorded whether it fails or not, and before
//     the subject is unlocked: when it fails, its other effects are undone
//     (nothing stored, its writes through the State's transaction rolled
//     back, its error returned unchanged) but the Redelivery is kept, so
//     that the next AdvanceRedelivery of the subject, in any process, sees
//     it through due. A Redelivery at or below the sequence stored is not
//     recorded.
//   - Redelivering records r outside any Advance (without waiting for the
//     subject's lock), unless r.Sequence is at or below the subject's last
//     applied sequence.
//   - The At recorded for a sequence only moves later: a Redelivery with an
//     earlier At than the one recorded changes nothing. Redeliveries at or
//     below the last applied sequence are forgotten once it is stored
//     (they are no longer due, and due never reports them). At may be
//     rounded up to the State's precision (pgstate: a microsecond).
type RedeliveryState interface {
	State
	AdvanceRedelivery(ctx context.Context, subject string, fn RedeliveryFunc) error
	Redelivering(ctx context.Context, subject string, r Redelivery) error
}
