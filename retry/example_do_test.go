package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// Wiring 1: a call to a dependency that returns a value. Transient
// contract errors are retried with jittered backoff; the value comes back
// typed. (The fake clock makes the example instant; leave Clock nil in
// production.)
func ExampleDo() {
	policy, err := retry.New(retry.Config{
		Name:           "fx-rates",
		MaxAttempts:    4,
		InitialDelay:   50 * time.Millisecond,
		MaxElapsedTime: 5 * time.Second,
		AttemptTimeout: time.Second,
		Clock:          retrytest.NewClock(),
	})
	if err != nil {
		panic(err)
	}
	calls := 0
	rate, err := retry.Do(context.Background(), policy, func(ctx context.Context) (float64, error) {
		calls++
		if calls < 3 {
			return 0, contract.New(contract.KindUnavailable, "fx.rate", "upstream down")
		}
		return 1.0842, nil
	})
	fmt.Println(rate, err, "after", calls, "calls")
	// Output: 1.0842 <nil> after 3 calls
}

// The final error says how many attempts were made, why Do stopped, and
// unwraps to the dependency's last error.
func ExampleError() {
	policy, _ := retry.New(retry.Config{
		Name: "ledger", Strategy: retry.Constant, InitialDelay: 100 * time.Millisecond,
		MaxAttempts: 3, Clock: retrytest.NewClock(),
	})
	err := retry.DoVoid(context.Background(), policy, func(ctx context.Context) error {
		return contract.New(contract.KindTimeout, "ledger.post", "no answer")
	})
	var re *retry.Error
	if errors.As(err, &re) {
		fmt.Println(re.Attempts, re.Elapsed, re.Reason.String())
	}
	fmt.Println(errors.Is(err, retry.StopAttempts), errors.Is(err, contract.ErrTimeout))
	fmt.Println(err)

	// A permanent error is returned at once.
	err = retry.DoVoid(context.Background(), policy, func(ctx context.Context) error {
		return contract.New(contract.KindInvalid, "ledger.post", "amount must be positive")
	})
	fmt.Println(errors.As(err, &re), re.Attempts, re.Reason.String())
	// Output:
	// 3 200ms attempts exhausted
	// true true
	// retry: ledger: gave up after 3 attempts in 200ms (attempts exhausted): ledger.post: timeout: no answer
	// true 1 permanent error
}

// Retry at one layer: a client library that retries on its own, called
// under a service's policy. The inner layer's give-up is final for the
// outer one, which makes one attempt and stops, so a dependency that is
// down sees 3 calls, not 3 × 3, and the error still says why the inner
// layer stopped.
func ExampleDo_nested() {
	clock := retrytest.NewClock()
	inner, _ := retry.New(retry.Config{Name: "sdk", MaxAttempts: 3, Clock: clock})
	outer, _ := retry.New(retry.Config{Name: "service", MaxAttempts: 3, Clock: clock})
	calls := 0
	err := retry.DoVoid(context.Background(), outer, func(ctx context.Context) error {
		return retry.DoVoid(ctx, inner, func(ctx context.Context) error {
			calls++
			return contract.New(contract.KindUnavailable, "sdk.get", "down")
		})
	})
	var re *retry.Error
	errors.As(err, &re) // the outer layer's
	fmt.Println(calls, "calls;", "outer:", re.Attempts, re.Reason.String())
	fmt.Println(errors.Is(err, retry.StopAttempts), errors.Is(err, contract.ErrUnavailable))
	// Output:
	// 3 calls; outer: 1 permanent error
	// true true
}
