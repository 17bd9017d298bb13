package contract

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// caseInsensitive has two fields whose names differ only in case:
// encoding/json matches each exactly, so "k" and "K" are two fields.
type caseInsensitive struct {
	Lower int `json:"k"`
	Upper int `json:"K"`
}

type embeddedInner struct {
	X int `json:"x"`
}

type withEmbedded struct {
	embeddedInner
	Y int `json:"y"`
}

type withMaps struct {
	Labels map[string]string `json:"labels"`
	Any    any               `json:"any"`
	Raw    json.RawMessage   `json:"raw"`
	Check  objectDecoder     `json:"check"`
}

// objectDecoder takes any JSON: its own UnmarshalJSON decides what names
// mean, so only exact repetitions are refused inside it.
type objectDecoder map[string]json.RawMessage

func (*objectDecoder) UnmarshalJSON([]byte) error { return nil }

// aliasDecoder decodes itself as its struct type does, through a type
// without its methods: the common way to add a check or default to a
// struct's decoding, which matches names to fields ignoring case.
type aliasDecoder struct {
	Amount int64 `json:"amount"`
	Note   string
}

func (a *aliasDecoder) UnmarshalJSON(b []byte) error {
	type plain aliasDecoder
	return json.Unmarshal(b, (*plain)(a))
}

type withAliasDecoder struct {
	Pay    aliasDecoder  `json:"pay"`
	PayPtr *aliasDecoder `json:"pay_ptr"`
	// An unnamed struct has no methods of its own: encoding/json
	// decodes it as a struct, whose fields are those of aliasDecoder.
	Embeds struct{ aliasDecoder } `json:"embeds"`
}

