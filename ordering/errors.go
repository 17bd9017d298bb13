package ordering

import (
	"fmt"
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

// configError is the error of a constructor given a bad config value: the
// field named in Detail and in Fields ("Config.MaxHeld: must be >= 0, got -1").
func configError(field, format string, args ...any) error {
	return contract.ConfigError("ordering", field, fmt.Sprintf(format, args...))
}
