package logctx

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/sadpath/sadpath/internal/urlerr"
)

// DefaultRedacted is the value that replaces a secret attribute.
const DefaultRedacted = "[REDACTED]"

// Keys whose values are always secret when default redaction is on. A key
// matches after lower-casing ASCII letters and turning '-' and ' ' into
// '_', so "Set-Cookie", "set_cookie" and "SET COOKIE" are one key.
// Compound keys come in both forms, with '_' and run together, so that
// camelCase keys ("sessionId", "idempotencyKey") match too. The raw
// idempotency key is an exact key, not a part: the key hashes the library
// logs on purpose ("idempotency_key_hash", "key_hash") stay visible.
var defaultSecretKeys = []string{
	"auth", "pwd", "pass", "pan", "cvv", "cvc", "cvv2", "pin", "jwt", "otp",
	"bearer", "session", "sessionid", "session_id", "ssn", "idempotency_key",
	"idempotencykey", "sig", // "sig": an Azure SAS URL's signature
	// Vendors' headers whose words are too common to be parts: Docker's
	// build credentials, Sentry's, Google IAP's identity assertion, and
	// Google Cloud Storage's customer-supplied encryption keys.
	"x_registry_config", "x_sentry_auth", "x_goog_iap_jwt_assertion",
	"x_goog_encryption_key", "x_goog_copy_source_encryption_key",
}

// Substrings that make a key secret: "db_password", "X-Api-Key",
// "refresh_token", "client_secret", "Proxy-Authorization", "Set-Cookie",
// "privateKey", "creditCardNumber", "X-Amz-Signature" (a presigned URL's
// query grants access to whoever holds it), "X-Hub-Signature-256",
// "X-Auth-Key" (Cloudflare), "Ocp-Apim-Subscription-Key" (Azure API
// Management), "x-functions-key" (Azure Functions), "X-Registry-Auth"
// (Docker), "DD-Application-Key" (Datadog; Backblaze's applicationKey),
// "X-Amz-Server-Side-Encryption-Customer-Key" (S3's SSE-C, an AES key).
var defaultSecretParts = []string{
	"password", "passwd", "passphrase", "secret", "token", "authorization",
	"cookie", "api_key", "apikey", "private_key", "privatekey", "credential",
	"card_number", "cardnumber", "credit_card", "creditcard", "signature",
	"auth_key", "authkey", "subscription_key", "subscriptionkey",
	"functions_key", "functionskey", "registry_auth", "registryauth",
	"application_key", "applicationkey", "encryption_customer_key",
	"sse_customer_key", "ssecustomerkey",
}

// redactor decides which attributes are secret and rewrites them. It is
// immutable once built, shared by a Handler and every handler derived from
// it, and safe for concurrent use.
type redactor struct {
	keys     *keyMatcher
	scanPAN  bool
	redacted slog.Value
	maxCoord int // longest coordinate value written in full; math.MaxInt: no limit
}

func newRedactor(cfg HandlerConfig) *redactor {
	r := &redactor{
		scanPAN:  !cfg.NoCardScan,
		redacted: slog.StringValue(DefaultRedacted),
		maxCoord: DefaultMaxCoordinateBytes,
	}
	switch {
	case cfg.MaxCoordinateBytes > 0:
		r.maxCoord = cfg.MaxCoordinateBytes
	case cfg.MaxCoordinateBytes < 0:
		r.maxCoord = math.MaxInt
	}
	if cfg.Replacement != "" {
		r.redacted = slog.StringValue(cfg.Replacement)
	}
	var exact, parts []string
	if !cfg.NoDefaultKeys {
		exact = append(exact, defaultSecretKeys...)
		parts = append(parts, defaultSecretParts...)
	}
	exact = append(exact, cfg.RedactKeys...)
	r.keys = newKeyMatcher(exact, parts)
	return r
}

// secretKey reports whether values under key k must be redacted.
func (r *redactor) secretKey(k string) bool {
	return k != "" && r.keys.match(k)
}

// keyMatcher matches a key against every secret key and key part at once:
// an Aho-Corasick automaton compiled to a DFA over the bytes that occur in
// the patterns. Exact keys are patterns framed by start and end marks
// ("\x01pan\x02"), parts are bare ("token"), so one pass over the key
// answers both, with no allocation, no cache to thrash and no lock.
// Matching is ASCII case-insensitive with '-', ' ' and '_' alike.
type keyMatcher struct {
	class [256]uint8 // byte -> symbol class; 0: a byte no pattern contains
	ncls  int
	next  []int32 // row offset of a state + class -> row offset of the next state, or -1: a pattern matched
}

const (
	markStart = 0x01
	markEnd   = 0x02
)

func foldKeyByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '-' || c == ' ':
		return '_'
	}
	return c
}

