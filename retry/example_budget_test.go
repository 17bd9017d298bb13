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

// Wiring 3: one budget per dependency, shared by every caller. When the
// dependency fails every call, the budget stops retrying after a few
// failures instead of multiplying the load by MaxAttempts.
func ExampleNewTokenBucket() {
	budget, err := retry.NewTokenBucket(retry.TokenBucketConfig{}) // gRPC: 10 tokens, ratio 0.1
	if err != nil {
		panic(err)
	}
	clock := retrytest.NewClock()
	// Two code paths calling the same dependency share the budget.
	read, _ := retry.New(retry.Config{Name: "inventory", Budget: budget, MaxAttempts: 5, Clock: clock})
	write, _ := retry.New(retry.Config{Name: "inventory", Budget: budget, MaxAttempts: 3, Clock: clock})

	attempts, refused := 0, 0
	down := func(ctx context.Context) (int, error) {
		attempts++
		return 0, contract.New(contract.KindUnavailable, "inventory", "down")
	}
	for i := 0; i < 50; i++ {
		p := read
		if i%2 == 1 {
			p = write
		}
		if _, err := retry.Do(context.Background(), p, down); errors.Is(err, retry.StopBudget) {
			refused++
		}
	}
	fmt.Printf("50 calls, %d attempts, %d refused a retry, %.1f tokens left\n", attempts, refused, budget.Tokens())
	// Output: 50 calls, 54 attempts, 49 refused a retry, 0.0 tokens left
}

// The ratio style: retries may not exceed 10 % of recent calls, with a
// minimum so that a quiet dependency can still be retried.
func ExampleNewRatioBudget() {
	clock := retrytest.NewClock()
	budget, err := retry.NewRatioBudget(retry.RatioBudgetConfig{Ratio: 0.1, MinRetries: 2, Window: 10 * time.Second, Clock: clock})
	if err != nil {
		panic(err)
	}
	p, _ := retry.New(retry.Config{Name: "search", Budget: budget, MaxAttempts: 3, Clock: clock})
	attempts := 0
	for i := 0; i < 100; i++ {
		_ = retry.DoVoid(context.Background(), p, func(ctx context.Context) error {
			attempts++
			return contract.New(contract.KindUnavailable, "search", "down")
		})
	}
	fmt.Println("100 calls,", attempts, "attempts")
	// Output: 100 calls, 110 attempts
}
