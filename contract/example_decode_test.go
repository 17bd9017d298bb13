package contract_test

import (
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/sadpath/sadpath/contract"
)

type createPayment struct {
	Payer       string `json:"payer"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// Strict decoding: unknown fields, wrong types, trailing data and oversized
// bodies are errors that name the field or the offset.
func ExampleDecodeJSON() {
	for _, body := range []string{
		`{"payer":"ACME","amount_minor":1250,"currency":"EUR"}`,
		`{"payer":"ACME","amount_minor":"12.50"}`,
		`{"payer":"ACME","is_admin":true}`,
		`{"payer":"ACME",}`,
		`{"payer":"ACME"}{"payer":"EVIL"}`,
		`{"payer":"` + strings.Repeat("A", 200) + `"}`,
	} {
		var p createPayment
		err := contract.DecodeJSON(strings.NewReader(body), 128, &p)
		if err != nil {
			e := contract.As(err)
			fmt.Println(contract.HTTPStatus(e.Kind), e.Code+":", e.Detail)
			continue
		}
		fmt.Println("ok", p.Payer, p.AmountMinor, p.Currency)
	}
	// Output:
	// ok ACME 1250 EUR
	// 400 json.type: field "amount_minor" must be an integer, got string at offset 38
	// 400 json.unknown_field: unknown field "is_admin"
	// 400 json.syntax: invalid JSON at offset 17: invalid character '}' looking for beginning of object key string
	// 400 json.trailing_data: unexpected data after the JSON value at offset 16
	// 413 json.too_large: body exceeds the limit of 128 bytes
}

// DecodeRequest also checks the Content-Type.
func ExampleDecodeRequest() {
	r := httptest.NewRequest("POST", "/payments", strings.NewReader(`payer=ACME`))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	var p createPayment
	err := contract.DecodeRequest(r, 0, &p)

	rec := httptest.NewRecorder()
	contract.WriteProblem(rec, r, err)
	fmt.Println(rec.Code)
	fmt.Println(rec.Body)
	// Output:
	// 400
	// {"type":"about:blank","title":"Bad Request","status":400,"detail":"Content-Type must be application/json","instance":"/payments","code":"request.content_type","invalid-params":[{"name":"Content-Type","reason":"must be application/json"}]}
}