func newKeyMatcher(exact, parts []string) *keyMatcher {
	m := &keyMatcher{}
	patterns := make([]string, 0, len(exact)+len(parts))
	for _, k := range exact {
		patterns = append(patterns, string(rune(markStart))+k+string(rune(markEnd)))
	}
	patterns = append(patterns, parts...)

	// Symbol classes: one per distinct folded byte in the patterns.
	var clsOf [256]uint8
	ncls := 1
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			c := foldKeyByte(p[i])
			if clsOf[c] == 0 {
				clsOf[c] = uint8(ncls) // at most 231 folded bytes: fits
				ncls++
			}
		}
	}
	for b := 0; b < 256; b++ {
		m.class[b] = clsOf[foldKeyByte(byte(b))]
	}
	m.ncls = ncls

	// Trie.
	next := make([]int32, ncls) // state 0: root; -1: no edge yet
	for i := range next {
		next[i] = -1
	}
	out := []bool{false}
	for _, p := range patterns {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := int(m.class[p[i]])
			t := next[int(s)*ncls+c]
			if t < 0 {
				t = int32(len(out))
				next[int(s)*ncls+c] = t
				out = append(out, false)
				for range ncls {
					next = append(next, -1)
				}
			}
			s = t
		}
		out[s] = true
	}

	// Breadth-first: failure links folded into the transitions (a DFA),
	// and a state matches when its failure state does.
	fail := make([]int32, len(out))
	queue := make([]int32, 0, len(out))
	for c := 0; c < ncls; c++ {
		if t := next[c]; t > 0 {
			fail[t] = 0
			queue = append(queue, t)
		} else {
			next[c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		out[s] = out[s] || out[fail[s]]
		for c := 0; c < ncls; c++ {
			i := int(s)*ncls + c
			if t := next[i]; t >= 0 {
				fail[t] = next[int(fail[s])*ncls+c]
				queue = append(queue, t)
			} else {
				next[i] = next[int(fail[s])*ncls+c]
			}
		}
	}
	// Store each target pre-multiplied by ncls (the offset of its row),
	// and a target that completes a pattern as -1: match then costs two
	// loads, an add and a compare per byte.
	for i, t := range next {
		if out[t] {
			next[i] = -1
		} else {
			next[i] = t * int32(ncls)
		}
	}
	m.next = next
	return m
}

// match reports whether k, framed by the marks, contains a pattern.
func (m *keyMatcher) match(k string) bool { return matchKey(m, k) }

func matchKey[T string | []byte](m *keyMatcher, k T) bool {
	s := m.next[m.class[markStart]]
	if s < 0 {
		return true
	}
	for i := 0; i < len(k); i++ {
		s = m.next[s+int32(m.class[k[i]])]
		if s < 0 {
			return true
		}
	}
	return m.next[s+int32(m.class[markEnd])] < 0
}

// attr returns a, found on walk w (nil for an attribute on its own),
// resolved and redacted. changed reports whether the result differs from
// a, so callers can keep the original when nothing was done. LogValuer
// values are resolved here — only once the record is known to be
// enabled, so they stay lazy — and their result is redacted too. A group
// is walked as a map is, each LogValue call counted, so that LogValuers
// whose groups hold LogValuers — a cycle (two values that log each
// other), a chain or a fan-out of fresh ones — are cut at the walk's
// bounds instead of recursing until the stack overflows, a fatal error
// no recover catches.
func (r *redactor) attr(a slog.Attr, w *walk) (slog.Attr, bool) {
	if k := a.Value.Kind(); w == nil && (k == slog.KindLogValuer || k == slog.KindGroup) {
		return r.attrWalk(a)
	}
	changed := false
	if a.Value.Kind() == slog.KindLogValuer {
		if w.valuers == maxWalkValuers {
			return slog.Attr{Key: a.Key, Value: r.redacted}, true
		}
		w.valuers++
		a.Value = a.Value.Resolve()
		changed = true
	}
	secret := r.secretKey(a.Key)
	if r.scanPAN {
		// A key is printed as a value is: a card number in it is masked
		// too. Like a value without one, a key without one costs a scan
		// and no allocation.
		if k, ok := maskPANs(a.Key); ok {
			a.Key, changed = k, true
		}
	}
	if secret {
		if a.Value.Kind() == slog.KindGroup && emptyGroup(a.Value.Group(), 0) {
			return a, changed // an empty group prints nothing anyway
		}
		return slog.Attr{Key: a.Key, Value: r.redacted}, true
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if r.scanPAN {
			if s, ok := maskPANs(a.Value.String()); ok {
				return slog.String(a.Key, s), true
			}
		}
	case slog.KindGroup:
		g := a.Value.Group()
		if len(g) == 0 {
			break
		}
		if emptyGroup(g, 0) {
			// Nothing to print: dropped (a zero Attr is ignored), as
			// the JSON and text handlers mishandle such a group, writing
			// `"msg":"m""a":1` (no comma) and "z.a=1" for a following attr.
			return slog.Attr{}, true
		}
		if !w.enter(walkID{s: uintptr(unsafe.Pointer(&g[0])), n: len(g)}) {
			return slog.Attr{Key: a.Key, Value: r.redacted}, true
		}
		g, ok := r.group(g, w)
		w.leave()
		if ok {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(g...)}, true
		}
	case slog.KindAny:
		if v, ok := r.anyAt(a.Value.Any(), w); ok {
			return slog.Attr{Key: a.Key, Value: v}, true
		}
	}
	return a, changed
}

// attrWalk is attr for a group or LogValuer on its own. Its walk, a
// kilobyte, lives in this frame rather than in attr's, which every
// attribute of every record goes through (measured: BenchmarkHandleOnly).
//
//go:noinline
func (r *redactor) attrWalk(a slog.Attr) (slog.Attr, bool) {
	var w walk
	return r.attr(a, &w)
}

// emptyGroup reports whether a group with members as, at depth nested
// groups, prints nothing: slog ignores a zero Attr and a group, named or
// inline, with nothing to print, so a group holding only those is empty
// too and, under a secret key, must print nothing rather than the
// replacement. One nested deeper than the walk goes (a group that holds
// itself) is taken for not empty, and cut by the walk.
func emptyGroup(as []slog.Attr, depth int) bool {
	if depth > maxWalkDepth {
		return false
	}
	for _, a := range as {
		switch {
		case a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil:
		case a.Value.Kind() == slog.KindGroup && emptyGroup(a.Value.Group(), depth+1):
		default:
			return false
		}
	}
	return true
}

// group redacts the members of a group found on walk w, copying only if
// one changes.
func (r *redactor) group(as []slog.Attr, w *walk) ([]slog.Attr, bool) {
	var out []slog.Attr
	for i, m := range as {
		m2, ch := r.attr(m, w)
		if ch && out == nil {
			out = make([]slog.Attr, len(as))
			copy(out, as[:i])
		}
		if out != nil {
			out[i] = m2
		}
	}
	return out, out != nil
}

// any redacts the well-known container types that carry secrets: header
// maps (Authorization, Cookie), requests and responses (as method, path,
// status and redacted headers, by pointer or value), URLs with user information or secret query
// or fragment parameters (a url.URL by value is written as a string, as
// it has no String method), a URL's user information on its own, cookies
// by pointer or value (as their Set-Cookie form with the value redacted),
// map[string]any and []any (a decoded JSON body) at every level, card
// numbers in a []byte or a json.RawMessage, those URLs and card numbers
// in error texts (see error), slices, arrays and maps (of any key type:
// see otherMap) of any of these, of errors, of LogValuers or of
// interfaces ([]http.Header, []*http.Request, map[string]*url.URL: see
// walkable), walked like a []any, the secret keys of any other string-keyed map, pointers to
// any of these or to a string (through further pointers and
// interfaces), an slog.Attr or slog.Value given as a value (as a group
// of one, or what the value holds), and card numbers in strings of a
// named type, in slices, arrays and maps of strings and in map keys
// (see maskKeys). Other KindAny
// values are passed
// on as they are:
// give types that hold secrets a LogValue method.
func (r *redactor) any(v any) (slog.Value, bool) {
	return r.anyAt(v, nil)
}

