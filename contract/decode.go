package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultJSONLimit is the body size limit DecodeJSON and DecodeRequest use
// when given a limit <= 0: 1 MiB.
const DefaultJSONLimit int64 = 1 << 20

// errBodyTooLarge is what readBody returns past the limit.
var errBodyTooLarge = errors.New("contract: body over limit")

// decodeState is what decodeJSON allocates, in one piece: room for a
// small body, a reader of it for json.Decoder, and the name check.
type decodeState struct {
	buf   [512]byte
	br    bytes.Reader
	names nameScanner
}

// readBody appends r to b up to its end, at most limit bytes, and fails
// with errBodyTooLarge as soon as r has more: unlike io.LimitReader, "too
// large" is an error, not a silent truncation. It returns what it read
// with the error of r other than io.EOF.
func readBody(r io.Reader, limit int64, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			more := max(int64(len(b)), 512)         // doubled: linear time
			more = min(more, limit-int64(len(b))+1) // but no room past limit+1 bytes
			b = slices.Grow(b, int(more))
		}
		p := b[len(b):cap(b)]
		if left := limit - int64(len(b)); left < int64(len(p)) { // left+1 cannot overflow here
			p = p[:left+1]
		}
		n, err := r.Read(p)
		b = b[:len(b)+n]
		switch {
		case int64(len(b)) > limit:
			return b, errBodyTooLarge
		case err == io.EOF:
			return b, nil
		case err != nil:
			return b, err
		}
	}
}

// invalidUTF8At returns the offset of the first byte of b that is not
// valid UTF-8, or -1. JSON text must be UTF-8 (RFC 8259 8.1):
// encoding/json would silently turn each bad byte in a string into
// U+FFFD, so two distinct ids would decode as one.
func invalidUTF8At(b []byte) int64 {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; ; {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return int64(i)
		}
		i += size
	}
}

// unpairedSurrogate returns the offset in the JSON text b of the first
// \u escape of an unpaired UTF-16 surrogate, or -1: a high surrogate
// (\ud800-\udbff) not followed at once by an escaped low one
// (\udc00-\udfff), or a low one alone. Such an escape is valid JSON syntax
// but stands for no character: encoding/json decodes each as U+FFFD, so
// "\ud800", "\udc00" and "\ufffd" would all be one value, as invalid UTF-8
// bytes would. A backslash can only start an escape (anywhere else it is a
// syntax error the decoder reports), so the scan need not know where
// strings begin and end.
func unpairedSurrogate(b []byte) int64 {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return -1
		}
		i += j
		switch r := getu4(b[i:]); {
		case r < 0:
			i += 2 // another escape, or a syntax error the decoder reports
		case r >= 0xdc00 && r <= 0xdfff:
			return int64(i)
		case r >= 0xd800 && r <= 0xdbff:
			if low := getu4(b[i+6:]); low < 0xdc00 || low > 0xdfff {
				return int64(i)
			}
			i += 12
		default:
			i += 6
		}
	}
	return -1
}

// getu4 returns the code of the \uXXXX escape b starts with, or -1.
func getu4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		d := hexDigit(c)
		if d < 0 {
			return -1
		}
		r = r<<4 | d
	}
	return r
}

