package breaker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/breaker"
)

// A dependency turns slow for a while, then recovers. Time is compressed with
// a fake clock: each call "takes" its latency by advancing it.
func Example_slowDependencyTimeline() {
	clock := newClock()
	start := clock.Now()
	at := func() string { return fmt.Sprintf("t=%3.0fs", clock.Now().Sub(start).Seconds()) }
	b, _ := breaker.New(breaker.Config{
		Name:              "inventory-db",
		MinCalls:          5,
		FailureRatio:      0.5,
		SlowCallThreshold: time.Second,
		OpenTimeout:       10 * time.Second,
		HalfOpenProbes:    2,
		Clock:             clock,
		Rand:              func() float64 { return 0 }, // no jitter: a reproducible timeline
		DisableMetrics:    true,
		OnStateChange: func(_ context.Context, t breaker.Transition) {
			fmt.Printf("%s  %s -> %s (%s)\n", at(), t.From, t.To, t.Reason)
		},
	})
	latency := 10 * time.Millisecond
	query := func(context.Context) (int, error) { clock.Advance(latency); return 42, nil }
	call := func() {
		if _, err := breaker.Do(context.Background(), b, query); err != nil {
			ra := b.RetryAfter()
			fmt.Printf("%s  rejected at once, retry after %v\n", at(), ra)
		}
	}

	for range 5 {
		call()
	}
	fmt.Println(at(), " dependency turns slow (3s per query; answers still correct)")
	latency = 3 * time.Second
	for range 5 {
		call()
	}
	call()
	clock.Advance(10 * time.Second)
	call() // probe: still slow
	call()
	clock.Advance(20 * time.Second)
	fmt.Println(at(), " dependency recovers")
	latency = 10 * time.Millisecond
	call() // probe 1
	call() // probe 2: closes
	call()
	fmt.Println(at(), " state:", b.State())
	// Output:
	// t=  0s  dependency turns slow (3s per query; answers still correct)
	// t= 15s  closed -> open (failure rate 0.50 over 10 calls >= 0.50)
	// t= 15s  rejected at once, retry after 10s
	// t= 25s  open -> half_open (open delay elapsed: probing)
	// t= 28s  half_open -> open (probe failed)
	// t= 28s  rejected at once, retry after 20s
	// t= 48s  dependency recovers
	// t= 48s  open -> half_open (open delay elapsed: probing)
	// t= 48s  half_open -> closed (2 probes succeeded)
	// t= 48s  state: closed
}
