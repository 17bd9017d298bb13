package logctx

import (
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// DefaultRedacted is the value that replaces a secret attribute.
const DefaultRedacted = "[REDACTED]"

// Keys whose values are always secret when default redaction is on. A key
// matches after lower-casing ASCII letters and turning '-' and ' ' into
// '_', so "Set-Cookie", "set_cookie" and "SET COOKIE" are one key.
var defaultSecretKeys = []string{
	"auth", "pwd", "pass", "pan", "cvv", "cvc", "cvv2", "pin", "jwt", "otp",
	"bearer", "session", "sessionid", "session_id", "ssn",
}

// Substrings that make a key secret: "db_password", "X-Api-Key",
// "refresh_token", "client_secret", "Proxy-Authorization", "Set-Cookie".
var defaultSecretParts = []string{
	"password", "passwd", "passphrase", "secret", "token", "authorization",
	"cookie", "api_key", "apikey", "private_key", "credential", "card_number",
	"cardnumber", "credit_card", "idempotency_key",
}

// redactor decides which attributes are secret and rewrites them. It is
// shared by a Handler and every handler derived from it, and safe for
// concurrent use.
type redactor struct {
	keys     map[string]struct{} // normalized exact keys
	parts    []string            // normalized substrings
	scanPAN  bool
	redacted slog.Value

	// A small direct-mapped cache of key decisions: keys are nearly always
	// a handful of constants, so after warm-up classifying a key costs a
	// hash and a pointer load. Bounded, so hostile dynamic keys cannot grow
	// it.
	seed  maphash.Seed
	cache [256]atomic.Pointer[keyVerdict]
}

type keyVerdict struct {
	key    string
	secret bool
}

func newRedactor(cfg HandlerConfig) *redactor {
	r := &redactor{
		keys:     make(map[string]struct{}),
		scanPAN:  !cfg.NoCardScan,
		redacted: slog.StringValue(DefaultRedacted),
		seed:     maphash.MakeSeed(),
	}
	if cfg.Replacement != "" {
		r.redacted = slog.StringValue(cfg.Replacement)
	}
	if !cfg.NoDefaultKeys {
		for _, k := range defaultSecretKeys {
			r.keys[k] = struct{}{}
		}
		r.parts = defaultSecretParts
	}
	for _, k := range cfg.RedactKeys {
		r.keys[normalizeKey(k)] = struct{}{}
	}
	return r
}

func normalizeKey(k string) string {
	b := []byte(k)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '-' || c == ' ':
			b[i] = '_'
		}
	}
	return string(b)
}

// secretKey reports whether values under key k must be redacted.
func (r *redactor) secretKey(k string) bool {
	if k == "" {
		return false
	}
	slot := &r.cache[maphash.String(r.seed, k)%uint64(len(r.cache))]
	if v := slot.Load(); v != nil && v.key == k {
		return v.secret
	}
	secret := r.classify(k)
	slot.Store(&keyVerdict{key: k, secret: secret})
	return secret
}

func (r *redactor) classify(k string) bool {
	n := k
	if needsNormalizing(k) {
		n = normalizeKey(k)
	}
	if _, ok := r.keys[n]; ok {
		return true
	}
	for _, p := range r.parts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

func needsNormalizing(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; ('A' <= c && c <= 'Z') || c == '-' || c == ' ' {
			return true
		}
	}
	return false
}

// attr returns a resolved and redacted. changed reports whether the
// result differs from a, so callers can keep the original when nothing was
// done. LogValuer values are resolved here — only once the record is known
// to be enabled, so they stay lazy — and their result is redacted too.
func (r *redactor) attr(a slog.Attr) (out slog.Attr, changed bool) {
	if a.Value.Kind() == slog.KindLogValuer {
		a.Value = a.Value.Resolve()
		changed = true
	}
	if r.secretKey(a.Key) {
		if a.Value.Kind() == slog.KindGroup && len(a.Value.Group()) == 0 {
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
		if g, ok := r.group(a.Value.Group()); ok {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(g...)}, true
		}
	case slog.KindAny:
		if v, ok := r.any(a.Value.Any()); ok {
			return slog.Attr{Key: a.Key, Value: v}, true
		}
	}
	return a, changed
}

