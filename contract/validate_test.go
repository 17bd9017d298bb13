package contract

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestValidatorCollectsAllFields(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	v := NewValidator()
	v.Required("payer", "  ")
	v.Range("amount_minor", -500, 1, 1_000_000_00)
	v.Currency("currency", "XYZ")
	v.OneOf("method", "cash", "card", "sepa")
	v.Length("reference", "ab", 3, 35)
	v.Pattern("country", "fra", regexp.MustCompile(`^[A-Z]{2}$`))
	v.TimeWithin("booked_at", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), now, 30*24*time.Hour, 5*time.Minute)
	v.TimeWithin("expires_at", time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC), now, 0, 366*24*time.Hour)
	v.Range("quantity", 1_000_000_000_000, 1, 10_000)
	err := v.Err()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Err = %v, want KindInvalid", err)
	}
	e := As(err)
	want := []FieldError{
		{"payer", "is required"},
		{"amount_minor", "must be between 1 and 100000000"},
		{"currency", "must be an active ISO 4217 currency code"},
		{"method", `must be one of "card", "sepa"`},
		{"reference", "must be between 3 and 35 characters long"},
		{"country", "must match ^[A-Z]{2}$"},
		{"booked_at", "must not be more than 30 days in the past"},
		{"expires_at", "must not be more than 366 days in the future"},
		{"quantity", "must be between 1 and 10000"},
	}
	if !reflect.DeepEqual(e.Fields, want) {
		t.Fatalf("Fields =\n%q\nwant\n%q", e.Fields, want)
	}
	if e.Code != CodeValidationFailed || e.Detail != "9 fields are invalid" || HTTPStatus(e.Kind) != 422 {
		t.Fatalf("error = %+v", e)
	}
}

func TestValidatorPasses(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	var v Validator // the zero value works
	checks := []bool{
		v.Required("payer", "ACME"),
		v.Range("amount_minor", 1, 1, 1),
		v.Range("amount_minor_max", 100, 1, 100),
		v.Currency("currency", "EUR"),
		v.Currency("currency2", "JPY"),
		v.OneOf("method", "sepa", "card", "sepa"),
		v.Length("reference", "€uro", 4, 4),
		v.Pattern("country", "FR", regexp.MustCompile(`^[A-Z]{2}$`)),
		v.TimeWithin("booked_at", now.Add(-30*24*time.Hour), now, 30*24*time.Hour, 0),
		v.TimeWithin("at_now", now, now, 0, 0),
		v.Check(true, "custom", "never"),
	}
	for i, ok := range checks {
		if !ok {
			t.Errorf("check %d failed", i)
		}
	}
	if !v.Valid() || v.Err() != nil || v.Fields() != nil {
		t.Fatalf("Valid=%v Err=%v Fields=%v", v.Valid(), v.Err(), v.Fields())
	}
}

func TestValidatorFirstErrorPerField(t *testing.T) {
	v := NewValidator()
	if v.Required("currency", "") {
		t.Fatal("Required passed an empty value")
	}
	if v.Currency("currency", "") {
		t.Fatal("a rule on a failed field must report false")
	}
	v.Add("currency", "other")
	v.Check(false, "currency", "another")
	if f := v.Fields(); len(f) != 1 || f[0].Reason != "is required" {
		t.Fatalf("Fields = %v", f)
	}
	if As(v.Err()).Detail != "1 field is invalid" {
		t.Fatalf("detail %q", As(v.Err()).Detail)
	}
}

