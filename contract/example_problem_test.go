package contract_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// WriteProblem answers with the status of the error's kind, a Retry-After
// for rate limited and unavailable errors, and an RFC 9457 body.
func ExampleWriteProblem() {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/payments", nil)
	err := contract.New(contract.KindUnavailable, "psp.charge", "the payment provider is unavailable").
		WithRetryAfter(30 * time.Second)

	contract.WriteProblem(rec, req, err)

	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Retry-After"))
	fmt.Println(rec.Body)
	// Output:
	// 503 application/problem+json 30
	// {"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the payment provider is unavailable","instance":"/payments","code":"unavailable"}
}

// Internal errors never show their text: a leaked SQL error or DSN is a gift
// to an attacker. The cause stays in the error for the server's logs.
func ExampleWriteProblem_internal() {
	rec := httptest.NewRecorder()
	err := fmt.Errorf("insert payment: %w", errors.New(`pq: relation "payments" does not exist`))

	contract.WriteProblem(rec, httptest.NewRequest("POST", "/payments", nil), err)

	fmt.Println(rec.Code)
	fmt.Println(rec.Body)
	// Output:
	// 500
	// {"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal error","instance":"/payments","code":"internal"}
}

// Problem keeps extension members it does not know, so a client loses
// nothing a server sent.
func ExampleProblem() {
	var p contract.Problem
	_ = json.Unmarshal([]byte(`{"type":"https://example.com/probs/out-of-credit","status":403,"balance":30,"accounts":["/account/1"]}`), &p)
	fmt.Println(p.Type, p.Status, p.Extensions["balance"], p.Extensions["accounts"])

	b, _ := json.Marshal(p)
	fmt.Println(string(b))
	// Output:
	// https://example.com/probs/out-of-credit 403 30 [/account/1]
	// {"type":"https://example.com/probs/out-of-credit","status":403,"accounts":["/account/1"],"balance":30}
}
