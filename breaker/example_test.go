package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

func Example() {
	b, err := breaker.New(breaker.Config{
		Name:           "payments-gateway",
		MinCalls:       4,
		FailureRatio:   0.5,
		OpenTimeout:    30 * time.Second,
		DisableMetrics: true,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	gatewayDown := contract.New(contract.KindUnavailable, "gateway.charge", "connection refused")
	for range 4 {
		_, err = breaker.Do(ctx, b, func(context.Context) (string, error) { return "", gatewayDown })
	}
	fmt.Println("state:", b.State())

	_, err = breaker.Do(ctx, b, func(context.Context) (string, error) { return "charged", nil })
	fmt.Println(errors.Is(err, contract.ErrUnavailable), errors.Is(err, breaker.ErrOpen))
	fmt.Println(err)
	ra, _ := contract.RetryAfter(err)
	fmt.Println("retry after <= 30s:", ra > 0 && ra <= 30*time.Second)
	// Output:
	// state: open
	// true true
	// payments-gateway: unavailable (breaker.open): circuit breaker is open: failing fast: circuit breaker is open
	// retry after <= 30s: true
}

func ExampleConfig_validation() {
	_, err := breaker.New(breaker.Config{Name: "db", FailureRatio: 1.5})
	fmt.Println(err)
	fmt.Println(errors.Is(err, contract.ErrInvalid))
	// Output:
	// breaker: invalid (config.invalid): Config.FailureRatio: must be in (0, 1], got 1.5
	// true
}

func ExampleBreaker_ForceOpen() {
	b, _ := breaker.New(breaker.Config{Name: "ledger-db", DisableMetrics: true})
	ctx := context.Background()

	b.ForceOpen(ctx, "incident 4711: ledger failover")
	err := b.Execute(ctx, func(context.Context) error { return nil })
	fmt.Println(b.State(), errors.Is(err, breaker.ErrOpen))

	b.Reset(ctx) // back to automatic: the next calls are probes
	fmt.Println(b.State())
	// Output:
	// forced_open true
	// half_open
}
