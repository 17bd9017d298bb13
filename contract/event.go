package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SpecVersion is the CloudEvents specification version this envelope follows.
const SpecVersion = "1.0"

// Event is a CloudEvents 1.0 compatible envelope (JSON event format) with a
// per-subject Sequence extension used by the ordering package.
// (Source, ID) is the event's identity for deduplication.
//
// The JSON encoding is the CloudEvents JSON format: attributes are top-level
// members, Data is the "data" member as raw JSON, Sequence and
// CorrelationID are the "sequence" and "correlationid" extension
// attributes, and any other extension attribute lives in Extensions. Decode
// with DecodeEvent (strict, validated) or json.Unmarshal (strict syntax,
// not validated); encode with json.Marshal.
type Event struct {
	ID              string          `json:"id"`                        // required; unique within Source
	Source          string          `json:"source"`                    // required URI-reference, e.g. "/payments" or "urn:psp:acme"
	SpecVersion     string          `json:"specversion"`               // required; must be SpecVersion ("1.0")
	Type            string          `json:"type"`                      // required, e.g. "com.example.payment.created.v1"; a breaking change changes it
	Time            time.Time       `json:"time,omitzero"`             // when the occurrence happened; RFC 3339 in JSON; zero means absent
	Subject         string          `json:"subject,omitempty"`         // the entity the event is about, e.g. "payment/pay_123"; the ordering key
	DataContentType string          `json:"datacontenttype,omitempty"` // media type of Data; DecodeEvent sets "application/json" when Data is present and this is absent
	DataSchema      string          `json:"dataschema,omitempty"`      // absolute URI of Data's schema
	Sequence        uint64          `json:"sequence,omitempty"`        // extension: per-Subject, increasing from 1; 0 means absent
	CorrelationID   string          `json:"correlationid,omitempty"`   // extension: correlation id of the request that caused the event
	Data            json.RawMessage `json:"data,omitempty"`            // the payload as raw JSON; empty means absent
	// Extensions holds every other extension attribute, by name. Names must
	// match [a-z0-9]{1,20} and not be a name above; values are strings,
	// booleans or integers within the CloudEvents Integer range (int32).
	// Decoded integers are int64.
	Extensions map[string]any `json:"-"`
}

// DedupKey returns the event's deduplication identity, unambiguous for any
// bytes in Source and ID.
func (e *Event) DedupKey() string {
	return strconv.Quote(e.Source) + "/" + strconv.Quote(e.ID)
}

// maxAttrName is the longest attribute name CloudEvents allows for portable
// events.
const maxAttrName = 20