func hexDigit(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// invalidUTF8 is the error of a body that is not valid UTF-8, or, when
// lone, that holds an escape of an unpaired surrogate.
func invalidUTF8(at int64, lone bool) *Error {
	if lone {
		return &Error{Kind: KindMalformed, Code: "json.utf8",
			Detail: "body has an unpaired UTF-16 surrogate escape at offset " + strconv.FormatInt(at, 10) + ": strings must be valid Unicode"}
	}
	return &Error{Kind: KindMalformed, Code: "json.utf8",
		Detail: "body is not valid UTF-8 at offset " + strconv.FormatInt(at, 10)}
}

// DecodeJSON decodes exactly one JSON value from r into v, strictly: the body
// must be at most limit bytes (limit <= 0 means DefaultJSONLimit), objects
// may only hold fields v knows, and nothing but white space may follow the
// value. Every failure is an *Error:
//
//	body over limit                 KindTooLarge (413)  code json.too_large
//	empty body                      KindMalformed (400) code json.empty
//	bad syntax, truncated body      KindMalformed (400) code json.syntax, names the offset
//	wrong type for a field          KindMalformed (400) code json.type, names the field and offset
//	wrong type for the body         KindMalformed (400) code json.type ([] or null for an object)
//	unknown field                   KindMalformed (400) code json.unknown_field, names the field
//	repeated member name            KindMalformed (400) code json.duplicate_field, names the member and offset
//	data after the value            KindMalformed (400) code json.trailing_data, names the offset
//	not valid UTF-8                 KindMalformed (400) code json.utf8, names the offset
//	unpaired surrogate (\ud800)     KindMalformed (400) code json.utf8, names the offset
//	value refused by its type       KindMalformed (400) code json.value (a time that is not RFC 3339)
//	reading r failed                the read error's Kind (timeout, canceled), else KindMalformed, code json.read
//	v is not a non-nil pointer      KindInternal (500)  code json.target
//
// Field errors (type, unknown field, repeated member) are also in Fields,
// so they are written as invalid-params. The details quote at most a short prefix of the
// client's input: a field name or syntax message up to 64 bytes, and the
// error text of the UnmarshalJSON or UnmarshalText method that refused a
// value (json.value) up to 128 bytes, cut at a rune, valid UTF-8, with
// control and other unprintable characters escaped (\n, \x1b), then "…".
// They never quote a value of the wrong type: it is described by its JSON
// type and, for a number, its length ("got number (16 characters)"), as a
// card number or PIN sent as a JSON number must reach neither the client
// nor the logs. An UnmarshalJSON method should still not quote what it
// refuses.
//
// A member name repeated in one object, at any depth (nested objects,
// objects in arrays, the object a json.RawMessage keeps), is refused, as
// RFC 7493 (I-JSON) and encoding/json/v2 do: encoding/json would keep the
// last value of {"amount":1,"amount":100000}, where a gateway, a signature
// check or an audit log in another language reads the first. Names are
// compared unescaped ("a" and "\u0061" are one name). In an object decoded
// into a struct, whose fields encoding/json matches ignoring case, two
// names it maps to the same field ("amount" and "AMOUNT", or "Amount") are
// a repetition too. A struct type with its own UnmarshalJSON counts as a
// struct: its method most often decodes it as a struct through a type
// without the method (type plain T; json.Unmarshal(b, (*plain)(t))).
// Names differing only in case stay distinct where they are distinct: the
// keys of a map, of an interface (map[string]any), of a type other than a
// struct with its own UnmarshalJSON, and the fields of a struct tagged "a"
// and "A". The keys of a map with integer keys are the integers
// encoding/json parses: "1", "01" and "+1" are one key. The keys of a map
// whose key type has an UnmarshalText method are compared as sent, not as
// that method reads them: a key type that normalizes its text (upper-cases
// a currency code, trims space) merges two spellings of one key, keeping
// the last value; use a string key type and normalize after decoding
// where that matters. The detail names the member (unescaped, clipped as
// above) and the offset of its repetition ("field \"AMOUNT\" at offset 18
// repeats a field whose name differs only in case"), never a value. The
// body is read whole (json.Decoder holds a value whole before decoding it
// anyway), then checked in one pass, with no allocation for a small body,
// in time and memory linear in the body: objects of many members are
// indexed, and nesting past encoding/json's limit of 10000 is refused by
// the decoder.
func DecodeJSON(r io.Reader, limit int64, v any) error {
	return decodeJSON(r, limit, v, true)
}

// decodeJSON is DecodeJSON, refusing unknown fields when strict.
func decodeJSON(r io.Reader, limit int64, v any, strict bool) error {
	if limit <= 0 {
		limit = DefaultJSONLimit
	}
	if r == nil {
		return &Error{Kind: KindMalformed, Code: "json.empty", Detail: "body is empty: a JSON value is required"}
	}
	// json.Decoder holds the whole value before decoding it anyway: the
	// body is read whole, then checked, then decoded.
	d := new(decodeState)
	body, err := readBody(r, limit, d.buf[:0])
	if err != nil {
		return decodeError(err, int64(len(body)), limit, true)
	}
	if at := invalidUTF8At(body); at >= 0 {
		return invalidUTF8(at, false)
	}
	if at := unpairedSurrogate(body); at >= 0 {
		return invalidUTF8(at, true)
	}
	d.names.init(v)
	if d.names.scan(body) != nil {
		return d.names.duplicateError()
	}
	d.br.Reset(body)
	dec := json.NewDecoder(&d.br)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return decodeError(err, int64(len(body)), limit, false)
	}
	if bytes.TrimLeft(body, jsonSpace)[0] == 'n' && refusesNull(v) {
		// encoding/json leaves the target as it was for null: a struct
		// contract would pass as its zero value, where [] or 0 is a 400.
		return &Error{Kind: KindMalformed, Code: "json.type",
			Detail: "body must be " + jsonTypeName(reflect.TypeOf(v)) + ", got null"}
	}
	if end := dec.InputOffset(); len(bytes.TrimLeft(body[end:], jsonSpace)) > 0 {
		return &Error{Kind: KindMalformed, Code: "json.trailing_data",
			Detail: "unexpected data after the JSON value at offset " + strconv.FormatInt(end, 10)}
	}
	return nil
}

