package contract_test

import (
	"fmt"
	"net/http/httptest"
	"regexp"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Valid JSON with an absurd meaning: the validator reports every field at
// once, and the error becomes a 422 problem with invalid-params.
func ExampleValidator() {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	req := struct {
		Payer       string
		AmountMinor int64
		Currency    string
		Country     string
		BookedAt    time.Time
	}{"", -500, "EURO", "FR", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}

	v := contract.NewValidator()
	v.Required("payer", req.Payer)
	v.Range("amount_minor", req.AmountMinor, 1, 100_000_000)
	v.Currency("currency", req.Currency)
	v.Pattern("country", req.Country, regexp.MustCompile(`^[A-Z]{2}$`))
	v.TimeWithin("booked_at", req.BookedAt, now, 30*24*time.Hour, 5*time.Minute)

	rec := httptest.NewRecorder()
	contract.WriteProblem(rec, httptest.NewRequest("POST", "/payments", nil), v.Err())
	fmt.Println(rec.Code)
	fmt.Println(rec.Body)
	// Output:
	// 422
	// {"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"4 fields are invalid","instance":"/payments","code":"validation.failed","invalid-params":[{"name":"payer","reason":"is required"},{"name":"amount_minor","reason":"must be between 1 and 100000000"},{"name":"currency","reason":"must be an active ISO 4217 currency code"},{"name":"booked_at","reason":"must not be more than 30 days in the past"}]}
}

// Amounts travel in minor units; the currency says how many there are.
func ExampleCurrencyMinorUnits() {
	for _, code := range []string{"EUR", "JPY", "KWD", "XYZ"} {
		n, ok := contract.CurrencyMinorUnits(code)
		fmt.Println(code, n, ok)
	}
	// Output:
	// EUR 2 true
	// JPY 0 true
	// KWD 3 true
	// XYZ 0 false
}