// anyAt is any for a value found on walk w (nil for a value on its own),
// so that a walk that goes through containers of every kind keeps one
// depth bound and one cycle check.
func (r *redactor) anyAt(v any, w *walk) (slog.Value, bool) {
	switch x := v.(type) {
	case http.Header:
		if m, ok := r.header(x); ok {
			return slog.AnyValue(http.Header(m)), true
		}
	case *http.Header:
		if x != nil {
			if m, ok := r.header(*x); ok {
				return slog.AnyValue(http.Header(m)), true
			}
		}
	case map[string][]string:
		if m, ok := r.header(x); ok {
			return slog.AnyValue(m), true
		}
	case url.Values:
		if m, ok := r.header(x); ok {
			return slog.AnyValue(url.Values(m)), true
		}
	case map[string]string:
		for k, val := range x {
			if r.secretKey(k) || r.hasPAN(val) || r.hasPAN(k) {
				c := make(map[string]string, len(x))
				var cardKeys []string
				for k, val := range x {
					c[k] = r.value(k, val)
					if r.hasPAN(k) {
						cardKeys = append(cardKeys, k)
					}
				}
				maskKeys(c, cardKeys)
				return slog.AnyValue(c), true
			}
		}
	case []byte:
		// Text to the handlers: quoted by the text handler, base64 in JSON.
		// Scanned in place: a body without a card number costs no copy.
		if r.scanPAN {
			if b, ok := maskPANs(x); ok {
				return slog.AnyValue(b), true
			}
		}
	case json.RawMessage:
		// A []byte the JSON handler writes inline (contract.Event.Data).
		// One with a secret key is decoded, walked as a map[string]any
		// and encoded again (or replaced whole when it does not parse);
		// any other is masked as a []byte, and kept inline while that is
		// still valid JSON; a card number written as a JSON number is
		// not, once masked, and is written as a string then.
		if r.rawHasSecretKey(x) {
			var alone walk
			if w == nil {
				w = &alone
			}
			return slog.AnyValue(r.rawJSON(x, w)), true
		}
		if r.scanPAN {
			if b, ok := maskPANs([]byte(x)); ok {
				if json.Valid(b) {
					return slog.AnyValue(json.RawMessage(b)), true
				}
				return slog.StringValue(string(b)), true
			}
		}
	case map[string]any, []any:
		// A decoded JSON body, typically. (In a walk of maps, anyElem
		// takes them; here w is nil or a group's.)
		if w == nil {
			w = new(walk)
		}
		if v2, ok := r.anyElem(x, w); ok {
			return slog.AnyValue(v2), true
		}
	case *http.Request:
		// A text handler would print the whole struct, headers included.
		if x != nil {
			return r.request(x), true
		}
	case *http.Response:
		if x != nil {
			return r.response(x), true
		}
	case http.Request:
		// By value (a dereferenced request, a struct field), a handler
		// would print its fields, headers and URL included.
		return r.request(&x), true
	case http.Response:
		return r.response(&x), true
	case *url.URL:
		if x != nil {
			return r.url(x)
		}
	case *http.Cookie:
		// A credential under any key: String prints "name=value", JSON
		// the Value field.
		if x != nil {
			return slog.StringValue(r.cookie(x)), true
		}
	case http.Cookie:
		// By value it has no String method: a handler would print its
		// fields, Value included.
		return slog.StringValue(r.cookie(&x)), true
	case []*http.Cookie:
		// What Request.Cookies and Response.Cookies return.
		if x != nil {
			out := make([]string, len(x))
			for i, c := range x {
				if c != nil {
					out[i] = r.cookie(c)
				}
			}
			return slog.AnyValue(out), true
		}
	case url.URL:
		// By value it has no String method: a handler would print its
		// fields, RawQuery and Fragment included. Written as a string.
		if v, ok := r.url(&x); ok {
			return v, true
		}
		return slog.StringValue(x.String()), true
	case slog.Attr:
		// An attribute given as a value (slog.Any("creds",
		// slog.String("password", p))): the text handler would print it
		// with its String method. Written as a group of one.
		a, _ := r.attr(x, w)
		return slog.GroupValue(a), true
	case *url.Userinfo:
		// A URL's credentials on their own: its String method prints
		// "user:password", and a user name alone is often a token.
		if x != nil {
			return r.redacted, true
		}
	case error:
		if x != nil {
			return r.error(x)
		}
	default:
		// A slice, array or map of the above ([]http.Header,
		// []*http.Request, map[string]*url.URL): walked like a []any.
		t := reflect.TypeOf(v)
		if t != nil && t.Kind() == reflect.String {
			// A string of a named type (type CardNumber string).
			if r.scanPAN {
				if s, ok := maskPANs(reflect.ValueOf(v).String()); ok {
					return slog.StringValue(s), true
				}
			}
			return slog.Value{}, false
		}
		if t != nil && (containerKind(t.Kind()) || t.Kind() == reflect.Pointer) && walkable(t, 0) {
			var alone walk
			if w == nil {
				w = &alone
			}
			if v2, ok := r.reflectElem(reflect.ValueOf(v), w); ok {
				return slog.AnyValue(v2), true
			}
		}
	}
	return slog.Value{}, false
}

// reflectItem redacts an element of a container reflectElem walks, as
// anyElem does, without boxing the elements that would cost an allocation
// each (a nested slice, a []byte) unless they change.
func (r *redactor) reflectItem(ev reflect.Value, w *walk) (any, bool) {
	t := ev.Type()
	switch {
	case t.Kind() == reflect.String && !t.Implements(logValuerType) && !t.Implements(errorType):
		// A plain string type; one with a LogValue or Error method is
		// resolved by anyElem below, as it would be in a []any.
		if r.scanPAN {
			if s, ok := maskPANs(ev.String()); ok {
				return s, true
			}
		}
		return nil, false
	case t == anySliceType && ev.CanAddr():
		return r.anySlice(*(*[]any)(ev.Addr().UnsafePointer()), w)
	case t == bytesType || t == rawMessageType:
		// A RawMessage with a secret key goes to anyElem, which decodes
		// and redacts it as one on its own.
		if t == rawMessageType && r.rawHasSecretKey(ev.Bytes()) {
			break
		}
		if !r.scanPAN {
			return nil, false
		}
		if _, ok := maskPANs(ev.Bytes()); !ok {
			return nil, false
		}
	case containerKind(t.Kind()) && !slices.Contains(redactedTypes, t) && !t.Implements(logValuerType) && !t.Implements(errorType):
		return r.reflectElem(ev, w)
	}
	return r.anyElem(ev.Interface(), w)
}

// mapKeys walks the keys of a map: key returns the key at it of a
// string-keyed map, text the string an interface key holds. For a
// map[string]T and a map[any]T they read the key into a pooled variable
// without allocating (MapIter.Key copies each key to the heap); a named
// key type, which cannot be assigned to a string, takes that copy.
type mapKeys struct {
	s, e       string
	a          any
	sv, ev, av reflect.Value // s, e and a, settable
}

var mapKeysPool = sync.Pool{New: func() any {
	k := new(mapKeys)
	k.sv, k.ev, k.av = reflect.ValueOf(&k.s).Elem(), reflect.ValueOf(&k.e).Elem(), reflect.ValueOf(&k.a).Elem()
	return k
}}

// text returns the key at it of a map whose keys are interfaces, and
// whether it holds a string (of any string type). Only keys of the empty
// interface (map[any]T) are read through the pooled variable: from a key
// of an interface type with methods (map[fmt.Stringer]T), SetIterKey
// stores into an any the interface itself, not the value it holds, so
// such a key is read with MapIter.Key, which copies it.
func (k *mapKeys) text(it *reflect.MapIter, empty bool) (string, bool) {
	var a any
	if empty {
		k.av.SetIterKey(it)
		a, k.a = k.a, nil
	} else {
		a = it.Key().Interface()
	}
	if t := reflect.TypeOf(a); t != nil && t.Kind() == reflect.String {
		return reflect.ValueOf(a).String(), true
	}
	return "", false
}