// jsonSpace is JSON's white space.
const jsonSpace = " \t\n\r"

// refusesNull reports whether a top-level null is the wrong type for v, a
// non-nil pointer: it is, but for a target that can hold null (a pointer,
// an interface) or decides what null means (a json.Unmarshaler, which
// encoding/json gives the null: json.RawMessage keeps it).
func refusesNull(v any) bool {
	t := reflect.TypeOf(v).Elem()
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		return false
	}
	return !reflect.PointerTo(t).Implements(jsonUnmarshaler)
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

func isMaxBytes(err error) bool {
	var me *http.MaxBytesError
	return errors.As(err, &me)
}

// tooLarge is the error of a body over limit, or over the smaller limit of
// an http.MaxBytesReader that cause comes from: the detail names the limit
// the client actually hit.
func tooLarge(limit int64, cause error) *Error {
	var me *http.MaxBytesError
	if errors.As(cause, &me) && me.Limit < limit {
		limit = me.Limit
	}
	return &Error{Kind: KindTooLarge, Code: "json.too_large",
		Detail: "body exceeds the limit of " + strconv.FormatInt(limit, 10) + " bytes", Cause: cause}
}

func readError(err error) *Error {
	k := classify(err)
	if k == KindInternal {
		k = KindMalformed
	}
	return &Error{Kind: k, Code: "json.read", Detail: "could not read the body", Cause: err}
}

// decodeError turns an error of json.Decoder.Decode, or of reading the
// body when reading, into an *Error; read is the length of the body read.
func decodeError(err error, read, limit int64, reading bool) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
		ie *json.InvalidUnmarshalError
		ce *Error
	)
	switch {
	case errors.Is(err, errBodyTooLarge) || isMaxBytes(err):
		return tooLarge(limit, err)
	case err == io.EOF:
		return &Error{Kind: KindMalformed, Code: "json.empty", Detail: "body is empty: a JSON value is required"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Kind: KindMalformed, Code: "json.syntax",
			Detail: "unexpected end of JSON input at offset " + strconv.FormatInt(read, 10)}
	case errors.As(err, &se):
		return &Error{Kind: KindMalformed, Code: "json.syntax",
			Detail: "invalid JSON at offset " + strconv.FormatInt(se.Offset, 10) + ": " + clip(strings.TrimPrefix(se.Error(), "json: "))}
	case errors.As(err, &te):
		want := jsonTypeName(te.Type)
		got := gotValue(te.Value)
		if te.Field == "" {
			return &Error{Kind: KindMalformed, Code: "json.type",
				Detail: "body must be " + want + ", got " + got}
		}
		name := clip(te.Field)
		return &Error{Kind: KindMalformed, Code: "json.type",
			Detail: "field " + strconv.Quote(name) + " must be " + want + ", got " + got + " at offset " + strconv.FormatInt(te.Offset, 10),
			Fields: []FieldError{{Name: name, Reason: "must be " + want}}}
	case errors.As(err, &ie):
		return &Error{Kind: KindInternal, Code: "json.target", Detail: "decode target must be a non-nil pointer", Cause: err}
	case errors.As(err, &ce):
		return ce
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uErr := strconv.Unquote(name); uErr == nil {
			name = unq
		}
		name = clip(name)
		return &Error{Kind: KindMalformed, Code: "json.unknown_field",
			Detail: "unknown field " + strconv.Quote(name),
			Fields: []FieldError{{Name: name, Reason: "is not a known field"}}}
	}
	if reading {
		return readError(err)
	}
	// An UnmarshalJSON or UnmarshalText method rejected a value (a time that
	// is not RFC 3339, for example); its text helps the client, bounded,
	// without the number literals encoding/json's own errors quote.
	return &Error{Kind: KindMalformed, Code: "json.value", Detail: "invalid value: " + quoteShort(scrubJSONLiterals(err.Error()), maxValueText)}
}

// maxValueText is the most bytes of an UnmarshalJSON or UnmarshalText
// method's error text a json.value detail quotes, escapes included.
const maxValueText = 128

