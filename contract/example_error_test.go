package contract_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// An error carries a Kind; errors.Is matches it through any wrapping, and
// Retryable and RetryAfter read it without string matching.
func ExampleNew() {
	err := contract.New(contract.KindRateLimited, "psp.charge", "too many requests").
		WithCode("psp.throttled").
		WithRetryAfter(2 * time.Second)
	wrapped := fmt.Errorf("checkout: %w", err)

	fmt.Println(wrapped)
	fmt.Println(errors.Is(wrapped, contract.ErrRateLimited), errors.Is(wrapped, contract.ErrInvalid))
	fmt.Println(contract.Retryable(wrapped))
	fmt.Println(contract.RetryAfter(wrapped))

	var e *contract.Error
	if errors.As(wrapped, &e) {
		fmt.Println(e.Kind, e.Code, e.Op)
	}
	// Output:
	// checkout: psp.charge: rate_limited (psp.throttled): too many requests
	// true false
	// true
	// 2s true
	// rate_limited psp.throttled psp.charge
}

// Errors that are not *contract.Error are classified: context errors and
// network timeouts, refused connections; anything unknown is internal and
// not retryable.
func ExampleKindOf() {
	for _, err := range []error{
		fmt.Errorf("query: %w", context.DeadlineExceeded),
		context.Canceled,
		errors.New("something odd"),
		contract.New(contract.KindConflict, "orders.create", "order exists"),
		contract.New(contract.KindTimeout, "psp", "").WithRetryable(false), // override: the charge may have happened
	} {
		fmt.Printf("%-9s retryable=%v\n", contract.KindOf(err), contract.Retryable(err))
	}
	// Output:
	// timeout   retryable=true
	// canceled  retryable=false
	// internal  retryable=false
	// conflict  retryable=false
	// timeout   retryable=false
}

// Constructors reject a bad configuration with an error naming the field.
func ExampleConfigError() {
	err := contract.ConfigError("retry", "Config.MaxAttempts", "must be >= 1, got -1")
	fmt.Println(err)
	fmt.Println(errors.Is(err, contract.ErrInvalid))
	// Output:
	// retry: invalid (config.invalid): Config.MaxAttempts: must be >= 1, got -1
	// true
}