// iface returns the value at it of a map[…]any, read as text reads a key.
func (k *mapKeys) iface(it *reflect.MapIter) any {
	k.av.SetIterValue(it)
	a := k.a
	k.a = nil
	return a
}

// elem returns the value at it of a map[…]string, read as key reads a key.
func (k *mapKeys) elem(it *reflect.MapIter) string {
	k.ev.SetIterValue(it)
	s := k.e
	k.e = ""
	return s
}

func (k *mapKeys) key(it *reflect.MapIter, plain bool) string {
	if !plain {
		return it.Key().String()
	}
	k.sv.SetIterKey(it)
	s := k.s
	k.s = ""
	return s
}

func containerKind(k reflect.Kind) bool {
	return k == reflect.Slice || k == reflect.Array || k == reflect.Map
}

// Types that any redacts, or may when they hold a secret.
var (
	logValuerType  = reflect.TypeFor[slog.LogValuer]()
	errorType      = reflect.TypeFor[error]()
	anySliceType   = reflect.TypeFor[[]any]()
	anyType        = reflect.TypeFor[any]()
	stringType     = reflect.TypeFor[string]()
	bytesType      = reflect.TypeFor[[]byte]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	redactedTypes  = []reflect.Type{
		reflect.TypeFor[http.Header](), reflect.TypeFor[*http.Header](),
		reflect.TypeFor[map[string][]string](), reflect.TypeFor[url.Values](),
		reflect.TypeFor[map[string]string](), reflect.TypeFor[[]byte](),
		reflect.TypeFor[json.RawMessage](), reflect.TypeFor[map[string]any](),
		reflect.TypeFor[[]any](), reflect.TypeFor[*http.Request](),
		reflect.TypeFor[*http.Response](), reflect.TypeFor[http.Request](),
		reflect.TypeFor[http.Response](), reflect.TypeFor[*url.URL](),
		reflect.TypeFor[url.URL](), reflect.TypeFor[*http.Cookie](),
		reflect.TypeFor[http.Cookie](), reflect.TypeFor[[]*http.Cookie](),
		reflect.TypeFor[*url.Userinfo](), reflect.TypeFor[slog.Attr](),
		reflect.TypeFor[slog.Value](),
	}
)

// maxTypeDepth bounds walkable's descent into element types: a type that
// contains itself (type L []L) is not walked.
const maxTypeDepth = 8

// walkable reports whether a value of type t may hold something the
// redactor rewrites: one of the types any redacts, an interface (which
// may hold one), a LogValuer, an error, a string (a card number may be in
// it), a slice or array of walkable elements, a map with string or
// interface keys (which may be secret) or walkable values, or a pointer to
// a walkable value. It does not allocate.
func walkable(t reflect.Type, depth int) bool {
	if depth > maxTypeDepth {
		return false
	}
	if t.Kind() == reflect.Interface || t.Kind() == reflect.String || slices.Contains(redactedTypes, t) || t.Implements(logValuerType) || t.Implements(errorType) {
		return true
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return walkable(t.Elem(), depth+1)
	case reflect.Map:
		// String keys may be secret or hold a card number, whatever the
		// values; so may interface keys, which may hold strings.
		return t.Key().Kind() == reflect.String || t.Key().Kind() == reflect.Interface || walkable(t.Elem(), depth+1)
	case reflect.Pointer:
		// Handlers print what it points to, through any number of
		// pointers and interfaces.
		return walkable(t.Elem(), depth+1)
	}
	return false
}

// reflectElem walks a walkable slice, array, map or pointer
// (see walkable) found on walk w: each element is redacted as an
// element of a []any is, the value under a secret map key replaced and a
// key holding a card number masked. It
// returns a []any (slices and arrays) or a map[string]any (see otherMap
// for maps with keys of another type), built only when an element
// changes; a nil or empty slice or map is left as it is.
// A pointer is written as what it points to. Past the walk's depth, or
// already on its path (a pointer to an interface that holds it), the
// value is replaced.
func (r *redactor) reflectElem(rv reflect.Value, w *walk) (any, bool) {
	var id walkID // an array, a value, cannot contain itself but counts as a level
	switch rv.Kind() {
	case reflect.Slice:
		if rv.Len() == 0 {
			return nil, false
		}
		id = walkID{s: rv.Pointer(), n: rv.Len()}
	case reflect.Map:
		if rv.Len() == 0 {
			return nil, false
		}
		id = walkID{m: rv.Pointer()}
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, false
		}
		id = walkID{p: rv.Pointer()}
	}
	if !w.enter(id) {
		return r.redacted.String(), true
	}
	defer w.leave()
	switch rv.Kind() {
	case reflect.Pointer:
		return r.reflectItem(rv.Elem(), w)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return r.otherMap(rv, w)
		}
		walkValues := walkable(rv.Type().Elem(), 0)
		keys := mapKeysPool.Get().(*mapKeys)
		defer mapKeysPool.Put(keys)
		plainKeys := rv.Type().Key() == stringType
		plainElems := rv.Type().Elem() == stringType // read without a copy to the heap
		var out map[string]any
		var cardKeys []string
		var it reflect.MapIter
		it.Reset(rv)
		for it.Next() {
			k := keys.key(&it, plainKeys)
			var v2 any
			var ch bool
			if r.hasPAN(k) {
				cardKeys = append(cardKeys, k)
			}
			if r.secretKey(k) {
				v2, ch = r.redacted.String(), true
			} else if plainElems {
				if r.scanPAN {
					if m, ok := maskPANs(keys.elem(&it)); ok {
						v2, ch = m, true
					}
				}
			} else if walkValues {
				v2, ch = r.reflectItem(it.Value(), w)
			}
			if (ch || len(cardKeys) > 0) && out == nil {
				out = make(map[string]any, rv.Len())
				for it2 := rv.MapRange(); it2.Next(); {
					out[it2.Key().String()] = it2.Value().Interface()
				}
			}
			if ch {
				out[k] = v2
			}
		}
		maskKeys(out, cardKeys)
		return out, out != nil
	}
	var out []any
	for i := range rv.Len() {
		if v2, ch := r.reflectItem(rv.Index(i), w); ch {
			if out == nil {
				out = make([]any, rv.Len())
				for j := range out {
					out[j] = rv.Index(j).Interface()
				}
			}
			out[i] = v2
		}
	}
	return out, out != nil
}

