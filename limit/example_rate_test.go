package limit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/limit/limittest"
)

// A limiter of 5 calls per second with a burst of 2, in Reject mode. The
// refusal says exactly when the next token is due; the refused call spends
// nothing. A manual clock makes the example deterministic.
func ExampleLimiter() {
	clk := limittest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l, err := limit.NewLimiter(limit.LimiterConfig{Name: "api.refunds", Rate: 5, Burst: 2, Clock: clk})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i := range 3 {
		err := l.Take(ctx)
		d, _ := contract.RetryAfter(err)
		fmt.Printf("call %d: err=%v retry-after=%v\n", i+1, err != nil, d)
	}
	clk.Advance(200 * time.Millisecond)
	fmt.Println("after 200ms:", l.Take(ctx))
	// Output:
	// call 1: err=false retry-after=0s
	// call 2: err=false retry-after=0s
	// call 3: err=true retry-after=200ms
	// after 200ms: <nil>
}

// One bucket per tenant: a noisy tenant is throttled, the others are not.
func ExampleKeyedLimiter() {
	clk := limittest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, _ := limit.NewKeyedLimiter(limit.KeyedConfig{
		Limiter: limit.LimiterConfig{Rate: 1, Burst: 1, Clock: clk},
		MaxKeys: 10000,
	})
	ctx := context.Background()
	fmt.Println("noisy:", k.Take(ctx, "tenant-noisy"))
	fmt.Println("noisy:", contract.KindOf(k.Take(ctx, "tenant-noisy")))
	fmt.Println("quiet:", k.Take(ctx, "tenant-quiet"))
	// Output:
	// noisy: <nil>
	// noisy: rate_limited
	// quiet: <nil>
}

// In Wait mode a call waits for its token when it is due within MaxWait;
// a wait that could not succeed in time is refused at once instead.
func ExampleLimiter_wait() {
	clk := limittest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l, _ := limit.NewLimiter(limit.LimiterConfig{Rate: 1, Burst: 1, Mode: limit.Wait, MaxWait: 100 * time.Millisecond, Clock: clk})
	ctx := context.Background()
	fmt.Println(l.Take(ctx))
	err := l.Take(ctx) // the next token is 1s away, more than MaxWait
	d, _ := contract.RetryAfter(err)
	fmt.Println(contract.KindOf(err), d)
	// Output:
	// <nil>
	// rate_limited 1s
}