// A member name repeated in one object, at any depth, or two names of one
// struct's object that encoding/json maps to the same field ignoring case,
// is refused: a gateway, WAF, signature check or audit log written in
// another language reads {"amount":1,"amount":100000} (or "AMOUNT") as 1,
// encoding/json as 100000. The error names the member as sent and the
// offset of its repetition, never its value.
func TestDecodeJSONDuplicateNames(t *testing.T) {
	const secret = "4111111111111111"
	tests := []struct {
		name   string
		target func() any
		body   string
		member string // the repeated member as reported; "" when the body decodes
		at     int    // offset of the repetition
		folded bool   // repeated ignoring case, not exactly
	}{
		{"repeated", newPayment, `{"amount_minor":1,"amount_minor":` + secret + `}`, "amount_minor", 18, false},
		{"repeated ignoring case", newPayment, `{"amount_minor":1,"AMOUNT_MINOR":` + secret + `}`, "AMOUNT_MINOR", 18, true},
		{"repeated ignoring case, first upper", newPayment, `{"Payer":"a","payer":"b"}`, "payer", 13, true},
		{"repeated through an escape", newPayment, `{"payer":"a","p\u0061yer":"b"}`, "payer", 13, false},
		{"repeated with a Kelvin sign", newPayment, `{"booked_at":"2026-11-25T06:00:00Z","boo\u212aed_at":"2026-11-25T06:00:00Z"}`, "boo\u212aed_at", 36, true},
		{"repeated in an object in an array", newPayment, `{"items":[{"qty":1},{"qty":2,"qty":3}]}`, "qty", 29, false},
		{"repeated ignoring case in an array", newPayment, `{"items":[{"qty":1,"QTY":2}]}`, "QTY", 19, true},
		{"repeated array member", newPayment, `{"items":[],"Items":[{"qty":1}]}`, "Items", 12, true},
		{"repeated unknown member", newPayment, `{"admin":true,"admin":false}`, "admin", 14, false},
		{"repeated long name clipped", newPayment, `{"` + strings.Repeat("n", 100) + `":1,"` + strings.Repeat("n", 100) + `":2}`, strings.Repeat("n", 64) + "…", 106, false},
		{"same name in sibling objects", newPayment, `{"items":[{"qty":1},{"qty":2}],"payer":"x"}`, "", 0, false},
		{"names as values", newPayment, `{"payer":"payer","currency":"payer","items":[{"qty":1}]}`, "", 0, false},
		{"quotes and braces in strings", newPayment, `{"payer":"{\"payer\":1,\"payer\":2}","currency":"\\"}`, "", 0, false},
		{"map keys differing in case", newMap, `{"a":1,"A":2,"\u212a":3,"k":4}`, "", 0, false},
		{"map key repeated", newMap, `{"a":1,"b":2,"a":3}`, "a", 13, false},
		{"map key repeated through an escape", newMap, `{"\u00e9":1,"é":2}`, "é", 12, false},
		// encoding/json parses the keys of a map with integer keys:
		// "1", "+1" and "01" are one key, which keeps the last value.
		{"integer map key with a sign", newIntMap, `{"1":1,"+1":2}`, "+1", 7, false},
		{"integer map key with a leading zero", newIntMap, `{"10":1,"-1":2,"010":3}`, "010", 15, false},
		{"integer map key, canonical after", newIntMap, `{"-00":1,"0":2}`, "0", 9, false},
		{"integer map key, both not canonical", newNestedIntMap, `{"x":{"01":1,"+0001":2}}`, "+0001", 13, false},
		{"unsigned map key with a leading zero", newUintMap, `{"7":1,"07":2}`, "07", 7, false},
		{"integer map keys", newIntMap, `{"1":1,"10":2,"-1":3,"0":4,"-10":5}`, "", 0, false},
		{"string map keys of digits", newMap, `{"1":1,"+1":2,"01":3}`, "", 0, false},
		{"interface keys differing in case", newAny, `{"x":{"a":1,"A":2},"y":[{"k":1,"K":2}]}`, "", 0, false},
		{"interface key repeated deep", newAny, `{"x":[[{"a":1}],[{"b":1,"b":2}]]}`, "b", 24, false},
		{"two fields differing in case", newCaseInsensitive, `{"k":1,"K":2}`, "", 0, false},
		{"two fields differing in case, repeated", newCaseInsensitive, `{"k":1,"K":2,"k":3}`, "k", 13, false},
		// The Kelvin sign matches neither name exactly: encoding/json
		// takes the first field matching it ignoring case, "k".
		{"two fields, a third spelling of the first", newCaseInsensitive, `{"K":1,"k":2,"\u212a":3}`, "\u212a", 13, true},
		{"two fields, a third spelling", newCaseInsensitive, `{"K":1,"\u212a":2}`, "", 0, false},
		{"embedded field ignoring case", newEmbedded, `{"x":1,"y":2,"X":3}`, "X", 13, true},
		{"map field keys differing in case", newMaps, `{"labels":{"env":"a","ENV":"b"}}`, "", 0, false},
		{"map field repeated ignoring case", newMaps, `{"labels":{},"LABELS":{"a":"b"}}`, "LABELS", 13, true},
		{"interface field keys differing in case", newMaps, `{"any":{"a":{"b":1,"B":2}}}`, "", 0, false},
		{"raw field keys differing in case", newMaps, `{"raw":{"a":1,"A":2}}`, "", 0, false},
		{"raw field key repeated", newMaps, `{"raw":{"a":{"b":[{"c":1,"c":1}]}}}`, "c", 25, false},
		{"custom decoder keys differing in case", newMaps, `{"check":{"a":1,"A":2}}`, "", 0, false},
		{"struct decoding itself as a struct", newAliasDecoder, `{"amount":1,"AMOUNT":2}`, "AMOUNT", 12, true},
		{"struct decoding itself, in a field", newWithAliasDecoder, `{"pay":{"note":"a","Note":"b"}}`, "Note", 19, true},
		{"struct decoding itself, through a pointer", newWithAliasDecoder, `{"pay_ptr":{"amount":1,"Amount":2}}`, "Amount", 23, true},
		{"struct decoding itself, embedded", newWithAliasDecoder, `{"embeds":{"amount":1,"amounT":2}}`, "amounT", 22, true},
		{"struct decoding itself, names it does not know", newWithAliasDecoder, `{"pay":{"x":1,"X":2,"amount":3}}`, "", 0, false},
		{"custom decoder key repeated", newMaps, `{"check":{"a":1,"a":2}}`, "a", 16, false},
		{"interface holding a struct pointer", newAnyPayment, `{"payer":"a","PAYER":"b"}`, "PAYER", 13, true},
		// encoding/json decodes into the elements a slice or an array
		// already has (up to a slice's capacity), an interface holding a
		// struct pointer included.
		{"slice element holding a struct pointer", newAnySlice, `[{"payer":"a","PAYER":"b"}]`, "PAYER", 14, true},
		{"slice element past those it holds", newAnySlice, `[{"payer":"a"},{"a":1,"A":2}]`, "", 0, false},
		{"slice element within its capacity", newAnySliceCap, `[1,{"payer":"a","PAYER":"b"}]`, "PAYER", 16, true},
		{"array element holding a struct pointer", newAnyArray, `[{"a":1,"A":1},{"payer":"a","Payer":"b"}]`, "Payer", 28, true},
		// encoding/json drops the elements past an array's length.
		{"array element past its length", newPaymentArray, `[{},{},{"payer":"a","Payer":"b"}]`, "", 0, false},
		{"struct in a slice holding a struct pointer", newPrefilled, `{"l":[{"k":{"payer":"a","PAYER":"b"}}]}`, "PAYER", 24, true},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 2, 3, 7, 4096} {
			v := tt.target()
			err := DecodeJSON(&chunkReader{s: tt.body, size: size}, 0, v)
			if tt.member == "" {
				if err != nil {
					t.Errorf("%s in reads of %d: %v", tt.name, size, err)
				}
				continue
			}
			e := As(err)
			reason, detail := "is repeated", "field "+strconv.Quote(tt.member)+" is repeated at offset "+strconv.Itoa(tt.at)
			if tt.folded {
				reason = "repeats a field whose name differs only in case"
				detail = "field " + strconv.Quote(tt.member) + " at offset " + strconv.Itoa(tt.at) + " repeats a field whose name differs only in case"
			}
			if e == nil || e.Kind != KindMalformed || e.Code != "json.duplicate_field" || e.Detail != detail ||
				len(e.Fields) != 1 || e.Fields[0] != (FieldError{Name: tt.member, Reason: reason}) {
				t.Errorf("%s in reads of %d: %#v, want 400 json.duplicate_field %q", tt.name, size, e, detail)
				continue
			}
			rec := httptest.NewRecorder()
			WriteProblem(rec, httptest.NewRequest("POST", "/payments", nil), err)
			if rec.Code != 400 || strings.Contains(rec.Body.String(), secret) || strings.Contains(err.Error(), secret) {
				t.Errorf("%s: %d %s", tt.name, rec.Code, rec.Body)
			}
		}
	}
}

