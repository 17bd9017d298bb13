package limit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/limit/limittest"
)

// The database gets slow for thirty seconds. Behind a bulkhead of 3 slots,
// 10 concurrent requests do not pile up: 3 wait on the database, 7 are
// refused at once with a retry-after, and when the database recovers the
// bulkhead is whole again. Time is compressed with a manual clock.
func ExampleBulkhead_slowDependency() {
	clk := limittest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, _ := limit.NewBulkhead(limit.BulkheadConfig{Name: "db", MaxConcurrent: 3, RetryAfter: 5 * time.Second})
	var probe limittest.Probe
	slow := false
	query := func(ctx context.Context) (string, error) {
		defer probe.Enter()()
		if slow {
			done, _ := clk.NewTimer(30 * time.Second)
			<-done
		}
		return "row", nil
	}
	ctx := context.Background()

	ok := 0
	for range 10 {
		if _, err := limit.Do(ctx, b, query); err == nil {
			ok++
		}
	}
	fmt.Printf("t=0s   fast database: %d/10 served\n", ok)

	slow = true
	results := make(chan error, 10)
	for range 10 {
		go func() { _, err := limit.Do(ctx, b, query); results <- err }()
	}
	refused := 0
	for refused < 7 {
		err := <-results
		d, _ := contract.RetryAfter(err)
		if contract.KindOf(err) == contract.KindUnavailable && d == 5*time.Second {
			refused++
		}
	}
	clk.BlockUntilTimers(3) // the 3 admitted calls are stuck in the database
	fmt.Printf("t=0s   slow database: %d refused at once (503, Retry-After 5s), %d in flight\n", refused, b.InFlight())

	clk.Advance(30 * time.Second)
	for range 3 {
		if err := <-results; err != nil {
			fmt.Println("unexpected:", err)
		}
	}
	slow = false
	ok = 0
	for range 10 {
		if _, err := limit.Do(ctx, b, query); err == nil {
			ok++
		}
	}
	fmt.Printf("t=30s  recovered: %d/10 served, %d in flight\n", ok, b.InFlight())
	fmt.Printf("most calls ever inside the database at once: %d\n", probe.Max())
	// Output:
	// t=0s   fast database: 10/10 served
	// t=0s   slow database: 7 refused at once (503, Retry-After 5s), 3 in flight
	// t=30s  recovered: 10/10 served, 0 in flight
	// most calls ever inside the database at once: 3
}