// otherMap is reflectElem for a map whose keys are not strings
// (map[int]string, a map[any]any decoded from YAML): its values are
// redacted, and a key that is an interface holding a string is read as a
// string key is (the value under a secret one replaced, a card number in
// one masked, keeping the key's type), whatever the interface
// (map[any]T, map[fmt.Stringer]T); other keys are kept as they are. It returns a map of the
// same key type to any (the handlers write its keys as they would the
// original's), built only when something changes.
func (r *redactor) otherMap(rv reflect.Value, w *walk) (any, bool) {
	t := rv.Type()
	walkValues := walkable(t.Elem(), 0)
	plainElems := t.Elem() == stringType // read without a copy to the heap
	anyElems := t.Elem() == anyType      // likewise
	textKeys := t.Key().Kind() == reflect.Interface
	emptyKeys := t.Key() == anyType
	keys := mapKeysPool.Get().(*mapKeys)
	defer mapKeysPool.Put(keys)
	var out reflect.Value // a map[K]any
	var cardKeys []reflect.Value
	var it reflect.MapIter
	it.Reset(rv)
	for it.Next() {
		k, text := "", false
		if textKeys {
			k, text = keys.text(&it, emptyKeys)
		}
		var v2 any
		var ch bool
		switch {
		case text && r.secretKey(k):
			v2, ch = r.redacted.String(), true
		case plainElems:
			if r.scanPAN {
				if m, ok := maskPANs(keys.elem(&it)); ok {
					v2, ch = m, true
				}
			}
		case anyElems:
			v2, ch = r.anyElem(keys.iface(&it), w)
		case walkValues:
			v2, ch = r.reflectItem(it.Value(), w)
		}
		cardKey := text && r.hasPAN(k)
		if (ch || cardKey) && !out.IsValid() {
			out = reflect.MakeMapWithSize(reflect.MapOf(t.Key(), anyType), rv.Len())
			for it2 := rv.MapRange(); it2.Next(); {
				out.SetMapIndex(it2.Key(), it2.Value())
			}
		}
		if ch {
			out.SetMapIndex(it.Key(), anyValue(v2))
		}
		if cardKey {
			cardKeys = append(cardKeys, it.Key())
		}
	}
	if !out.IsValid() {
		return nil, false
	}
	if out.Len() != rv.Len() {
		// A key not equal to itself (a NaN) was added again with its
		// redacted value, and its first copy, unredacted, cannot be
		// looked up to be replaced.
		return r.redacted.String(), true
	}
	// As maskKeys does: every key that holds a card number is taken out
	// before any masked one goes in, and they go in in the order of their
	// unmasked text (then of their type: keys of two string types may
	// hold one text).
	slices.SortFunc(cardKeys, func(a, b reflect.Value) int {
		ta, tb := a.Elem().Type(), b.Elem().Type()
		return cmp.Or(strings.Compare(a.Elem().String(), b.Elem().String()),
			strings.Compare(ta.String(), tb.String()), strings.Compare(ta.PkgPath(), tb.PkgPath()))
	})
	vs := make([]reflect.Value, len(cardKeys))
	for i, k := range cardKeys {
		vs[i] = out.MapIndex(k)
		out.SetMapIndex(k, reflect.Value{})
	}
	for i, k := range cardKeys {
		// The masked key keeps the type of the key it replaces: a map
		// whose keys are an interface with methods (fmt.Stringer) takes
		// no plain string.
		kt := k.Elem().Type()
		masked, _ := maskPANs(k.Elem().String())
		key := freeKey(masked, func(k string) bool { return out.MapIndex(reflect.ValueOf(k).Convert(kt)).IsValid() })
		out.SetMapIndex(reflect.ValueOf(key).Convert(kt), vs[i])
	}
	return out.Interface(), true
}

// anyValue returns x as a reflect.Value of type any, which a map[K]any
// takes whatever x holds (the zero Value of reflect.ValueOf(nil) would
// delete the key).
func anyValue(x any) reflect.Value { return reflect.ValueOf(&x).Elem() }

// maxWalkDepth bounds the walk of nested maps and slices: what lies
// deeper is replaced rather than walked.
const maxWalkDepth = 32

// maxWalkValuers bounds the LogValue calls of one walk: each may return
// fresh containers holding more LogValuers, which no cycle check catches,
// so that two per level would cost 2^maxWalkDepth calls. Those past the
// bound are replaced.
const maxWalkValuers = 1 << 12

// walk is one walk through nested maps, slices, arrays and pointers: the
// containers on the path to the value being redacted, which bound the
// depth and cut a container found inside itself (walked again, a map that
// holds itself under two keys would cost 2^maxWalkDepth visits), and the
// LogValue calls made.
type walk struct {
	path    [maxWalkDepth + 1]walkID
	depth   int
	valuers int
}

// walkID identifies a map (by its pointer), a non-empty slice (by its
// first element and length) or a pointer on the path being walked; the
// zero walkID, an array's, is never found there.
type walkID struct {
	m uintptr // a map
	s uintptr // a slice's first element
	n int     // and its length
	p uintptr // a pointer
}

// enter puts id on the path, or reports false when the walk is at its
// depth bound or id is already on the path. A true enter is undone by
// leave.
func (w *walk) enter(id walkID) bool {
	if w.depth == len(w.path) || (id != walkID{} && slices.Contains(w.path[:w.depth], id)) {
		return false
	}
	w.path[w.depth] = id
	w.depth++
	return true
}

func (w *walk) leave() { w.depth-- }

// anyMap redacts a map[string]any found on walk w as a group is, at
// every level: a value under a secret key is replaced, the others are
// redacted as values. It copies m, at the levels that change, only when
// something does.
func (r *redactor) anyMap(m map[string]any, w *walk) (any, bool) {
	if !w.enter(walkID{m: reflect.ValueOf(m).Pointer()}) {
		return r.redacted.String(), true
	}
	defer w.leave()
	var out map[string]any
	var cardKeys []string
	for k, v := range m {
		var v2 any
		var ch bool
		if r.secretKey(k) {
			v2, ch = r.redacted.String(), true
		} else {
			v2, ch = r.anyElem(v, w)
		}
		if r.hasPAN(k) {
			cardKeys = append(cardKeys, k)
		}
		if (ch || len(cardKeys) > 0) && out == nil {
			out = maps.Clone(m)
		}
		if ch {
			out[k] = v2
		}
	}
	if out == nil {
		return nil, false
	}
	maskKeys(out, cardKeys)
	return out, true
}

// anySlice redacts the elements of a []any found on walk w, copying l
// only when one changes.
func (r *redactor) anySlice(l []any, w *walk) (any, bool) {
	if len(l) == 0 {
		return nil, false
	}
	if !w.enter(walkID{s: uintptr(unsafe.Pointer(&l[0])), n: len(l)}) {
		return r.redacted.String(), true
	}
	defer w.leave()
	var out []any
	for i, v := range l {
		if v2, ch := r.anyElem(v, w); ch {
			if out == nil {
				out = slices.Clone(l)
			}
			out[i] = v2
		}
	}
	if out == nil {
		return nil, false
	}
	return out, true
}

// anyElem redacts a value found in a map[string]any or a []any, on walk
// w. A map or slice past the walk's depth, or already on its path (one
// that contains itself), is replaced.
func (r *redactor) anyElem(v any, w *walk) (any, bool) {
	switch x := v.(type) {
	case string:
		if r.scanPAN {
			if s, ok := maskPANs(x); ok {
				return s, true
			}
		}
		return v, false
	case map[string]any:
		return r.anyMap(x, w)
	case []any:
		return r.anySlice(x, w)
	case slog.LogValuer:
		return r.valueElem(slog.AnyValue(x), w)
	case slog.Value:
		// Passed on as is, the text handler would print it with its
		// String method, the JSON handler as {}.
		return r.valueElem(x, w)
	case slog.Attr:
		// Likewise ("password=…"): written as a group of one.
		return r.valueElem(slog.GroupValue(x), w)
	}
	if rv, ok := r.anyAt(v, w); ok {
		if rv.Kind() == slog.KindGroup {
			// A request or response: a map is printed, an []slog.Attr
			// would be marshalled as {"Key":…,"Value":{}}.
			return r.groupMap(rv.Group(), 0), true
		}
		return rv.Any(), true
	}
	return v, false
}