func newPayment() any          { return new(payment) }
func newMap() any              { return new(map[string]int) }
func newAny() any              { return new(any) }
func newIntMap() any           { return new(map[int64]int) }
func newUintMap() any          { return new(map[uint8]int) }
func newNestedIntMap() any     { return new(map[string]map[int8]int) }
func newCaseInsensitive() any  { return new(caseInsensitive) }
func newEmbedded() any         { return new(withEmbedded) }
func newMaps() any             { return new(withMaps) }
func newAliasDecoder() any     { return new(aliasDecoder) }
func newWithAliasDecoder() any { return new(withAliasDecoder) }
func newAnySlice() any {
	v := []any{new(payment)}
	return &v
}
func newAnySliceCap() any {
	v := make([]any, 1, 2)
	v[:2][1] = new(payment)
	return &v
}
func newAnyArray() any     { return &[2]any{nil, new(payment)} }
func newPaymentArray() any { return new([2]payment) }

type prefilled struct {
	L []struct {
		K any `json:"k"`
	} `json:"l"`
}

func newPrefilled() any {
	v := &prefilled{L: make([]struct {
		K any `json:"k"`
	}, 1)}
	v.L[0].K = new(payment)
	return v
}
func newAnyPayment() any {
	var v any = new(payment)
	return &v
}

// A repetition in data after the value is reported as that data, as
// before; each top-level value has names of its own.
func TestDecodeJSONDuplicateNamesAfterTheValue(t *testing.T) {
	var p payment
	if e := As(DecodeJSON(strings.NewReader(`{"payer":"a"} {"payer":"b"}`), 0, &p)); e == nil || e.Code != "json.trailing_data" {
		t.Fatalf("got %v, want json.trailing_data", e)
	}
}

