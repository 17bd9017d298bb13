package ordering

import "context"

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
