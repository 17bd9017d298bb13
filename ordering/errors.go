package ordering

import (
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Errors with identity. They are *contract.Error values: match them with
// errors.Is, which compares Kind and Code; the errors the Guard returns carry
// a detail naming the subject and the sequences involved.
var (
	// ErrGap: the event is ahead of the next expected sequence and was not
	// applied (gap policy reject, hold buffer full, or hold timed out with
	// TimeoutReject). It is retryable: redeliver the event later.
	ErrGap error = &contract.Error{Kind: contract.KindConflict, Code: "ordering.gap", Detail: "sequence gap"}

	// ErrInvalidEvent: the event has no subject, a zero sequence, a
	// sequence above the highest its State can record (BoundedState), one
	// further ahead of the next expected than Config.MaxGap, or a subject
	// its State can never record (larger than Memory's MaxBytes, too long
	// for ordering/pgstate's index), so it cannot be ordered. It is
	// permanent: never retry it.
	ErrInvalidEvent error = &contract.Error{Kind: contract.KindInvalid, Code: "ordering.invalid_event", Detail: "event cannot be ordered"}
)

func gapError(detail string, retryAfter time.Duration) error {
	return (&contract.Error{
		Kind:       contract.KindConflict,
		Code:       "ordering.gap",
		Op:         "ordering.guard",
		Detail:     detail,
		RetryAfter: retryAfter,
	}).WithRetryable(true)
}

func invalidEvent(detail string) error {
	return &contract.Error{Kind: contract.KindInvalid, Code: "ordering.invalid_event", Op: "ordering.guard", Detail: detail}
}

func configError(detail string) error {
	return &contract.Error{Kind: contract.KindInvalid, Code: "config.invalid", Op: "ordering", Detail: detail}
}
