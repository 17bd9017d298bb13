package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultJSONLimit is the body size limit DecodeJSON and DecodeRequest use
// when given a limit <= 0: 1 MiB.
const DefaultJSONLimit int64 = 1 << 20

// errBodyTooLarge is what limitedReader returns past the limit.
var errBodyTooLarge = errors.New("contract: body over limit")

// limitedReader reads at most limit bytes and fails with errBodyTooLarge as
// soon as the source has more: unlike io.LimitReader, "too large" is an
// error, not a silent truncation.
type limitedReader struct {
	r         io.Reader
	remaining int64 // bytes still allowed; -1 once over
	read      int64
	err       error // the source's last error other than io.EOF
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.remaining < 0 {
		return 0, errBodyTooLarge
	}
	if l.remaining < int64(len(p)) { // remaining+1 cannot overflow here
		p = p[:l.remaining+1]
	}
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		l.err = err
	}
	l.remaining -= int64(n)
	l.read += int64(n)
	if l.remaining < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

// errInvalidUTF8 is what utf8Reader returns from the first invalid byte on.
var errInvalidUTF8 = errors.New("contract: body is not valid UTF-8")

// utf8Reader passes r through while checking that it is valid UTF-8, as JSON
// text must be (RFC 8259 8.1): encoding/json would silently turn each bad
// byte in a string into U+FFFD, so two distinct ids would decode as one. A
// rune split across reads is checked once the next read completes it.
type utf8Reader struct {
	r     io.Reader
	off   int64             // offset of the first byte not yet checked
	tail  [utf8.UTFMax]byte // the start of a rune the last read split
	nt    int               // bytes in tail
	bad   int64             // offset of the first invalid byte; -1 while none
	esc   escapeScanner     // finds \u escapes of unpaired surrogates
	lone  bool              // bad is the offset of such an escape
	first byte              // the first byte passed that is not JSON white space: the top-level value's
	names nameScanner       // finds member names repeated in one object
}

// Read passes the bytes of u.r through once they are known valid UTF-8
// (but for a split rune, checked by the next read) without an escape of
// an unpaired surrogate.
func (u *utf8Reader) Read(p []byte) (int, error) {
	n, err := u.read(p)
	if n > 0 {
		if at := u.esc.scan(p[:n]); at >= 0 {
			u.lone = true
			return 0, u.fail(at)
		}
		if u.names.scan(p[:n]) != nil {
			return 0, errDuplicateName
		}
		if u.first == 0 {
			if i := bytes.IndexFunc(p[:n], func(r rune) bool { return r != ' ' && r != '\t' && r != '\n' && r != '\r' }); i >= 0 {
				u.first = p[i]
			}
		}
	}
	return n, err
}

func (u *utf8Reader) read(p []byte) (int, error) {
	if u.bad >= 0 {
		return 0, errInvalidUTF8
	}
	n, err := u.r.Read(p)
	data := p[:n]
	final := err == io.EOF
	if u.nt > 0 {
		// Complete the rune the last read split, then check it.
		k := copy(u.tail[u.nt:], data)
		if !utf8.FullRune(u.tail[:u.nt+k]) {
			if final {
				return 0, u.fail(u.off)
			}
			u.nt += k
			return n, err
		}
		r, size := utf8.DecodeRune(u.tail[:u.nt+k])
		if r == utf8.RuneError && size == 1 {
			return 0, u.fail(u.off)
		}
		data = data[size-u.nt:]
		u.off += int64(size)
		u.nt = 0
	}
	end := len(data)
	if !final {
		// The last bytes may start a rune the next read completes.
		for i := end - 1; i >= 0 && i > end-utf8.UTFMax; i-- {
			if utf8.RuneStart(data[i]) {
				if !utf8.FullRune(data[i:]) {
					end = i
				}
				break
			}
		}
	}
	if !utf8.Valid(data[:end]) {
		i := 0
		for {
			r, size := utf8.DecodeRune(data[i:end])
			if r == utf8.RuneError && size == 1 {
				return 0, u.fail(u.off + int64(i))
			}
			i += size
		}
	}
	u.nt = copy(u.tail[:], data[end:])
	u.off += int64(end)
	return n, err
}

func (u *utf8Reader) fail(at int64) error {
	u.bad = at
	return errInvalidUTF8
}