// validAttrName reports whether name matches [a-z0-9]{1,20}.
func validAttrName(name string) bool {
	if name == "" || len(name) > maxAttrName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isEventMember reports whether name is a member Event types itself.
func isEventMember(name string) bool {
	switch name {
	case "id", "source", "specversion", "type", "time", "subject", "datacontenttype",
		"dataschema", "sequence", "correlationid", "data", "data_base64":
		return true
	}
	return false
}

// isRFC3339 reports whether s has the syntax of an RFC 3339 date-time:
// "2006-01-02T15:04:05", an optional fraction of one or more digits after a
// '.', then 'Z' or an offset "±hh:mm" with hh up to 23 and mm up to 59.
// time.Parse checks the ranges of the date and time fields, but accepts
// more than RFC 3339: a one-digit hour ("T1:02:03Z"), a comma before the
// fraction ("03,5Z"), an offset minute of 60 ("+00:60") and offset hours of
// 24 ("+24:00"), which json.Marshal then refuses. The lower-case 't' and
// 'z' RFC 3339 allows are refused, as time.Parse does.
func isRFC3339(s string) bool {
	const layout = "0000-00-00T00:00:00" // '0' stands for any digit
	if len(s) <= len(layout) {
		return false
	}
	for i := range len(layout) {
		if s[i] != layout[i] && (layout[i] != '0' || !isDigits(s[i:i+1])) {
			return false
		}
	}
	rest := s[len(layout):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigits(rest[n:n+1]) {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	return len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
		isDigits(rest[1:3]) && rest[1:3] <= "23" && isDigits(rest[4:6]) && rest[4:6] <= "59"
}

// DecodeEvent decodes one event in the CloudEvents JSON format, strictly,
// and validates it (see Event.Validate). Syntax problems are KindMalformed
// (code event.malformed): not a single JSON object, a repeated attribute, an
// attribute that is not valid UTF-8, holds a \u escape of an unpaired
// surrogate ("\ud800") or is of the wrong JSON type, a time that is not an RFC 3339
// date-time ("2006-01-02T15:04:05.999Z" or with an offset "+07:00" under
// 24 hours; the looser forms time.Parse also takes are refused), a sequence
// that is not an unsigned integer (a JSON number or a decimal string), an
// extension name outside [a-z0-9]{1,20} or an extension value that is not a
// string, boolean or int32 integer, data_base64 (binary data is not
// supported: data is JSON). Missing or wrong required attributes are
// KindInvalid (code event.invalid). Every error lists the offending
// attributes in Fields. A null attribute counts as absent. When data is
// present and datacontenttype absent, DataContentType is set to
// "application/json", as the JSON format implies.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if err := e.UnmarshalJSON(b); err != nil {
		return Event{}, err
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// UnmarshalJSON decodes the CloudEvents JSON format with the syntax rules of
// DecodeEvent, without Validate's checks of the attribute values.
func (e *Event) UnmarshalJSON(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return eventMalformed("event is empty", nil)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return eventMalformed("invalid JSON at offset "+strconv.FormatInt(se.Offset, 10)+": "+clip(strings.TrimPrefix(se.Error(), "json: ")), nil)
		}
		return eventMalformed("event must be a JSON object", nil)
	}
	if members == nil { // null
		return eventMalformed("event must be a JSON object", nil)
	}
	if countMembers(b) != len(members) {
		return repeatedMembers(b)
	}
	var (
		ev Event
		v  Validator
	)
	// A fixed order keeps the reported field errors stable.
	for _, name := range [...]string{"specversion", "id", "source", "type", "subject", "time",
		"datacontenttype", "dataschema", "sequence", "correlationid", "data", "data_base64"} {
		if raw, ok := members[name]; ok {
			ev.setAttr(&v, name, raw)
		}
	}
	ext := make([]string, 0, len(members))
	for name := range members {
		if !isEventMember(name) {
			ext = append(ext, name)
		}
	}
	slices.Sort(ext)
	for _, name := range ext {
		ev.setAttr(&v, name, members[name])
	}
	if err := v.Err(); err != nil {
		ce := err.(*Error)
		ce.Kind, ce.Code, ce.Detail = KindMalformed, "event.malformed", "event is malformed: "+ce.Detail
		return ce
	}
	if len(ev.Data) > 0 && ev.DataContentType == "" {
		ev.DataContentType = "application/json"
	}
	*e = ev
	return nil
}

func eventMalformed(detail string, cause error) error {
	return &Error{Kind: KindMalformed, Code: "event.malformed", Detail: detail, Cause: cause}
}

// countMembers counts the members of the valid JSON object b, duplicates
// included: the commas at depth one, plus one if there is any member.
func countMembers(b []byte) int {
	depth, n := 0, 0
	inString, escaped, nonEmpty := false, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			if depth == 1 {
				nonEmpty = true
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				n++
			}
		}
	}
	if nonEmpty {
		n++
	}
	return n
}

// repeatedMembers names the members of the valid JSON object b that appear
// more than once. It is the slow path, taken only for such input.
func repeatedMembers(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	_, _ = dec.Token() // '{'
	var v Validator
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			break
		}
		if seen[name] {
			v.Add(clip(name), "is repeated")
		}
		seen[name] = true
	}
	err := v.Err()
	if err == nil {
		return eventMalformed("event has repeated attributes", nil)
	}
	ce := err.(*Error)
	ce.Kind, ce.Code, ce.Detail = KindMalformed, "event.malformed", "event is malformed: "+ce.Detail
	return ce
}

// surrogateReason is the field error of a value holding a \u escape of an
// unpaired UTF-16 surrogate ("\ud800"), which stands for no character.
const surrogateReason = "must not contain an unpaired surrogate escape (\\ud800-\\udfff)"

