package contract

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

const fullEvent = `{"specversion":"1.0","id":"evt_1","source":"/payments","type":"com.example.payment.captured.v1",` +
	`"subject":"payment/pay_1","time":"2026-11-25T06:00:00.123Z","datacontenttype":"application/json",` +
	`"dataschema":"https://schemas.example.com/payment/v1","sequence":7,"correlationid":"c-42",` +
	`"partitionkey":"pay_1","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","priority":3,"replayed":false,` +
	`"data":{"amount_minor":1250,"currency":"EUR"}}`

func TestDecodeEventFull(t *testing.T) {
	e, err := DecodeEvent([]byte(fullEvent))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{
		ID: "evt_1", Source: "/payments", SpecVersion: "1.0", Type: "com.example.payment.captured.v1",
		Time:            time.Date(2026, 11, 25, 6, 0, 0, 123_000_000, time.UTC),
		Subject:         "payment/pay_1",
		DataContentType: "application/json", DataSchema: "https://schemas.example.com/payment/v1",
		Sequence: 7, CorrelationID: "c-42",
		Data: json.RawMessage(`{"amount_minor":1250,"currency":"EUR"}`),
		Extensions: map[string]any{
			"partitionkey": "pay_1", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"priority": int64(3), "replayed": false,
		},
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got\n%#v\nwant\n%#v", e, want)
	}
	if e.DedupKey() != `"/payments"/"evt_1"` {
		t.Fatalf("DedupKey %s", e.DedupKey())
	}
	// Encoding round trip: the same bytes (canonical member order) and the
	// same event.
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != fullEventCanonical {
		t.Fatalf("Marshal =\n%s\nwant\n%s", b, fullEventCanonical)
	}
	back, err := DecodeEvent(b)
	if err != nil || !reflect.DeepEqual(back, e) {
		t.Fatalf("round trip: %v\n%#v", err, back)
	}
}

const fullEventCanonical = `{"specversion":"1.0","id":"evt_1","source":"/payments","type":"com.example.payment.captured.v1",` +
	`"subject":"payment/pay_1","time":"2026-11-25T06:00:00.123Z","datacontenttype":"application/json",` +
	`"dataschema":"https://schemas.example.com/payment/v1","sequence":7,"correlationid":"c-42",` +
	`"partitionkey":"pay_1","priority":3,"replayed":false,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",` +
	`"data":{"amount_minor":1250,"currency":"EUR"}}`

func TestDecodeEventMinimalAndDefaults(t *testing.T) {
	e, err := DecodeEvent([]byte(`{"specversion":"1.0","id":"1","source":"urn:psp:acme","type":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.DataContentType != "" || e.Sequence != 0 || e.Extensions != nil || e.Data != nil || !e.Time.IsZero() {
		t.Fatalf("absent attributes must stay zero: %#v", e)
	}
	e, err = DecodeEvent([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data":[1],"subject":null,"sequence":"18446744073709551615"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.DataContentType != "application/json" {
		t.Fatalf("datacontenttype default: %q", e.DataContentType)
	}
	if e.Sequence != 18446744073709551615 {
		t.Fatalf("sequence as a decimal string: %d", e.Sequence)
	}
	e, err = DecodeEvent([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"hello","time":"2026-11-25T07:00:00+01:00"}`))
	if err != nil || e.DataContentType != "text/plain" || string(e.Data) != `"hello"` || !e.Time.Equal(time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)) {
		t.Fatalf("%v %#v", err, e)
	}
}

func TestDecodeEventErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		kind   Kind
		fields []string
	}{
		{"empty", ``, KindMalformed, nil},
		{"not json", `hello`, KindMalformed, nil},
		{"array", `[{"id":"1"}]`, KindMalformed, nil},
		{"string", `"event"`, KindMalformed, nil},
		{"truncated", `{"specversion":"1.0","id":`, KindMalformed, nil},
		{"trailing data", `{"specversion":"1.0","id":"1","source":"s","type":"t"} {}`, KindMalformed, nil},
		{"missing required", `{}`, KindInvalid, []string{"id", "source", "specversion", "type"}},
		{"wrong specversion", `{"specversion":"0.3","id":"1","source":"s","type":"t"}`, KindInvalid, []string{"specversion"}},
		{"blank id", `{"specversion":"1.0","id":" ","source":"s","type":"t"}`, KindInvalid, []string{"id"}},
		{"null required", `{"specversion":"1.0","id":null,"source":"s","type":"t"}`, KindInvalid, []string{"id"}},
		{"wrong types", `{"specversion":1.0,"id":5,"source":["s"],"type":true}`, KindMalformed, []string{"specversion", "id", "source", "type"}},
		{"repeated attribute", `{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}`, KindMalformed, []string{"id"}},
		{"bad time", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"25/11/2026"}`, KindMalformed, []string{"time"}},
		{"time as number", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":1764050400}`, KindMalformed, []string{"time"}},
		{"negative sequence", `{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":-1}`, KindMalformed, []string{"sequence"}},
		{"fractional sequence", `{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":1.5}`, KindMalformed, []string{"sequence"}},
		{"exponent sequence", `{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":1e3}`, KindMalformed, []string{"sequence"}},
		{"overflowing sequence", `{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":18446744073709551616}`, KindMalformed, []string{"sequence"}},
		{"signed string sequence", `{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":"+1"}`, KindMalformed, []string{"sequence"}},
		{"upper-case extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","partitionKey":"x"}`, KindMalformed, []string{"partitionKey"}},
		{"long extension name", `{"specversion":"1.0","id":"1","source":"s","type":"t","abcdefghijklmnopqrstu":"x"}`, KindMalformed, []string{"abcdefghijklmnopqrstu"}},
		{"underscore extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","trace_id":"x"}`, KindMalformed, []string{"trace_id"}},
		{"object extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","meta":{"a":1}}`, KindMalformed, []string{"meta"}},
		{"float extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","ratio":0.5}`, KindMalformed, []string{"ratio"}},
		{"int64 extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","big":4294967296}`, KindMalformed, []string{"big"}},
		{"data_base64", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AQID"}`, KindMalformed, []string{"data_base64"}},
		{"relative dataschema", `{"specversion":"1.0","id":"1","source":"s","type":"t","dataschema":"/schemas/v1"}`, KindInvalid, []string{"dataschema"}},
		{"bad source", `{"specversion":"1.0","id":"1","source":"http://[::1","type":"t"}`, KindInvalid, []string{"source"}},
		{"bad datacontenttype", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"json"}`, KindInvalid, []string{"datacontenttype"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEvent([]byte(tt.in))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("DecodeEvent = %v (%T), want *Error", err, err)
			}
			if !reflect.DeepEqual(e, Event{}) {
				t.Errorf("a failed decode must return the zero Event, got %#v", e)
			}
			if ce.Kind != tt.kind {
				t.Errorf("kind %v, want %v: %v", ce.Kind, tt.kind, err)
			}
			var names []string
			for _, f := range ce.Fields {
				names = append(names, f.Name)
			}
			sort.Strings(names)
			want := append([]string(nil), tt.fields...)
			sort.Strings(want)
			if !reflect.DeepEqual(names, want) && !(len(names) == 0 && len(want) == 0) {
				t.Errorf("fields %v, want %v", names, want)
			}
		})
	}
}

// DecodeEvent accepted the time "2024-01-01T01:02:03+24:00" (time.Parse
// takes offset hours of 24), which json.Marshal of the decoded event then
// refused, and other forms time.Parse takes that are not RFC 3339.
func TestDecodeEventTimeMustBeRFC3339(t *testing.T) {
	event := func(ts string) []byte {
		return []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"` + ts + `"}`)
	}
	for _, ts := range []string{
		"2024-01-01T01:02:03Z",
		"2024-01-01T01:02:03.5Z",
		"2024-01-01T01:02:03.123456789+01:00",
		"2024-01-01T01:02:03+23:59",
		"2024-01-01T01:02:03-23:59",
		"2024-01-01T01:02:03-00:00",
		"0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z",
	} {
		e, err := DecodeEvent(event(ts))
		if err != nil {
			t.Errorf("DecodeEvent(time %q) = %v", ts, err)
			continue
		}
		if _, err := json.Marshal(e); err != nil {
			t.Errorf("time %q decodes but does not encode: %v", ts, err)
		}
	}
	for _, ts := range []string{
		"2024-01-01T01:02:03+24:00", // offset hour 24: parses, cannot be encoded
		"2024-01-01T01:02:03-24:00",
		"2024-01-01T01:02:03+23:60", // offset minute 60: the same as +24:00
		"2024-01-01T01:02:03+00:60",
		"2024-01-01T1:02:03Z",    // one-digit hour
		"2024-01-01T01:02:03,5Z", // comma before the fraction
		"2024-01-01T01:02:03.Z",
		"2024-01-01T01:02:03+0100",
		"2024-01-01t01:02:03z",
		"2024-01-01 01:02:03Z",
		"2024-01-01T01:02:03",
		"2024-01-01T01:02:03Z ",
		"2024-02-30T01:02:03Z",
		"+2024-01-01T01:02:03Z",
		"",
	} {
		e, err := DecodeEvent(event(ts))
		if f := As(err); !errors.Is(err, ErrMalformed) || len(f.Fields) != 1 || f.Fields[0] != (FieldError{Name: "time", Reason: "must be an RFC 3339 timestamp"}) {
			t.Errorf("DecodeEvent(time %q) = %v, %v; want a malformed time", ts, e.Time, err)
		}
	}
}