// escapeScanner finds the \u escapes of unpaired UTF-16 surrogates in JSON
// text fed to it piece by piece: a high surrogate (\ud800-\udbff) not
// followed at once by an escaped low one (\udc00-\udfff), or a low one
// alone. Such an escape is valid JSON syntax but stands for no character:
// encoding/json decodes each as U+FFFD, so "\ud800", "\udc00" and "\ufffd"
// would all be one value, as invalid UTF-8 bytes would. A backslash can only
// start an escape (anywhere else it is a syntax error the decoder reports),
// so the scanner need not know where strings begin and end.
type escapeScanner struct {
	off    int64 // offset of the next byte fed
	state  uint8 // escPlain, escBackslash or escHex
	digits int   // hex digits of the \u escape read so far
	code   rune  // their value
	high   bool  // the last escape was a high surrogate: a low one must follow
	escAt  int64 // offset of the backslash of the current escape
	highAt int64 // offset of the pending high surrogate's escape
}

const (
	escPlain uint8 = iota
	escBackslash
	escHex
)

// scan feeds p to s and returns the offset of the first unpaired surrogate
// escape, or -1.
func (s *escapeScanner) scan(p []byte) int64 {
	base := s.off
	s.off += int64(len(p))
	for i := 0; i < len(p); {
		switch s.state {
		case escPlain:
			if s.high {
				if p[i] != '\\' {
					return s.highAt
				}
			} else {
				j := bytes.IndexByte(p[i:], '\\')
				if j < 0 {
					return -1
				}
				i += j
			}
			s.escAt = base + int64(i)
			s.state = escBackslash
			i++
		case escBackslash:
			if p[i] != 'u' {
				if s.high {
					return s.highAt
				}
				s.state = escPlain
				i++
				continue
			}
			s.state, s.digits, s.code = escHex, 0, 0
			i++
		case escHex:
			d := hexDigit(p[i])
			if d < 0 { // a syntax error: the decoder reports it
				s.state, s.high = escPlain, false
				continue
			}
			s.code = s.code<<4 | d
			s.digits++
			i++
			if s.digits < 4 {
				continue
			}
			s.state = escPlain
			switch {
			case s.high:
				if s.code < 0xdc00 || s.code > 0xdfff {
					return s.highAt
				}
				s.high = false
			case s.code >= 0xd800 && s.code <= 0xdbff:
				s.high, s.highAt = true, s.escAt
			case s.code >= 0xdc00 && s.code <= 0xdfff:
				return s.escAt
			}
		}
	}
	return -1
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

// unpairedSurrogate returns the offset in the JSON text b of the first
// escape of an unpaired surrogate, or -1.
func unpairedSurrogate(b []byte) int64 {
	var s escapeScanner
	if at := s.scan(b); at >= 0 || !s.high {
		return at
	}
	return s.highAt // b ends right after a high surrogate
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
// check is one pass over the bytes as they are read, with no allocation
// for a small body, and takes time and memory linear in the body: objects
// of many members are indexed, and nesting past encoding/json's limit of
// 10000 is refused by the decoder.
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
	lr := &limitedReader{r: r, remaining: limit}
	ur := &utf8Reader{r: lr, bad: -1}
	ur.names.init(v)
	dec := json.NewDecoder(ur)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, errInvalidUTF8) {
			return invalidUTF8(ur.bad, ur.lone)
		}
		if errors.Is(err, errDuplicateName) {
			return ur.names.duplicateError()
		}
		return decodeError(err, lr, limit)
	}
	if ur.first == 'n' && refusesNull(v) {
		// encoding/json leaves the target as it was for null: a struct
		// contract would pass as its zero value, where [] or 0 is a 400.
		return &Error{Kind: KindMalformed, Code: "json.type",
			Detail: "body must be " + jsonTypeName(reflect.TypeOf(v)) + ", got null"}
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		if err != nil && (errors.Is(err, errBodyTooLarge) || isMaxBytes(err)) {
			return tooLarge(limit, err)
		}
		if errors.Is(err, errInvalidUTF8) {
			return invalidUTF8(ur.bad, ur.lone)
		}
		if err != nil && lr.err != nil && errors.Is(err, lr.err) {
			return readError(err)
		}
		return &Error{Kind: KindMalformed, Code: "json.trailing_data",
			Detail: "unexpected data after the JSON value at offset " + strconv.FormatInt(end, 10)}
	}
	return nil
}

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

// decodeError turns an error of json.Decoder.Decode into an *Error.
func decodeError(err error, lr *limitedReader, limit int64) error {
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
			Detail: "unexpected end of JSON input at offset " + strconv.FormatInt(lr.read, 10)}
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
	if lr.err != nil && errors.Is(err, lr.err) {
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