// setAttr stores one decoded attribute, recording what is wrong in v.
func (e *Event) setAttr(v *Validator, name string, raw json.RawMessage) {
	if string(raw) == "null" {
		return
	}
	if !utf8.Valid(raw) {
		// json.Unmarshal would replace the bad bytes with U+FFFD, making
		// distinct ids one (a false duplicate), and data keeps them raw,
		// where JSON must be UTF-8.
		v.Add(name, "must be valid UTF-8")
		return
	}
	if unpairedSurrogate(raw) >= 0 {
		// json.Unmarshal decodes every such escape as U+FFFD: the same
		// collapse of distinct ids, through escapes.
		v.Add(name, surrogateReason)
		return
	}
	str := func(dst *string) {
		if json.Unmarshal(raw, dst) != nil {
			v.Add(name, "must be a string")
		}
	}
	switch name {
	case "id":
		str(&e.ID)
	case "source":
		str(&e.Source)
	case "specversion":
		str(&e.SpecVersion)
	case "type":
		str(&e.Type)
	case "subject":
		str(&e.Subject)
	case "datacontenttype":
		str(&e.DataContentType)
	case "dataschema":
		str(&e.DataSchema)
	case "correlationid":
		str(&e.CorrelationID)
	case "time":
		var s string
		if json.Unmarshal(raw, &s) != nil {
			v.Add(name, "must be a string")
			return
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err == nil {
			// What decodes must encode again (isRFC3339 implies it).
			_, err = t.MarshalText()
		}
		if err != nil || !isRFC3339(s) {
			v.Add(name, "must be an RFC 3339 timestamp")
			return
		}
		e.Time = t
	case "sequence":
		digits := string(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			digits = s
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || !isDigits(digits) {
			v.Add(name, "must be an unsigned integer")
			return
		}
		e.Sequence = n
	case "data":
		e.Data = raw
	case "data_base64":
		v.Add(name, "is not supported: data must be JSON")
	default:
		if !validAttrName(name) {
			v.Add(clip(name), "is not a valid attribute name: [a-z0-9]{1,20}")
			return
		}
		val, ok := decodeExtension(raw)
		if !ok {
			v.Add(name, "must be a string, a boolean or an integer")
			return
		}
		if e.Extensions == nil {
			e.Extensions = make(map[string]any)
		}
		e.Extensions[name] = val
	}
}

// decodeExtension decodes a CloudEvents extension value: a string, a
// boolean or an integer in the int32 range (as int64).
func decodeExtension(raw json.RawMessage) (any, bool) {
	switch raw[0] {
	case '"':
		var s string
		return s, json.Unmarshal(raw, &s) == nil
	case 't', 'f':
		var b bool
		return b, json.Unmarshal(raw, &b) == nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
		return nil, false
	}
	return n, true
}

// extensionValue checks a value for an extension attribute and returns its
// JSON form.
func extensionValue(v any) (json.RawMessage, bool) {
	var n int64
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) { // json.Marshal would replace it: another value
			return nil, false
		}
		b, err := json.Marshal(x)
		return b, err == nil
	case bool:
		b, err := json.Marshal(x)
		return b, err == nil
	case int:
		n = int64(x)
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint32:
		if x > math.MaxInt32 {
			return nil, false
		}
		n = int64(x)
	default:
		return nil, false
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return nil, false
	}
	return strconv.AppendInt(nil, n, 10), true
}

// DecodeData decodes the event's Data into v as a consumer should read
// a payload another service wrote: a member v does not know is ignored (a
// producer may add fields before every consumer knows them: refusing them
// would dead-letter every event from the first producer upgraded), but
// everything else DecodeJSON refuses is refused, with its codes: a member
// name repeated in one object ({"amount":1,"amount":900}, read as 900 by
// json.Unmarshal and as 1 by a reader keeping the first), a value of the
// wrong type, invalid UTF-8, data after the value. An event without data
// is refused with code json.empty. The errors are of KindMalformed, never
// retryable: the same payload fails on every delivery.
func (e *Event) DecodeData(v any) error {
	if len(e.Data) == 0 {
		return &Error{Kind: KindMalformed, Code: "json.empty", Detail: "event has no data: a JSON value is required"}
	}
	return decodeJSON(bytes.NewReader(e.Data), int64(len(e.Data)), v, false)
}