// valueElem is anyElem for an slog.Value: resolved as in a group, and its
// result walked in place (passed on as is, a LogValuer would be marshalled
// or printed field by field). A group becomes a map, which is how both
// handlers print one here; each LogValue that returns one adds a level to
// the walk. It always reports a change: the value is replaced by what it
// holds, or by the replacement past maxWalkValuers LogValue calls.
func (r *redactor) valueElem(v slog.Value, w *walk) (any, bool) {
	if v.Kind() == slog.KindLogValuer {
		if w.valuers == maxWalkValuers {
			return r.redacted.String(), true
		}
		w.valuers++
	}
	rv := v.Resolve()
	var x any
	if rv.Kind() == slog.KindGroup {
		x = r.groupMap(rv.Group(), 0)
	} else {
		x = rv.Any()
	}
	if x2, ch := r.anyElem(x, w); ch {
		return x2, true
	}
	return x, true
}

// rawHasSecretKey reports whether the JSON text b has a member whose name
// is a secret key, or is spelled with an escape (which only decoding
// reads). It scans b without decoding it.
func (r *redactor) rawHasSecretKey(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		start, escaped := i+1, false
		for i++; i < len(b) && b[i] != '"'; i++ {
			if b[i] == '\\' {
				escaped = true
				i++
			}
		}
		if i >= len(b) {
			return false
		}
		name := b[start:i]
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
			j++
		}
		if j < len(b) && b[j] == ':' && (escaped || (len(name) > 0 && matchKey(r.keys, name))) {
			return true
		}
	}
	return false
}

// rawJSON returns the JSON text b, which has a secret key, with the values
// under its secret keys replaced and card numbers masked, as a map[string]any
// is: decoded (numbers kept as written), walked and encoded again. A text
// that does not parse as one JSON value is replaced whole.
func (r *redactor) rawJSON(b []byte, w *walk) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return r.redacted.String()
	}
	if _, err := dec.Token(); err != io.EOF {
		return r.redacted.String()
	}
	if v2, ok := r.anyElem(v, w); ok {
		v = v2
	}
	out, err := json.Marshal(v)
	if err != nil {
		return r.redacted.String()
	}
	return json.RawMessage(out)
}

// groupMap returns the attrs of a group, at depth nested groups, as a
// map[string]any, nested groups as nested maps and an empty-keyed group's
// attrs inlined, as slog does. A group nested deeper than a walk goes (a
// group that holds itself) is replaced; attrs slog ignores (zero ones)
// are left out. slog's handlers print every attr of a group, a repeated
// key too, and a map must lose none of them: a key already in the map —
// repeated in the group, or by a group inlined into it — is written, in
// the group's order once the others are in, as the first free of
// "key (2)", "key (3)"… (as maskKeys writes keys that mask alike). Its
// value is replaced when the key is secret: the walk of the map would
// not know "pin (2)" for the exact key "pin".
func (r *redactor) groupMap(as []slog.Attr, depth int) map[string]any {
	m := make(map[string]any, len(as))
	for _, d := range r.groupInto(m, as, depth, nil) {
		m[freeKey(d.key, func(k string) bool { _, ok := m[k]; return ok })] = d.val
	}
	return m
}

// groupInto puts the attrs of a group, at depth nested groups, in m for
// groupMap, and returns repeated, with the attrs whose key m already held
// appended.
func (r *redactor) groupInto(m map[string]any, as []slog.Attr, depth int, repeated []keyVal) []keyVal {
	for _, a := range as {
		var v any
		switch {
		case a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil:
			continue // a zero Attr: slog ignores it
		case a.Value.Kind() != slog.KindGroup:
			v = a.Value.Any()
		case depth == maxWalkDepth:
			v = r.redacted.String()
		case a.Key == "":
			repeated = r.groupInto(m, a.Value.Group(), depth+1, repeated)
			continue
		default:
			v = r.groupMap(a.Value.Group(), depth+1)
		}
		if _, ok := m[a.Key]; ok {
			if r.secretKey(a.Key) {
				v = r.redacted.String()
			}
			repeated = append(repeated, keyVal{a.Key, v})
			continue
		}
		m[a.Key] = v
	}
	return repeated
}

// keyVal is an attr of a group whose key groupMap has already placed.
type keyVal struct {
	key string
	val any
}

// error returns the text of err with the URL of every *url.Error in its
// tree (what an http.Client call fails with: `Get "https://…?api_key=…":
// dial tcp: …`) redacted as a *url.URL is, and card numbers masked, when
// that changes anything.
func (r *redactor) error(err error) (slog.Value, bool) {
	var buf [4]*url.Error
	ues := urlerr.Collect(err, buf[:0])
	if len(ues) == 0 && !r.scanPAN {
		return slog.Value{}, false
	}
	s := errorText(err)
	changed := false
	// Longest first, so that a URL that extends another is replaced whole.
	slices.SortStableFunc(ues, func(a, b *url.Error) int { return len(b.URL) - len(a.URL) })
	for _, ue := range ues {
		raw := ue.URL
		clean := r.redacted.String() // a URL that does not parse is dropped rather than leaked
		if u, err := url.Parse(raw); err == nil {
			v, ok := r.url(u)
			if !ok {
				continue
			}
			clean = v.String()
		}
		if s2 := strings.ReplaceAll(s, raw, clean); s2 != s {
			s, changed = s2, true
		}
		// url.Error quotes its URL (%q): one holding bytes that quoting
		// escapes appears in its escaped form.
		if q := strconv.Quote(raw); q[1:len(q)-1] != raw {
			cq := strconv.Quote(clean)
			if s2 := strings.ReplaceAll(s, q[1:len(q)-1], cq[1:len(cq)-1]); s2 != s {
				s, changed = s2, true
			}
		}
	}
	if r.scanPAN {
		if m, ok := maskPANs(s); ok {
			s, changed = m, true
		}
	}
	if !changed {
		return slog.Value{}, false
	}
	return slog.StringValue(s), true
}

// request writes a request as method, path and redacted headers; the query
// is left out, as it may carry tokens.
func (r *redactor) request(req *http.Request) slog.Value {
	path := ""
	if req.URL != nil {
		path = req.URL.Path
		if r.scanPAN {
			path, _ = maskPANs(path)
		}
	}
	h, _ := r.header(req.Header)
	if h == nil {
		h = req.Header
	}
	return slog.GroupValue(slog.String("method", req.Method), slog.String("path", path), slog.Any("header", http.Header(h)))
}

