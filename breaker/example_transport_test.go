package breaker_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

func ExampleTransport() {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()

	reg, _ := breaker.NewRegistry(breaker.RegistryConfig{
		Breaker: breaker.Config{MinCalls: 3, DisableMetrics: true}, // one breaker per host, from this template
	})
	tr, _ := breaker.NewTransport(breaker.TransportConfig{Registry: reg})
	client := &http.Client{Transport: tr}

	for range 4 {
		resp, err := client.Get(down.URL)
		if err != nil {
			fmt.Println("failed fast:", errors.Is(err, contract.ErrUnavailable), contract.As(err).Code)
			continue
		}
		resp.Body.Close()
		fmt.Println("status", resp.StatusCode)
	}
	// Output:
	// status 503
	// status 503
	// status 503
	// failed fast: true breaker.open
}