func TestEventValidate(t *testing.T) {
	valid := Event{ID: "1", Source: "/s", SpecVersion: SpecVersion, Type: "t"}
	if err := valid.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"extension named like an attribute", func(e *Event) { e.Extensions = map[string]any{"id": "x"} }, "id"},
		{"extension named data", func(e *Event) { e.Extensions = map[string]any{"data": "x"} }, "data"},
		{"extension bad name", func(e *Event) { e.Extensions = map[string]any{"Bad-Name": "x"} }, "Bad-Name"},
		{"extension float", func(e *Event) { e.Extensions = map[string]any{"ratio": 0.5} }, "ratio"},
		{"extension int64 out of range", func(e *Event) { e.Extensions = map[string]any{"n": int64(1) << 40} }, "n"},
		{"extension nil", func(e *Event) { e.Extensions = map[string]any{"n": nil} }, "n"},
		{"extension uint32 out of range", func(e *Event) { e.Extensions = map[string]any{"n": uint32(1 << 31)} }, "n"},
		{"extension uint64", func(e *Event) { e.Extensions = map[string]any{"n": uint64(1)} }, "n"},
		{"invalid data", func(e *Event) { e.Data = json.RawMessage(`{"a":`) }, "data"},
		{"time year 10000", func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "time"},
		{"time offset 24h", func(e *Event) { e.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)) }, "time"},
		// RFC 3339 writes ±hh:mm: a zone offset with seconds (local mean
		// times before 1937, e.g. Amsterdam +00:19:32) would be encoded
		// as another instant.
		{"time offset with seconds", func(e *Event) { e.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("LMT", 19*60+32)) }, "time"},
		// json.Marshal would replace invalid UTF-8 with U+FFFD: another
		// id, another DedupKey after a round trip.
		{"id invalid UTF-8", func(e *Event) { e.ID = "id-\xff" }, "id"},
		{"subject invalid UTF-8", func(e *Event) { e.Subject = "acct-\xfe" }, "subject"},
		{"extension invalid UTF-8", func(e *Event) { e.Extensions = map[string]any{"tenant": "t\xff"} }, "tenant"},
		// url.Parse is lenient; RFC 3986 has no spaces or quotes.
		{"source not a URI-reference", func(e *Event) { e.Source = "not a uri" }, "source"},
		{"dataschema with a space", func(e *Event) { e.DataSchema = "http://x/a b" }, "dataschema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid
			tt.edit(&e)
			err := e.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v", err)
			}
			if f := As(err).Fields; len(f) != 1 || f[0].Name != tt.field {
				t.Fatalf("fields %v, want %q", f, tt.field)
			}
			// What cannot be encoded faithfully is refused by Marshal too
			// (time and data have their own Marshal tests; source and
			// dataschema encode as they are).
			if _, mErr := json.Marshal(e); tt.field != "time" && tt.field != "data" && tt.field != "source" && tt.field != "dataschema" && !errors.Is(mErr, ErrInvalid) {
				t.Fatalf("Marshal of an event that cannot be encoded faithfully = %v", mErr)
			}
		})
	}
	ok := valid
	ok.Extensions = map[string]any{"a": "s", "b": true, "c": 3, "d": int32(-4), "e": int64(2147483647), "f": uint8(7), "g": uint32(1 << 30)}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ok)
	if err != nil || !strings.Contains(string(b), `"a":"s","b":true,"c":3,"d":-4,"e":2147483647,"f":7,"g":1073741824`) {
		t.Fatalf("%v %s", err, b)
	}
}

