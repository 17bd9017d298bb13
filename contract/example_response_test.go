package contract_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// A client turns a downstream answer back into a contract error, so retry
// and breaker classify it like any other.
func ExampleParseProblem() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		contract.WriteProblem(w, r, contract.New(contract.KindRateLimited, "", "slow down").WithRetryAfter(3*time.Second))
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/charges")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()

	err = contract.ParseProblem(resp)
	fmt.Println(errors.Is(err, contract.ErrRateLimited), contract.Retryable(err))
	fmt.Println(contract.RetryAfter(err))
	fmt.Println(contract.As(err).Detail)
	// Output:
	// true true
	// 3s true
	// slow down
}

// A RoundTripper that does not read bodies still gets the kind and the
// Retry-After hint, capped against hostile values.
func ExampleErrorFromStatus() {
	h := http.Header{}
	h.Set("Retry-After", "120")
	e := contract.ErrorFromStatus(http.StatusServiceUnavailable, h)
	fmt.Println(e.Kind, e.Retryable(), e.RetryAfter)

	h.Set("Retry-After", "31536000") // a year
	fmt.Println(contract.ErrorFromStatus(http.StatusTooManyRequests, h).RetryAfter)

	fmt.Println(contract.ErrorFromStatus(http.StatusBadRequest, nil).Kind, contract.ErrorFromStatus(http.StatusUnprocessableEntity, nil).Kind)
	// Output:
	// unavailable true 2m0s
	// 24h0m0s
	// malformed invalid
}

// Retry-After is delta-seconds or an HTTP-date; now is passed in so tests
// and clients with an injected clock agree on the result.
func ExampleParseRetryAfter() {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	fmt.Println(contract.ParseRetryAfter("90", now))
	fmt.Println(contract.ParseRetryAfter("Wed, 25 Nov 2026 06:05:00 GMT", now))
	fmt.Println(contract.ParseRetryAfter("-1", now))
	// Output:
	// 1m30s true
	// 5m0s true
	// 0s false
}