// response writes a response as status and redacted headers.
func (r *redactor) response(resp *http.Response) slog.Value {
	h, _ := r.header(resp.Header)
	if h == nil {
		h = resp.Header
	}
	return slog.GroupValue(slog.Int("status", resp.StatusCode), slog.Any("header", http.Header(h)))
}

// url returns u as a string with its user information, the values of
// secret query parameters and those of secret fragment parameters redacted,
// when it has any of them. The user name is replaced by the replacement
// string (and a password dropped): a user name alone is often a token
// ("https://ghp_…@github.com/…"); so is what an opaque URL has before its
// last '@' ("jdbc:postgresql://u:pw@h/db"). A fragment that parses as a query
// ("#access_token=…&token_type=bearer", OAuth's implicit flow) is redacted
// like the query; one that does not is dropped rather than leaked, as an
// unparseable query is.
func (r *redactor) url(u *url.URL) (slog.Value, bool) {
	if r.urlClean(u) {
		return slog.Value{}, false
	}
	return r.urlRedacted(u)
}

// urlRedacted is url for a URL that urlClean could not clear: it writes u
// out, parsing its query and fragment, to redact it.
func (r *redactor) urlRedacted(u *url.URL) (slog.Value, bool) {
	changed := false
	c := *u
	if c.User != nil {
		// A placeholder of unreserved bytes, swapped for the replacement
		// once the URL is a string: url would percent-encode "[REDACTED]".
		c.User = url.User(userPlaceholder)
		changed = true
	}
	if at := strings.LastIndexByte(c.Opaque, '@'); at >= 0 {
		// An opaque URL has no parsed user information, but may hold
		// one: "jdbc:postgresql://u:pw@h/db", or "u:pw@h:5432", whose
		// user name url.Parse takes for a scheme. What comes before the
		// last '@', after a "//", is replaced (String writes Opaque as it
		// is).
		start := 0
		if i := strings.Index(c.Opaque[:at], "//"); i >= 0 {
			start = i + len("//")
		}
		c.Opaque = c.Opaque[:start] + r.redacted.String() + c.Opaque[at:]
		changed = true
	}
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery, changed = "", true // unparseable: drop rather than leak
		} else if m, ok := r.header(q); ok {
			c.RawQuery, changed = url.Values(m).Encode(), true
		}
	}
	fragment := ""
	if c.Fragment != "" || c.RawFragment != "" {
		fragment = "#" + c.EscapedFragment()
		if q, err := url.ParseQuery(c.EscapedFragment()); err != nil {
			fragment, changed = "", true // unparseable: drop rather than leak
		} else if m, ok := r.header(q); ok {
			fragment, changed = "#"+url.Values(m).Encode(), true
		}
		c.Fragment, c.RawFragment = "", ""
	}
	out := c.String()
	if c.User != nil {
		// Only the scheme, which cannot hold '@', comes before the user
		// information.
		out = strings.Replace(out, userPlaceholder+"@", r.redacted.String()+"@", 1)
	}
	out += fragment
	if r.scanPAN {
		if m, ok := maskPANs(out); ok {
			out, changed = m, true
		}
	}
	if !changed {
		return slog.Value{}, false
	}
	return slog.StringValue(out), true
}

// urlClean reports that urlRedacted would leave u as it is — no user
// information, no '@' in an opaque URL, a query and a fragment that parse
// as queries with no secret key and no card number, and no card number in
// the URL as String writes it — checking it in place, without writing it
// out or parsing its query into a map: a clean URL, the common one, costs
// no allocation. It may report false for a clean URL (a query key with an
// escape, a host String escapes), which urlRedacted then checks; it
// reports true only when urlRedacted would report no change.
//
// String writes the parts it scans — scheme, opaque part, host, path,
// query, fragment — between ':', '/', '?' and '#', which a card number
// cannot span, so a card number in what String writes is in one of them.
// The path and fragment are scanned as they are when String writes them
// unescaped (every byte one it keeps; RawPath and RawFragment too, which
// it may write instead), else as escaped (which may allocate, for a path
// with a space, say); a host that String would escape is left to
// urlRedacted.
func (r *redactor) urlClean(u *url.URL) bool {
	if u.User != nil || strings.IndexByte(u.Opaque, '@') >= 0 || !allBytes(u.Host, urlHostByte) {
		return false
	}
	if !r.queryClean(u.RawQuery) || r.hasPAN(u.Scheme) || r.hasPAN(u.Opaque) || r.hasPAN(u.Host) || r.hasPAN(u.RawQuery) {
		return false
	}
	// EscapedPath writes RawPath, or Path escaped: Path itself when none
	// of its bytes is one to escape.
	if allBytes(u.Path, urlPathByte) {
		if r.hasPAN(u.Path) || r.hasPAN(u.RawPath) {
			return false
		}
	} else if r.hasPAN(u.EscapedPath()) {
		return false
	}
	// Likewise EscapedFragment, which urlRedacted parses as a query.
	if allBytes(u.Fragment, urlFragmentByte) {
		for _, f := range [2]string{u.Fragment, u.RawFragment} {
			if !r.queryClean(f) || r.hasPAN(f) {
				return false
			}
		}
	} else if f := u.EscapedFragment(); !r.queryClean(f) || r.hasPAN(f) {
		return false
	}
	return true
}

// queryClean reports that q parses as a query (url.ParseQuery) with no
// key that is secret or holds a card number and no value that holds one
// once unescaped, checking it in place. A key with an escape ('%', or '+'
// for a space), or a value with escapes and 13 digits or more counting
// each '%' as one, is not cleared: unescaping it would allocate. A card
// number written as it is, in a key or a value, is left to the caller's
// scan of the whole query.
func (r *redactor) queryClean(q string) bool {
	if strings.Count(q, "&") >= maxQueryParams {
		return false // more parameters than ParseQuery takes: dropped
	}
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			return false // ParseQuery's error: dropped
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") || r.secretKey(k) {
			return false
		}
		digits, escaped := 0, false
		for i := 0; i < len(v); i++ {
			switch c := v[i]; {
			case c == '%':
				if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
					return false // ParseQuery's error: dropped
				}
				digits++ // an escape unescapes to at most one digit
				escaped = true
			case c == '+':
				escaped = true
			case isDigit(c):
				digits++
			}
		}
		if escaped && r.scanPAN && digits >= 13 {
			return false
		}
	}
	return true
}

// maxQueryParams is url.ParseQuery's default bound on the parameters of a
// query (GODEBUG urlmaxqueryparams), past which it returns an error.
const maxQueryParams = 10000

// urlHostByte, urlPathByte and urlFragmentByte report whether String
// writes c as it is in a URL's host, path or fragment (the unreserved
// bytes, and some of the reserved ones each part keeps; a test checks
// them against net/url).
func urlHostByte(c byte) bool { return isUnreserved(c) || c == ':' || c == '[' || c == ']' }

func urlPathByte(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("/:@=+,;&$", c) >= 0
}

func urlFragmentByte(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("/:@=+,;&$?", c) >= 0
}