// quoteShort returns at most max bytes of s, then "…" when s was longer,
// cut at a rune: invalid UTF-8 becomes U+FFFD and every character that is
// not printable (control characters, U+202E and other format characters)
// is escaped as Go quotes it (\n, \x1b, \u202e), so the text stays on one line
// and means what it shows.
func quoteShort(s string, max int) string {
	var b strings.Builder
	var buf [utf8.UTFMax]byte
	for i, r := range s {
		var esc []byte
		switch {
		case r == utf8.RuneError:
			esc = utf8.AppendRune(buf[:0], r)
		case !strconv.IsPrint(r):
			esc = strconv.AppendQuoteRune(buf[:0], r)
			esc = esc[1 : len(esc)-1] // without the single quotes
		default:
			esc = []byte(s[i : i+utf8.RuneLen(r)])
		}
		if b.Len()+len(esc) > max {
			b.WriteString("…")
			break
		}
		b.Write(esc)
	}
	return b.String()
}

// gotValue describes the JSON value of a type error by its JSON type alone:
// encoding/json's Value quotes a number that does not fit its Go type
// ("number 4111111111111111"), which may be a card number, a PIN or an
// account number and must reach neither the client nor the logs. Only its
// length is kept, a hint for a client that sent too many digits.
func gotValue(v string) string {
	typ, lit, hasLit := strings.Cut(v, " ")
	switch typ {
	case "string", "number", "bool", "array", "object", "null":
	default:
		return "a value of another type"
	}
	if hasLit && typ == "number" {
		return "number (" + strconv.Itoa(len(lit)) + " characters)"
	}
	return typ
}

// scrubJSONLiterals removes from the text of an error the literals
// encoding/json's errors quote, keeping their length: the number of a type
// error ("cannot unmarshal number 4111… into"), and the Go-quoted string
// after "trying to unmarshal " (a json.Number's "invalid number literal", a
// ",string" field's "invalid use of ,string struct tag"), which may be a
// card number that only failed to parse. It is applied to an UnmarshalJSON
// method's error that copied such an error's text instead of wrapping it.
func scrubJSONLiterals(s string) string {
	s = scrubAfter(s, "trying to unmarshal ", func(rest string) (int, string) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return 0, "" // not a quoted literal ("unquoted value into int")
		}
		n := len(q)
		if u, err := strconv.Unquote(q); err == nil {
			n = len(u)
		}
		return len(q), "a string (" + strconv.Itoa(n) + " characters)"
	})
	return scrubAfter(s, "unmarshal number", func(rest string) (int, string) {
		// " 4111… into Go …": the literal ends where encoding/json's text
		// goes on (a quoted ",string" literal may hold spaces), else at a
		// space.
		rest, ok := strings.CutPrefix(rest, " ")
		if !ok {
			return 0, ""
		}
		j := strings.Index(rest, " into Go ")
		if j < 0 {
			j = strings.IndexByte(rest, ' ')
		}
		if j < 0 {
			j = len(rest)
		}
		if j == 0 {
			return 1, "" // no literal: the space is the text's own
		}
		return 1 + j, " (" + strconv.Itoa(j) + " characters)"
	})
}

// scrubAfter replaces, after each occurrence of marker in s, the literal
// lit finds at the start of the rest: lit returns how many bytes it spans
// and their replacement (0 when there is none there).
func scrubAfter(s, marker string, lit func(rest string) (int, string)) string {
	if !strings.Contains(s, marker) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(marker)])
		s = s[i+len(marker):]
		n, repl := lit(s)
		b.WriteString(repl)
		s = s[n:]
	}
}

// clip keeps error details short and printable whatever the input held.
func clip(s string) string {
	const max = 64
	s = cleanRemoteText(s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// jsonTypeName names what JSON a Go type wants, in the client's terms.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	}
	return "a JSON value"
}

// DecodeRequest decodes r's body with DecodeJSON after checking that the
// Content-Type is application/json or another +json type (with no charset
// but UTF-8): a missing or other type is KindMalformed (400) with code
// request.content_type. A declared Content-Length over limit fails at once
// with KindTooLarge, before reading.
func DecodeRequest(r *http.Request, limit int64, v any) error {
	if limit <= 0 {
		limit = DefaultJSONLimit
	}
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if r.ContentLength > limit {
		return tooLarge(limit, nil)
	}
	if r.Body == nil {
		return &Error{Kind: KindMalformed, Code: "json.empty", Detail: "body is empty: a JSON value is required"}
	}
	return DecodeJSON(r.Body, limit, v)
}

func checkJSONContentType(ct string) error {
	bad := &Error{Kind: KindMalformed, Code: "request.content_type",
		Detail: "Content-Type must be application/json",
		Fields: []FieldError{{Name: "Content-Type", Reason: "must be application/json"}}}
	if ct == "" {
		return bad
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return bad
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		bad.Detail = "Content-Type charset must be utf-8"
		bad.Fields[0].Reason = "charset must be utf-8"
		return bad
	}
	return nil
}