// CloudEvents 1.0 strings exclude control characters and noncharacters: a
// newline in an id or subject breaks the ce-id and ce-subject headers of the
// HTTP binary mode, and log lines. JSON can carry them (escaped), so Marshal
// writes them; Validate, and so DecodeEvent, refuses them.
func TestEventValidateDisallowedCharacters(t *testing.T) {
	valid := Event{ID: "1", Source: "/s", SpecVersion: SpecVersion, Type: "t", Subject: "caf\u00e9 \U0001F600"}
	if err := valid.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"id with a newline", func(e *Event) { e.ID = "pay_1\r\nce-type: forged" }, "id"},
		{"subject with a C1 control", func(e *Event) { e.Subject = "acct-\u0085" }, "subject"},
		{"type with a noncharacter", func(e *Event) { e.Type = "t\uFFFE" }, "type"},
		{"source with DEL", func(e *Event) { e.Source = "/s\x7f" }, "source"},
		{"extension with a control character", func(e *Event) { e.Extensions = map[string]any{"tenant": "t\x1b[31m"} }, "tenant"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := valid
			tt.edit(&e)
			err := e.Validate()
			if f := As(err); !errors.Is(err, ErrInvalid) || len(f.Fields) != 1 || f.Fields[0].Name != tt.field {
				t.Fatalf("Validate = %v; want invalid %s", err, tt.field)
			}
		})
	}
	// The correlation id is tracing metadata: its consumers validate it
	// (logctx.ExtractEvent) and leave a bad one out, keeping the event.
	withBadCorrelationID := valid
	withBadCorrelationID.CorrelationID = "line\nbreak\x1b[31m"
	if err := withBadCorrelationID.Validate(); err != nil {
		t.Errorf("Validate(hostile correlationid) = %v, want nil", err)
	}
	_, err := DecodeEvent([]byte(`{"specversion":"1.0","id":"pay_1\n","source":"/s","type":"t"}`))
	if f := As(err); !errors.Is(err, ErrInvalid) || len(f.Fields) != 1 || f.Fields[0].Name != "id" {
		t.Errorf("DecodeEvent(id with a newline) = %v; want invalid id", err)
	}
}

// Invalid UTF-8 was let through: json.Unmarshal turned the bad bytes of an
// attribute into U+FFFD, so two events with distinct ids decoded to the same
// id and the second was dropped as a duplicate; in data (json.Valid does not
// check strings' UTF-8) the bytes stayed raw and were published as JSON that
// is not UTF-8.
func TestEventInvalidUTF8(t *testing.T) {
	e1, err1 := DecodeEvent([]byte("{\"specversion\":\"1.0\",\"id\":\"pay_\xff\",\"source\":\"/s\",\"type\":\"t\"}"))
	e2, err2 := DecodeEvent([]byte("{\"specversion\":\"1.0\",\"id\":\"pay_\xfe\",\"source\":\"/s\",\"type\":\"t\"}"))
	for _, err := range []error{err1, err2} {
		if f := As(err); !errors.Is(err, ErrMalformed) || len(f.Fields) != 1 || f.Fields[0].Name != "id" {
			t.Errorf("DecodeEvent(id not UTF-8) = %v; want malformed id (ids %q, %q)", err, e1.ID, e2.ID)
		}
	}
	_, err := DecodeEvent([]byte("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"data\":{\"name\":\"caf\xe9\"}}"))
	if f := As(err); err == nil || len(f.Fields) != 1 || f.Fields[0].Name != "data" {
		t.Errorf("DecodeEvent(data not UTF-8) = %v; want an error naming data", err)
	}
	e := Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", Data: json.RawMessage("{\"name\":\"caf\xe9\"}")}
	if err := e.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate(data not UTF-8) = %v; want invalid", err)
	}
	if b, err := json.Marshal(e); !errors.Is(err, ErrInvalid) {
		t.Errorf("Marshal(data not UTF-8) = %q, %v; want invalid", b, err)
	}
}

func TestEventMarshalErrors(t *testing.T) {
	_, err := json.Marshal(Event{Data: json.RawMessage(`{`)})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid data: %v", err)
	}
	_, err = json.Marshal(Event{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)})
	if f := As(err).Fields; !errors.Is(err, ErrInvalid) || len(f) != 1 || f[0].Reason != "must be a year from 0 to 9999" {
		t.Fatalf("bad time: %v", err)
	}
	_, err = json.Marshal(Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -24*3600))})
	if f := As(err).Fields; !errors.Is(err, ErrInvalid) || len(f) != 1 || f[0].Reason != "must have a zone offset under 24 hours" {
		t.Fatalf("time with a 24h offset: %v", err)
	}
	_, err = json.Marshal(Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("LMT", 19*60+32))})
	if f := As(err).Fields; !errors.Is(err, ErrInvalid) || len(f) != 1 || f[0].Reason != "must have a zone offset in whole minutes" {
		t.Fatalf("time with an offset in seconds: %v", err)
	}
	// A pointer marshals the same as a value.
	e := Event{ID: "1", Source: "s", SpecVersion: "1.0", Type: "t", Data: json.RawMessage(" { \"a\" : 1 } ")}
	b1, _ := json.Marshal(e)
	b2, _ := json.Marshal(&e)
	if string(b1) != string(b2) || string(b1) != `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":1}}` {
		t.Fatalf("%s / %s", b1, b2)
	}
}

