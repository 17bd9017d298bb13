package limit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit"
)

// A bulkhead of one slot: while a call holds it, the next is refused at
// once with an unavailable error carrying a retry-after hint, instead of
// piling up behind a slow dependency.
func ExampleDo() {
	b, err := limit.NewBulkhead(limit.BulkheadConfig{
		Name:          "payments-db",
		MaxConcurrent: 1,
		RetryAfter:    2 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	_ = b.Acquire(ctx) // a slow call holds the only slot
	_, err = limit.Do(ctx, b, func(context.Context) (string, error) { return "charged", nil })
	d, _ := contract.RetryAfter(err)
	fmt.Println(errors.Is(err, contract.ErrUnavailable), contract.As(err).Code, d)
	fmt.Println(err)

	b.Release() // the slow call returns
	v, err := limit.Do(ctx, b, func(context.Context) (string, error) { return "charged", nil })
	fmt.Println(v, err)
	// Output:
	// true limit.bulkhead_full 2s
	// payments-db: unavailable (limit.bulkhead_full): the service is at capacity; retry later: refused locally
	// charged <nil>
}

// Acquire and Release bracket code that cannot be wrapped in a function.
func ExampleBulkhead_Acquire() {
	b, _ := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 2})
	ctx := context.Background()
	if err := b.Acquire(ctx); err != nil {
		fmt.Println("rejected:", err)
		return
	}
	defer b.Release()
	fmt.Println("in flight:", b.InFlight())
	// Output:
	// in flight: 1
}

// Constructors name the bad field.
func ExampleNewBulkhead_invalid() {
	_, err := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 0})
	fmt.Println(errors.Is(err, contract.ErrInvalid))
	fmt.Println(err)
	// Output:
	// true
	// limit: invalid (config.invalid): BulkheadConfig.MaxConcurrent: must be >= 1, got 0
}