// Validate checks the attribute values of e against CloudEvents 1.0 and
// returns nil or an *Error of KindInvalid (code event.invalid) listing every
// problem in Fields: id, source and type are required, specversion must be
// "1.0", every string (attribute or extension value) must be valid UTF-8
// without control characters or noncharacters (correlationid need only be
// valid UTF-8: see logctx.ExtractEvent), source must be a URI-reference, dataschema an absolute URI,
// datacontenttype a media type, time a year from 0 to 9999 with a zone
// offset under 24 hours (what RFC 3339 can write), data valid JSON in UTF-8
// (json.Valid lets invalid UTF-8 inside strings through) without a \u
// escape of an unpaired surrogate (decoded as U+FFFD, whatever it was), and
// every extension a valid name with a string, boolean or int32 value.
func (e *Event) Validate() error {
	var v Validator
	for _, a := range [...]struct{ name, val string }{{"id", e.ID}, {"source", e.Source}, {"specversion", e.SpecVersion},
		{"type", e.Type}, {"subject", e.Subject}, {"datacontenttype", e.DataContentType}, {"dataschema", e.DataSchema}, {"correlationid", e.CorrelationID}} {
		reason := stringReason(a.val)
		if a.name == "correlationid" && utf8.ValidString(a.val) {
			// Tracing metadata, not the event: consumers validate it
			// themselves (logctx.ExtractEvent) and leave a bad one out
			// rather than reject the event for it.
			reason = ""
		}
		if reason != "" {
			v.Add(a.name, reason)
		}
	}
	v.Required("id", e.ID)
	if v.Required("source", e.Source) {
		_, err := url.Parse(e.Source)
		v.Check(err == nil && uriChars(e.Source), "source", "must be a URI-reference")
	}
	if v.Required("specversion", e.SpecVersion) {
		v.Check(e.SpecVersion == SpecVersion, "specversion", `must be "1.0"`)
	}
	v.Required("type", e.Type)
	if !e.Time.IsZero() {
		reason := timeReason(e.Time)
		v.Check(reason == "", "time", reason)
	}
	if e.DataSchema != "" {
		u, err := url.Parse(e.DataSchema)
		v.Check(err == nil && u.IsAbs() && uriChars(e.DataSchema), "dataschema", "must be an absolute URI")
	}
	if e.DataContentType != "" {
		mt, _, err := mime.ParseMediaType(e.DataContentType)
		v.Check(err == nil && strings.Count(mt, "/") == 1 && !strings.HasPrefix(mt, "/") && !strings.HasSuffix(mt, "/"),
			"datacontenttype", "must be a media type (type/subtype)")
	}
	if len(e.Data) > 0 {
		if v.Check(json.Valid(e.Data) && utf8.Valid(e.Data), "data", "must be valid JSON in UTF-8") {
			v.Check(unpairedSurrogate(e.Data) < 0, "data", surrogateReason)
		}
	}
	names := make([]string, 0, len(e.Extensions))
	for name := range e.Extensions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !validAttrName(name) || isEventMember(name) {
			v.Add(clip(name), "is not a valid extension attribute name: [a-z0-9]{1,20}, not a standard attribute")
			continue
		}
		_, ok := extensionValue(e.Extensions[name])
		if v.Check(ok, name, "must be a UTF-8 string, a boolean or an int32 integer") {
			if s, isString := e.Extensions[name].(string); isString {
				reason := stringReason(s)
				v.Check(reason == "", name, reason)
			}
		}
	}
	if err := v.Err(); err != nil {
		ce := err.(*Error)
		ce.Code, ce.Detail = "event.invalid", "event is invalid: "+ce.Detail
		return ce
	}
	return nil
}

// stringReason returns why s is not a CloudEvents String, or "" when it
// is one: valid UTF-8 without the characters CloudEvents 1.0 disallows,
// control characters (U+0000-U+001F, U+007F-U+009F) and noncharacters
// (U+FDD0-U+FDEF and the last two code points of every plane). Surrogates
// cannot appear in valid UTF-8.
func stringReason(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return "must not contain control characters or noncharacters"
		}
	}
	return ""
}

