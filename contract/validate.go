package contract

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxFieldErrors caps the field errors one Error carries, so a hostile
// request with a million bad items cannot produce a million-line answer.
const maxFieldErrors = 100

// CodeValidationFailed is the Code of the error Validator.Err returns.
const CodeValidationFailed = "validation.failed"

// Validator collects every field error of a request at once, for input that
// is well-formed but absurd: a negative amount, an unknown currency, a date
// in 1970, a quantity of 10^12. Each rule method checks one field, records a
// FieldError when the value breaks the rule and reports whether it passed.
// A field keeps only its first error: rules on a field that already failed
// are skipped (and report false), so "currency is required" is not followed
// by "currency must be an ISO 4217 code".
//
// Err returns nil, or one *Error of KindInvalid (HTTP 422) with every field
// error in Fields, which WriteProblem writes as invalid-params. At most 100
// field errors are listed; the detail still counts every invalid field, and
// a field left out of the list still counts as failed.
//
// The zero Validator is ready to use. A Validator is not safe for concurrent
// use; it is meant to live for one request.
type Validator struct {
	fields []FieldError
	// dropped holds the names of the fields that failed past
	// maxFieldErrors: not listed, but still failed (their later rules are
	// skipped) and counted once each. It grows with the input that names
	// the fields; the answer stays bounded.
	dropped map[string]struct{}
}

// NewValidator returns an empty Validator.
func NewValidator() *Validator { return &Validator{} }

func (v *Validator) failed(name string) bool {
	for i := range v.fields {
		if v.fields[i].Name == name {
			return true
		}
	}
	_, ok := v.dropped[name]
	return ok
}

// Add records that field name is invalid for reason, unless name already has
// an error. Use it for rules the Validator does not have.
func (v *Validator) Add(name, reason string) {
	if v.failed(name) {
		return
	}
	if len(v.fields) == maxFieldErrors {
		if v.dropped == nil {
			v.dropped = make(map[string]struct{})
		}
		v.dropped[name] = struct{}{}
		return
	}
	v.fields = append(v.fields, FieldError{Name: name, Reason: reason})
}

// Check records reason for name when ok is false, and returns ok (false
// when name had already failed).
func (v *Validator) Check(ok bool, name, reason string) bool {
	if v.failed(name) {
		return false
	}
	if !ok {
		v.Add(name, reason)
	}
	return ok
}

// Required checks that value is not empty or only white space.
func (v *Validator) Required(name, value string) bool {
	return v.Check(strings.TrimSpace(value) != "", name, "is required")
}

// Range checks min <= n <= max.
func (v *Validator) Range(name string, n, min, max int64) bool {
	return v.Check(n >= min && n <= max, name,
		"must be between "+strconv.FormatInt(min, 10)+" and "+strconv.FormatInt(max, 10))
}

// Length checks that value is valid UTF-8 of min to max characters (runes).
func (v *Validator) Length(name, value string, min, max int) bool {
	if !utf8.ValidString(value) {
		return v.Check(false, name, "must be valid UTF-8")
	}
	n := utf8.RuneCountInString(value)
	reason := "must be between " + strconv.Itoa(min) + " and " + strconv.Itoa(max) + " characters long"
	if min == max {
		reason = "must be exactly " + strconv.Itoa(min) + " characters long"
	}
	return v.Check(n >= min && n <= max, name, reason)
}

// OneOf checks that value is exactly one of allowed. The reason lists every
// allowed value ("must be one of \"EUR\", \"USD\""), and it is written to
// the client: use it for public enumerations (statuses, currencies), never
// to check a value against secrets (API keys, tenant ids of others); use
// Check with a reason of your own for those.
func (v *Validator) OneOf(name, value string, allowed ...string) bool {
	for _, a := range allowed {
		if value == a {
			return v.Check(true, name, "")
		}
	}
	if len(allowed) == 0 {
		return v.Check(false, name, "has no allowed value")
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	return v.Check(false, name, "must be one of "+strings.Join(quoted, ", "))
}

// Pattern checks that re matches value. Anchor re (^…$) to match the whole
// value; the reason names the pattern so the client can fix the value.
func (v *Validator) Pattern(name, value string, re *regexp.Regexp) bool {
	if re == nil {
		return v.Check(false, name, "has no pattern to match")
	}
	return v.Check(re.MatchString(value), name, "must match "+re.String())
}

// Currency checks that code is an active ISO 4217 currency code, in upper
// case ("EUR", not "eur"); see CurrencyMinorUnits for the table.
func (v *Validator) Currency(name, code string) bool {
	_, ok := CurrencyMinorUnits(code)
	return v.Check(ok, name, "must be an active ISO 4217 currency code")
}

// TimeWithin checks that t is set and lies between now-past and now+future,
// catching a date in 1970, a year 2999 expiry and clocks gone wrong. now is
// a parameter so that callers use their injected clock. Negative windows
// count as zero.
func (v *Validator) TimeWithin(name string, t, now time.Time, past, future time.Duration) bool {
	past, future = max(past, 0), max(future, 0)
	switch {
	case t.IsZero():
		return v.Check(false, name, "is required")
	case t.Before(now.Add(-past)):
		return v.Check(false, name, "must not be more than "+humanDuration(past)+" in the past")
	case t.After(now.Add(future)):
		return v.Check(false, name, "must not be more than "+humanDuration(future)+" in the future")
	}
	return v.Check(true, name, "")
}

// humanDuration writes whole days, hours or minutes as words, anything else
// as time.Duration does.
func humanDuration(d time.Duration) string {
	unit := func(n int64, word string) string {
		s := strconv.FormatInt(n, 10) + " " + word
		if n != 1 {
			s += "s"
		}
		return s
	}
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "0 seconds"
	case d%day == 0:
		return unit(int64(d/day), "day")
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}

// Valid reports whether no rule has failed so far.
func (v *Validator) Valid() bool { return len(v.fields) == 0 && len(v.dropped) == 0 }

// Fields returns a copy of the field errors recorded so far.
func (v *Validator) Fields() []FieldError {
	if len(v.fields) == 0 {
		return nil
	}
	out := make([]FieldError, len(v.fields))
	copy(out, v.fields)
	return out
}

// Err returns nil when every rule passed, else an *Error of KindInvalid
// with Code CodeValidationFailed, a detail counting the invalid fields
// ("2 fields are invalid", each field once) and the field errors in Fields.
func (v *Validator) Err() error {
	if v.Valid() {
		return nil
	}
	n := len(v.fields) + len(v.dropped)
	detail := "1 field is invalid"
	if n != 1 {
		detail = strconv.Itoa(n) + " fields are invalid"
	}
	if len(v.dropped) > 0 {
		detail += " (the first " + strconv.Itoa(len(v.fields)) + " are listed)"
	}
	return &Error{Kind: KindInvalid, Code: CodeValidationFailed, Detail: detail, Fields: v.Fields()}
}
