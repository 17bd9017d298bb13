package idempotency_test

import (
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

// refSFString parses an RFC 8941 sf-string item without parameters.
func refSFString(v string) (string, bool) {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	out := []byte{}
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i >= len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", false
			}
			out = append(out, v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", false
			}
			return string(out), len(out) > 0
		case c < 0x20 || c > 0x7e:
			return "", false
		default:
			out = append(out, c)
		}
	}
	return "", false
}

// TestParseKeyStrictMatchesReference compares strict ParseKey with a
// straightforward RFC 8941 sf-string parser on every string of up to six
// characters over an alphabet of the characters that matter (quote,
// backslash, space, tab, DEL, a control character, separators).
func TestParseKeyStrictMatchesReference(t *testing.T) {
	alpha := []byte{'"', '\\', 'a', ' ', '\t', 0x7f, 0x1f, ',', ';', '~'}
	var rec func(prefix []byte, n int)
	rec = func(prefix []byte, n int) {
		s := string(prefix)
		got, err := idempotency.ParseKey(s, 0, true)
		want, ok := refSFString(s)
		if (err == nil) != ok || got != want {
			t.Errorf("%q: got %q %v, want %q %v", s, got, err, want, ok)
		}
		if n == 0 {
			return
		}
		for _, c := range alpha {
			rec(append(prefix, c), n-1)
		}
	}
	rec(nil, 6)
}