func TestEventUnmarshalViaEncodingJSON(t *testing.T) {
	var batch []Event
	in := `[{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":1},{"specversion":"1.0","id":"2","source":"s","type":"t","sequence":2}]`
	if err := json.Unmarshal([]byte(in), &batch); err != nil || len(batch) != 2 || batch[1].Sequence != 2 {
		t.Fatalf("%v %+v", err, batch)
	}
	err := json.Unmarshal([]byte(`[{"id":"1","Bad":1}]`), &batch)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("strict syntax through json.Unmarshal: %v", err)
	}
}

func TestCountMembers(t *testing.T) {
	tests := map[string]int{
		`{}`:                              0,
		` { } `:                           0,
		`{"a":1}`:                         1,
		`{"a":{"b":1,"c":[1,2,3]},"d":2}`: 2,
		`{"a,b":"x,\"y,z","c":"\\"}`:      2,
		`{"a":[{"x":1},{"y":2}],"a":1}`:   2,
	}
	for in, want := range tests {
		if got := countMembers([]byte(in)); got != want {
			t.Errorf("countMembers(%s) = %d, want %d", in, got, want)
		}
	}
	// A member repeated under an escaped spelling is still repeated.
	_, err := DecodeEvent([]byte(`{"specversion":"1.0","id":"1","\u0069d":"2","source":"s","type":"t"}`))
	if f := As(err).Fields; !errors.Is(err, ErrMalformed) || len(f) != 1 || f[0].Name != "id" {
		t.Fatalf("escaped duplicate: %v %v", err, f)
	}
}

// An unpaired surrogate escape ("\ud800") is decoded by json.Unmarshal as
// U+FFFD, so ids "pay_\ud800" and "pay_\udc00" were one id and the second
// event was dropped as a duplicate; in data the escape stayed raw and every
// consumer decoding it met the same collapse.
func TestEventUnpairedSurrogateEscapes(t *testing.T) {
	for _, id := range []string{`pay_\ud800`, `pay_\udc00`, `pay_\ud800\ud800`} {
		e, err := DecodeEvent([]byte(`{"specversion":"1.0","id":"` + id + `","source":"/s","type":"t"}`))
		if f := As(err); !errors.Is(err, ErrMalformed) || len(f.Fields) != 1 || f.Fields[0].Name != "id" {
			t.Errorf("DecodeEvent(id %s) = %v (id %q); want malformed id", id, err, e.ID)
		}
	}
	_, err := DecodeEvent([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","tenant":"t\udfff"}`))
	if f := As(err); !errors.Is(err, ErrMalformed) || len(f.Fields) != 1 || f.Fields[0].Name != "tenant" {
		t.Errorf("DecodeEvent(extension with a lone surrogate) = %v; want malformed tenant", err)
	}
	_, err = DecodeEvent([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"name":"\ud800"}}`))
	if f := As(err); err == nil || len(f.Fields) != 1 || f.Fields[0].Name != "data" {
		t.Errorf("DecodeEvent(data with a lone surrogate) = %v; want an error naming data", err)
	}
	e := Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", Data: json.RawMessage(`{"name":"\udc00"}`)}
	if err := e.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate(data with a lone surrogate) = %v; want invalid", err)
	}
	if b, err := json.Marshal(e); !errors.Is(err, ErrInvalid) {
		t.Errorf("Marshal(data with a lone surrogate) = %q, %v; want invalid", b, err)
	}
	ok, err := DecodeEvent([]byte(`{"specversion":"1.0","id":"\ud834\udd1e","source":"/s","type":"t","data":{"n":"\ud834\udd1e \\ud800"}}`))
	if err != nil || ok.ID != "𝄞" {
		t.Errorf("DecodeEvent(paired surrogates) = %v, id %q", err, ok.ID)
	}
}
