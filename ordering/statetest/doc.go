// Package statetest is a conformance suite for ordering.State
// implementations, in the manner of testing/fstest.TestFS: any State proves
// it honours the contract documented on ordering.State by passing Run.
//
//	func TestConformance(t *testing.T) {
//		statetest.Run(t, func(t *testing.T) ordering.State { return newEmptyState(t) })
//	}
//
// Run checks that an unknown subject reads 0, that Advance stores only a
// greater sequence and nothing when its function fails (called once, its
// error returned unchanged), that subjects are independent and opaque (any
// bytes, compared byte for byte: subjects that differ only in case, trailing
// spaces, after a NUL byte, past a long common prefix or in Unicode
// normalisation are distinct), that concurrent Advance calls on one subject
// never overlap and never lose an update, that every sequence up to
// MaxSequence is recorded and a greater one refused with KindInvalid (an
// ordering.BoundedState) or that any uint64 is recorded (any other State),
// that a 1 MiB subject is recorded or refused with ordering.ErrInvalidEvent
// (not retryable: no redelivery can record it),
// that a canceled context stores nothing, and that an Advance whose context
// is canceled while fn runs answers nil only when it stored the sequence.
// For an ordering.RedeliveryState it also checks that a Redelivery returned
// by a failing AdvanceRedelivery function is kept (and one at or below the
// last applied sequence is not), that due reports the latest At of the
// sequences in (last, to] and nothing else, that the At recorded for a
// sequence only moves later, and that a sequence stored ends its
// redeliveries.
// It is used by ordering.Memory and ordering/pgstate.
package statetest
