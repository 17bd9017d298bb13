package idempotency_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/sadpath/sadpath/idempotency"
)

// The Idempotency-Key draft on a standard mux: the retry gets the stored
// response, marked Idempotent-Replayed.
func ExampleMiddleware() {
	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	mw, _ := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: store},
		// The caller's identity, as authentication established it: the
		// account, not the API key (which rotates).
		Scope: func(r *http.Request) (string, error) { return r.Header.Get("X-Account-Id"), nil },
	})
	mux := http.NewServeMux()
	mux.Handle("POST /payments", mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"pay_1"}`)
	})))

	send := func(key, body string) {
		r := httptest.NewRequest("POST", "/payments", strings.NewReader(body))
		r.Header.Set("X-Account-Id", "acct_1")
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Println(w.Code, w.Header().Get("Idempotent-Replayed"), w.Body.String())
	}
	send(`"8e03978e-40d5"`, `{"amount":1250}`)
	send(`"8e03978e-40d5"`, `{"amount":1250}`) // a retry
	send(`"8e03978e-40d5"`, `{"amount":9999}`) // the key reused for another payment
	send("", `{"amount":1250}`)                // no key
	// Output:
	// 201  {"id":"pay_1"}
	// 201 true {"id":"pay_1"}
	// 422  {"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"this idempotency key was already used with a different request payload","instance":"/payments","code":"idempotency.key_reused"}
	// 400  {"type":"about:blank","title":"Bad Request","status":400,"detail":"this request requires an Idempotency-Key header","instance":"/payments","code":"idempotency.key_missing"}
}
