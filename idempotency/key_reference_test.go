package idempotency_test

import (
	"math"
	"math/rand/v2"
	"strings"
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

// TestParseKeyWordsMatchReference covers the eight-bytes-at-a-time check
// of longer keys, which the exhaustive test above never reaches: every
// byte value at every position of a 19-byte key (two words and a tail),
// and random keys of 8 to 40 bytes over the characters that matter.
func TestParseKeyWordsMatchReference(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, err := idempotency.ParseKey(s, 0, true)
		want, ok := refSFString(s)
		if (err == nil) != ok || got != want {
			t.Fatalf("%q: got %q %v, want %q %v", s, got, err, want, ok)
		}
	}
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 19; pos++ {
			k := []byte("abcdefghijklmnopqrs")
			k[pos] = byte(c)
			check(`"` + string(k) + `"`)
		}
	}
	alpha := []byte{'"', '\\', 'a', ' ', 0x7f, 0x7e, 0x1f, 0x20, 0x80, 0xff, 0x00, '!', 0x21, 0x5b, 0x5d}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		k := make([]byte, 8+rng.IntN(33))
		for i := range k {
			if rng.IntN(4) == 0 {
				k[i] = alpha[rng.IntN(len(alpha))]
			} else {
				k[i] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		check(`"` + string(k) + `"`)
	}
}

// TestParseKeyHugeMaxLen: MaxKeyLength = math.MaxInt ("no limit of ours")
// passes NewMiddleware's validation; ParseKey's quick "longer than any
// escaped key of maxLen" check must not overflow for it (2*maxLen+2 would
// wrap around and refuse every key), and must refuse nothing a key of
// maxLen can be written as.
func TestParseKeyHugeMaxLen(t *testing.T) {
	for _, maxLen := range []int{math.MaxInt, math.MaxInt - 1, math.MaxInt / 2, math.MaxInt/2 + 1} {
		for _, v := range []string{`"abc"`, `abc`, `"a\\b"`} {
			if _, err := idempotency.ParseKey(v, maxLen, false); err != nil {
				t.Fatalf("ParseKey(%q, %d): %v", v, maxLen, err)
			}
		}
	}
	// At the bound: a key of maxLen bytes, every one escaped, is 2*maxLen+2
	// bytes long.
	for maxLen := 1; maxLen <= 8; maxLen++ {
		v := `"` + strings.Repeat(`\\`, maxLen) + `"`
		if k, err := idempotency.ParseKey(v, maxLen, true); err != nil || k != strings.Repeat(`\`, maxLen) {
			t.Fatalf("ParseKey(%q, %d) = %q, %v: want the %d-byte key", v, maxLen, k, err, maxLen)
		}
		if _, err := idempotency.ParseKey(`"`+strings.Repeat(`\\`, maxLen+1)+`"`, maxLen, true); err == nil {
			t.Fatalf("a key of %d bytes accepted with maxLen %d", maxLen+1, maxLen)
		}
	}
}