// group redacts the members of a group, copying only if one changes.
func (r *redactor) group(as []slog.Attr) ([]slog.Attr, bool) {
	var out []slog.Attr
	for i, m := range as {
		m2, ch := r.attr(m)
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
// status and redacted headers), URLs with a password, and card numbers in
// error texts. Other KindAny values are passed on as they are: give types
// that hold secrets a LogValue method.
func (r *redactor) any(v any) (slog.Value, bool) {
	switch x := v.(type) {
	case http.Header:
		if m, ok := r.header(x); ok {
			return slog.AnyValue(http.Header(m)), true
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
			_, pan := maskPANs(val)
			if r.secretKey(k) || (r.scanPAN && pan) {
				c := make(map[string]string, len(x))
				for k, val := range x {
					c[k] = r.value(k, val)
				}
				return slog.AnyValue(c), true
			}
		}
	case *http.Request:
		// A text handler would print the whole struct, headers included.
		if x != nil {
			return r.request(x), true
		}
	case *http.Response:
		if x != nil {
			h, _ := r.header(x.Header)
			if h == nil {
				h = x.Header
			}
			return slog.GroupValue(slog.Int("status", x.StatusCode), slog.Any("header", http.Header(h))), true
		}
	case *url.URL:
		if x != nil && x.User != nil {
			if _, ok := x.User.Password(); ok {
				return slog.StringValue(x.Redacted()), true
			}
		}
	case error:
		if x != nil && r.scanPAN {
			if s, ok := maskPANs(x.Error()); ok {
				return slog.StringValue(s), true
			}
		}
	}
	return slog.Value{}, false
}

// request writes a request as method, path and redacted headers; the query
// is left out, as it may carry tokens.
func (r *redactor) request(req *http.Request) slog.Value {
	path := ""
	if req.URL != nil {
		path = req.URL.Path
	}
	h, _ := r.header(req.Header)
	if h == nil {
		h = req.Header
	}
	return slog.GroupValue(slog.String("method", req.Method), slog.String("path", path), slog.Any("header", http.Header(h)))
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

func (r *redactor) header(h map[string][]string) (map[string][]string, bool) {
	dirty := false
	for k, vs := range h {
		if r.secretKey(k) {
			dirty = true
			break
		}
		for _, v := range vs {
			if _, ok := maskPANs(v); ok && r.scanPAN {
				dirty = true
				break
			}
		}
	}
	if !dirty {
		return nil, false
	}
	c := make(map[string][]string, len(h))
	for k, vs := range h {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = r.value(k, v)
		}
		c[k] = out
	}
	return c, true
}

// maskPANs returns s with every payment card number in it masked, keeping
// the last four digits ("4111 1111 1111 1111" → "**** **** **** 1111").
// A card number is 13 to 19 digits, contiguous or in groups separated by
// single spaces or dashes, not touching other digits or letters, that pass
// the Luhn check. ok is false (and s returned as is, without allocating)
// when there is none.
func maskPANs(s string) (string, bool) {
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
		// A run glued to letters is an identifier ("ord4111..."), not a PAN.
		if (start > 0 && isAlnum(s[start-1])) || (end < len(s) && isAlnum(s[end])) {
			continue
		}
		if ms, me, ok := findPAN(s, start, end); ok {
			if out == nil {
				out = []byte(s)
			}
			maskDigits(out[ms:me])
			// Further card numbers in the same run are rare; scan the rest.
			for ms2, me2, ok2 := findPAN(s, me, end); ok2; ms2, me2, ok2 = findPAN(s, me2, end) {
				maskDigits(out[ms2:me2])
			}
		}
	}
	if out == nil {
		return s, false
	}
	return string(out), true
}

// findPAN looks in s[start:end] (digits and single separators) for a card
// number starting and ending at group boundaries. Checking windows at the
// boundaries catches "4111 1111 1111 1111 exp 12 30" styles as well as a
// number followed by another group ("4111111111111111 2030").
func findPAN(s string, start, end int) (int, int, bool) {
	for ms := start; ms < end; ms++ {
		if ms != start && !(isDigit(s[ms]) && !isDigit(s[ms-1])) {
			continue
		}
		var digits [19]byte
		nd := 0
		for me := ms; me < end; me++ {
			if !isDigit(s[me]) {
				continue
			}
			if nd == len(digits) {
				break // longer than any card number
			}
			digits[nd] = s[me] - '0'
			nd++
			atBoundary := me+1 == end || !isDigit(s[me+1])
			if nd >= 13 && atBoundary && luhn(digits[:nd]) {
				// Prefer the longest candidate from this start.
				best := me + 1
				for me2, nd2 := me+1, nd; me2 < end && nd2 < 19; me2++ {
					if !isDigit(s[me2]) {
						continue
					}
					digits[nd2] = s[me2] - '0'
					nd2++
					if (me2+1 == end || !isDigit(s[me2+1])) && luhn(digits[:nd2]) {
						best = me2 + 1
					}
				}
				return ms, best, true
			}
		}
	}
	return 0, 0, false
}

func maskDigits(b []byte) {
	// Keep the last four digits.
	keep := 4
	for i := len(b) - 1; i >= 0; i-- {
		if !isDigit(b[i]) {
			continue
		}
		if keep > 0 {
			keep--
			continue
		}
		b[i] = '*'
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
