package retry_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// Wiring 2: an HTTP client. GET, HEAD, OPTIONS, PUT and DELETE are retried
// on connection errors, 429, 502, 503 and 504, honouring Retry-After;
// POSTs get an Idempotency-Key so they can be retried too.
func ExampleNewTransport() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "created %s (key set: %t)", body, r.Header.Get("Idempotency-Key") != "")
	}))
	defer srv.Close()

	clock := retrytest.NewClock() // leave nil in production
	policy, err := retry.New(retry.Config{Name: "payments-api", MaxAttempts: 4, Clock: clock})
	if err != nil {
		panic(err)
	}
	tr, err := retry.NewTransport(retry.TransportConfig{
		Base:                   srv.Client().Transport,
		Policy:                 policy,
		GenerateIdempotencyKey: true,
	})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}

	resp, err := client.Post(srv.URL+"/payments", "application/json", strings.NewReader(`{"amount":100}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println("attempts:", hits.Load(), "waited:", clock.Slept())
	// Output:
	// 200 created {"amount":100} (key set: true)
	// attempts: 3 waited: 4s
}