func TestValidatorEdgeCases(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	v := NewValidator()
	v.Length("name", "\xff\xfe", 0, 10)
	v.Pattern("nil_pattern", "x", nil)
	v.TimeWithin("zero_time", time.Time{}, now, time.Hour, time.Hour)
	v.TimeWithin("negative_window", now.Add(time.Nanosecond), now, -time.Hour, -time.Hour)
	v.TimeWithin("odd_window", now.Add(-2*time.Hour), now, 90*time.Minute+time.Millisecond, 0)
	v.Length("exact", "ab", 3, 3)
	v.Currency("lower", "eur")
	v.Currency("withdrawn", "HRK")
	v.Currency("testing", "XTS")
	v.OneOf("empty_set", "x")
	want := map[string]string{
		"name":            "must be valid UTF-8",
		"nil_pattern":     "has no pattern to match",
		"zero_time":       "is required",
		"negative_window": "must not be more than 0 seconds in the future",
		"odd_window":      "must not be more than 1h30m0.001s in the past",
		"exact":           "must be exactly 3 characters long",
		"lower":           "must be an active ISO 4217 currency code",
		"withdrawn":       "must be an active ISO 4217 currency code",
		"testing":         "must be an active ISO 4217 currency code",
		"empty_set":       "has no allowed value",
	}
	got := map[string]string{}
	for _, f := range v.Fields() {
		got[f.Name] = f.Reason
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestValidatorCapsFieldErrors(t *testing.T) {
	v := NewValidator()
	for i := range 10_000 {
		v.Range("items["+strconv.Itoa(i)+"].qty", 0, 1, 10)
	}
	e := As(v.Err())
	if len(e.Fields) != maxFieldErrors {
		t.Fatalf("%d fields kept", len(e.Fields))
	}
	if e.Detail != "10000 fields are invalid (the first 100 are listed)" {
		t.Fatalf("detail %q", e.Detail)
	}
}

// Past the 100 listed field errors, a field that failed was forgotten: a
// later rule on it reported true instead of being skipped, and a second
// failure counted it twice in the detail.
func TestValidatorRemembersFieldsPastTheCap(t *testing.T) {
	v := NewValidator()
	for i := range maxFieldErrors {
		v.Add("f"+strconv.Itoa(i), "bad")
	}
	if v.Required("extra", "") { // the 101st field: fails, not listed
		t.Fatal("Required on an empty value passed")
	}
	if v.Required("extra", "x") || v.Check(true, "extra", "") {
		t.Error("a rule on a field that already failed reported true")
	}
	v.Add("extra", "again")
	v.Range("extra", 0, 1, 2)
	v.Add("f0", "again") // a listed field, for comparison
	e := As(v.Err())
	if got, want := e.Detail, "101 fields are invalid (the first 100 are listed)"; got != want {
		t.Errorf("detail %q, want %q", got, want)
	}
	if len(e.Fields) != maxFieldErrors || v.Valid() {
		t.Errorf("%d fields listed, valid %v", len(e.Fields), v.Valid())
	}
	if !v.Required("other", "x") {
		t.Error("a rule on a field that never failed must still pass")
	}
}

func TestValidatorErrIsACopy(t *testing.T) {
	v := NewValidator()
	v.Add("a", "bad")
	e := As(v.Err())
	v.Add("b", "bad")
	if len(e.Fields) != 1 {
		t.Fatal("an Error returned earlier must not change when the Validator does")
	}
}

func TestCurrencyTable(t *testing.T) {
	tests := []struct {
		code  string
		units int
		ok    bool
	}{
		{"EUR", 2, true}, {"USD", 2, true}, {"JPY", 0, true}, {"KRW", 0, true}, {"KWD", 3, true},
		{"BHD", 3, true}, {"CLF", 4, true}, {"XOF", 0, true}, {"CHF", 2, true}, {"ZWG", 2, true},
		{"XCG", 2, true}, {"SLE", 2, true},
		{"HRK", 0, false}, {"ZWL", 0, false}, {"XAU", 0, false}, {"XXX", 0, false}, {"XTS", 0, false},
		{"eur", 0, false}, {"", 0, false}, {"EURO", 0, false}, {"# I", 0, false},
	}
	for _, tt := range tests {
		n, ok := CurrencyMinorUnits(tt.code)
		if n != tt.units || ok != tt.ok {
			t.Errorf("CurrencyMinorUnits(%q) = %d, %v; want %d, %v", tt.code, n, ok, tt.units, tt.ok)
		}
	}
	if len(currencies) < 150 {
		t.Fatalf("only %d currencies in the table", len(currencies))
	}
	for code, units := range currencies {
		if len(code) != 3 || units < 0 || units > 4 {
			t.Errorf("table entry %q %d", code, units)
		}
	}
}