// Objects with many members are checked in linear time and memory: a
// hostile body of a million members, or of members repeated at the end of
// a large object, or nested as deep as encoding/json allows, is refused or
// decoded without a quadratic scan.
func TestDecodeJSONDuplicateNamesLargeObjects(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	const n = 100_000
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":1`)
	}
	distinct := b.String() + "}"
	var m map[string]int
	if err := DecodeJSON(strings.NewReader(distinct), 8<<20, &m); err != nil || len(m) != n {
		t.Fatalf("%d distinct members: %v, %d decoded", n, err, len(m))
	}
	for _, repeated := range []string{"k0", "k77777", "k99999"} {
		body := b.String() + `,"` + repeated + `":2}`
		m = nil
		e := As(DecodeJSON(strings.NewReader(body), 8<<20, &m))
		if e == nil || e.Code != "json.duplicate_field" || e.Fields[0].Name != repeated {
			t.Errorf("%q repeated after %d members: %v", repeated, n, e)
		}
	}
	var any1 any
	big := `{"x":` + strings.Repeat(`[`, 9990) + distinct + strings.Repeat(`]`, 9990) + `}`
	if err := DecodeJSON(strings.NewReader(big), 8<<20, &any1); err != nil {
		t.Errorf("deep: %v", err)
	}
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat(`}`, 20000)
	if e := As(DecodeJSON(strings.NewReader(deep), 0, &any1)); e == nil || e.Code != "json.syntax" {
		t.Errorf("too deep: %v", e)
	}
}

// Case-insensitive repetitions are found in objects of any size.
func TestDecodeJSONDuplicateNamesFoldedInLargeObjects(t *testing.T) {
	var v map[string]map[string]int
	var b strings.Builder
	b.WriteString(`{"m":{`)
	for i := range 1000 {
		b.WriteString(`"k` + strconv.Itoa(i) + `":1,`)
	}
	b.WriteString(`"K1":1}}`)
	if err := DecodeJSON(strings.NewReader(b.String()), 0, &v); err != nil || len(v["m"]) != 1001 {
		t.Fatalf("map keys differing in case: %v", err)
	}
	type many struct {
		M map[string]int `json:"m"`
		X int            `json:"x"`
	}
	var s many
	// Past the members a small object holds, after unknown ones.
	body := strings.Replace(b.String(), `{"m":{`, `{"x":1,`, 1)
	body = strings.Replace(body, `"K1":1}}`, `"X":2}`, 1)
	if e := As(DecodeJSON(strings.NewReader(body), 0, &s)); e == nil || e.Code != "json.duplicate_field" || e.Fields[0].Name != "X" {
		t.Fatalf("X after x: %v", e)
	}
	var wide map[string]any
	b.Reset()
	b.WriteString(`{"s":{`)
	for i := range 1000 {
		b.WriteString(`"k` + strconv.Itoa(i) + `":1,`)
	}
	b.WriteString(`"k500":1}}`)
	if e := As(DecodeJSON(strings.NewReader(b.String()), 0, &wide)); e == nil || e.Code != "json.duplicate_field" || e.Fields[0].Name != "k500" {
		t.Fatalf("k500 repeated: %v", e)
	}
	if !errors.Is(DecodeJSON(strings.NewReader(b.String()), 0, &wide), ErrMalformed) {
		t.Fatal("not ErrMalformed")
	}
}

// The check allocates nothing for a small body: names are hashed where
// they were read, in the state DecodeJSON allocates anyway.
func TestDecodeJSONNameCheckAllocatesNothing(t *testing.T) {
	body := []byte(`{"payer":"ACME","amount_minor":1250,"currency":"EUR","booked_at":"2026-11-25T06:00:00Z",` +
		`"items":[{"qty":1},{"qty":2}],"PAYER":"x"}`)
	var p payment
	s := new(nameScanner)
	allocs := testing.AllocsPerRun(100, func() {
		*s = nameScanner{}
		s.init(&p)
		if s.scan(body[:len(body)-12]) != nil {
			t.Fatal("repeated")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations checking the names of a small body, want 0", allocs)
	}
}