// uriChars reports whether s holds only the characters RFC 3986 allows in
// a URI-reference (unreserved, reserved and '%').
func uriChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"<>\\^`{|}", c) >= 0 {
			return false
		}
	}
	return true
}

// timeReason returns why t cannot be written in RFC 3339, or "" when it
// can.
func timeReason(t time.Time) string {
	if y := t.Year(); y < 0 || y > 9999 {
		return "must be a year from 0 to 9999"
	}
	if _, err := t.MarshalText(); err != nil {
		return "must have a zone offset under 24 hours"
	}
	if _, off := t.Zone(); off%60 != 0 {
		return "must have a zone offset in whole minutes"
	}
	return ""
}

// MarshalJSON writes the CloudEvents JSON format: specversion, id, source,
// type, the optional attributes that are set, the extensions sorted by
// name, then data. It fails on what cannot be encoded (an extension with a
// bad name or value, a time outside years 0-9999 or with a zone offset of
// 24 hours or more, data that is not valid JSON in UTF-8 or holds an
// unpaired surrogate escape); it does not
// require the required attributes: call Validate.
func (e Event) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	write := func(name string, val []byte) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteByte('"')
		b.WriteString(name) // attribute names are [a-z0-9_]: no escaping needed
		b.WriteString(`":`)
		b.Write(val)
	}
	badUTF8 := ""
	str := func(name, s string, always bool) {
		if !utf8.ValidString(s) && badUTF8 == "" {
			badUTF8 = name // json.Marshal would replace it: another event after a round trip
		}
		if s != "" || always {
			val, _ := json.Marshal(s)
			write(name, val)
		}
	}
	str("specversion", e.SpecVersion, true)
	str("id", e.ID, true)
	str("source", e.Source, true)
	str("type", e.Type, true)
	str("subject", e.Subject, false)
	if !e.Time.IsZero() {
		val, err := json.Marshal(e.Time)
		if err == nil && timeReason(e.Time) != "" {
			err = errors.New(timeReason(e.Time))
		}
		if err != nil {
			return nil, &Error{Kind: KindInvalid, Code: "event.invalid", Detail: "time cannot be encoded", Fields: []FieldError{{Name: "time", Reason: timeReason(e.Time)}}, Cause: err}
		}
		write("time", val)
	}
	str("datacontenttype", e.DataContentType, false)
	str("dataschema", e.DataSchema, false)
	if e.Sequence > 0 {
		write("sequence", strconv.AppendUint(nil, e.Sequence, 10))
	}
	str("correlationid", e.CorrelationID, false)
	if badUTF8 != "" {
		return nil, &Error{Kind: KindInvalid, Code: "event.invalid", Detail: "attribute is not valid UTF-8",
			Fields: []FieldError{{Name: badUTF8, Reason: "must be valid UTF-8"}}}
	}
	names := make([]string, 0, len(e.Extensions))
	for name := range e.Extensions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		val, ok := extensionValue(e.Extensions[name])
		if !ok || !validAttrName(name) || isEventMember(name) {
			return nil, &Error{Kind: KindInvalid, Code: "event.invalid", Detail: "extension attribute cannot be encoded",
				Fields: []FieldError{{Name: clip(name), Reason: "must be named [a-z0-9]{1,20} with a UTF-8 string, boolean or int32 value"}}}
		}
		write(name, val)
	}
	if len(e.Data) > 0 {
		if !json.Valid(e.Data) || !utf8.Valid(e.Data) {
			return nil, &Error{Kind: KindInvalid, Code: "event.invalid", Detail: "data is not valid JSON in UTF-8",
				Fields: []FieldError{{Name: "data", Reason: "must be valid JSON in UTF-8"}}}
		}
		if unpairedSurrogate(e.Data) >= 0 {
			return nil, &Error{Kind: KindInvalid, Code: "event.invalid", Detail: "data holds an unpaired surrogate escape",
				Fields: []FieldError{{Name: "data", Reason: surrogateReason}}}
		}
		var c bytes.Buffer
		_ = json.Compact(&c, e.Data)
		write("data", c.Bytes())
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