func isUnreserved(c byte) bool { return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' }

func isHex(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F') }

// allBytes reports whether every byte of s satisfies ok.
func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// userPlaceholder stands for the user information of a URL being redacted.
const userPlaceholder = "logctx-redacted-userinfo"

// cookie returns c as its Set-Cookie form (String) with the value
// replaced by the replacement string.
func (r *redactor) cookie(c *http.Cookie) string {
	cc := *c
	// A placeholder of valid cookie bytes, swapped for the replacement once
	// the cookie is a string: String would quote or drop some bytes of it.
	cc.Value, cc.Quoted = cookiePlaceholder, false
	// The name, a token, cannot hold '=': the first one ends it.
	return strings.Replace(cc.String(), "="+cookiePlaceholder, "="+r.redacted.String(), 1)
}

// cookiePlaceholder stands for the value of a cookie being redacted.
const cookiePlaceholder = "logctx-redacted-cookie"

// errorText returns err.Error(), or "" when it panics (a nil pointer
// receiver, typically): the wrapped handler decides how to print such a
// value, as it would without logctx.
func errorText(err error) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	return err.Error()
}

func (r *redactor) value(k, v string) string {
	if r.secretKey(k) {
		return r.redacted.String()
	}
	if r.scanPAN {
		if s, ok := maskPANs(v); ok {
			return s
		}
	}
	return v
}

// hasPAN reports whether s holds a card number to mask; with NoCardScan,
// never, at no cost.
func (r *redactor) hasPAN(s string) bool {
	if !r.scanPAN {
		return false
	}
	_, ok := maskPANs(s)
	return ok
}

func (r *redactor) header(h map[string][]string) (map[string][]string, bool) {
	dirty := false
	for k, vs := range h {
		if r.secretKey(k) || r.hasPAN(k) || slices.ContainsFunc(vs, r.hasPAN) {
			dirty = true
			break
		}
	}
	if !dirty {
		return nil, false
	}
	c := make(map[string][]string, len(h))
	var cardKeys []string
	for k, vs := range h {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = r.value(k, v)
		}
		c[k] = out
		if r.hasPAN(k) {
			cardKeys = append(cardKeys, k)
		}
	}
	maskKeys(c, cardKeys)
	return c, true
}

// maskKeys moves the values of m under cardKeys, keys that hold card
// numbers, to those keys masked. Two keys may mask to one text (two cards
// with the same last four digits, or a key already written masked), and a
// copy of a map must lose no value: the second takes the first free of
// "… (2)", "… (3)"…, second in the order of the unmasked keys, not in the
// order the map gave them (random), so that a map is written the same way
// on every line.
func maskKeys[V any](m map[string]V, cardKeys []string) {
	if len(cardKeys) == 0 {
		return
	}
	slices.Sort(cardKeys)
	vs := make([]V, len(cardKeys))
	for i, k := range cardKeys {
		vs[i] = m[k]
		delete(m, k) // all first: a key given below is never deleted after
	}
	for i, k := range cardKeys {
		masked, _ := maskPANs(k)
		m[freeKey(masked, func(k string) bool { _, ok := m[k]; return ok })] = vs[i]
	}
}

// freeKey returns masked, or the first of "masked (2)", "masked (3)"…
// that is not taken.
func freeKey(masked string, taken func(string) bool) string {
	key := masked
	for n := 2; taken(key); n++ {
		key = masked + " (" + strconv.Itoa(n) + ")"
	}
	return key
}

// maskPANs returns s with every payment card number in it masked, keeping
// the last four digits ("4111 1111 1111 1111" → "**** **** **** 1111").
// A card number is 13 to 19 digits, contiguous or in groups separated by
// single spaces or dashes, that pass the Luhn check and are not glued to
// letters or other digits, though other groups may come before or after it
// ("ref 14 4111 1111 1111 1111", "4111 1111 1111 1111 2030"). Every such
// number is masked, overlapping ones included: masking only adds '*', so
// whatever surrounds a card number, at most its last four digits stay
// visible. ok is false (and s returned as is, without allocating) when
// there is none. A []byte is scanned in place, and masked in a copy.
func maskPANs[T string | []byte](s T) (T, bool) {
	if len(s) < 13 {
		return s, false
	}
	var out []byte
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			i++
			continue
		}
		start := i
		// Extend over digits and single separators between digits.
		end := i
		for end < len(s) {
			if isDigit(s[end]) {
				end++
				continue
			}
			if (s[end] == ' ' || s[end] == '-') && end+1 < len(s) && isDigit(s[end+1]) {
				end++
				continue
			}
			break
		}
		i = end
		// A number glued to letters is an identifier ("ord4111..."), not a
		// PAN: no card starts at a run glued to a letter on its left, nor
		// ends at a run glued to one on its right.
		gluedStart := start > 0 && isAlnum(s[start-1])
		gluedEnd := end < len(s) && isAlnum(s[end])
		// Try every group of the run as the start of a card number: a
		// shorter Luhn-valid window may begin before a card and end inside
		// it, so masking it alone would leave the card's tail in clear.
		for ms := start; ms < end; ms++ {
			if !isDigit(s[ms]) || (ms > start && isDigit(s[ms-1])) || (ms == start && gluedStart) {
				continue
			}
			if me, ok := panAt(s, ms, end, gluedEnd); ok {
				if out == nil {
					out = make([]byte, len(s))
					copy(out, s)
				}
				maskDigits(out[ms:me], s[ms:me])
			}
		}
	}
	if out == nil {
		return s, false
	}
	return T(out), true
}

// panAt returns the end of the longest card number that starts at ms, at a
// group boundary of the run s[ms:end] (digits and single separators), and
// whether there is one. A card number ends at a group boundary, the run's
// end excluded when the run is glued to a letter (gluedEnd). Checking every
// boundary catches "4111 1111 1111 1111 exp 12 30" styles as well as a
// number followed by another group ("4111111111111111 2030"); masking the
// longest window from ms masks every shorter one too.
func panAt[T string | []byte](s T, ms, end int, gluedEnd bool) (int, bool) {
	var digits [19]byte
	nd, best := 0, -1
	for me := ms; me < end && nd < len(digits); me++ {
		if !isDigit(s[me]) {
			continue
		}
		digits[nd] = s[me] - '0'
		nd++
		atBoundary := (me+1 < end && !isDigit(s[me+1])) || (me+1 == end && !gluedEnd)
		if nd >= 13 && atBoundary && luhn(digits[:nd]) {
			best = me + 1
		}
	}
	return best, best >= 0
}

// maskDigits replaces by '*' the digits of dst but the last four, reading
// which bytes are digits from src, the unmasked text dst is a copy of:
// overlapping card numbers are masked in turn, and each must keep only its
// own last four digits, whatever was masked before.
func maskDigits[T string | []byte](dst []byte, src T) {
	keep := 4
	for i := len(src) - 1; i >= 0; i-- {
		if !isDigit(src[i]) {
			continue
		}
		if keep > 0 {
			keep--
			continue
		}
		dst[i] = '*'
	}
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}
