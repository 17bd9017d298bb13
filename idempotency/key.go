package idempotency

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// DefaultMaxKeyLength is the default longest Idempotency-Key accepted, in bytes.
const DefaultMaxKeyLength = 255

// ParseKey parses the value of an Idempotency-Key header. The IETF draft
// makes it a structured-field string (RFC 8941): printable ASCII in double
// quotes, with \" and \\ as the only escapes; ParseKey returns the unquoted
// key. Unless strict, a bare token of visible ASCII (no quotes, backslashes,
// commas, semicolons or spaces), as many clients send, is accepted too. The
// key must be 1 to maxLen bytes long (maxLen <= 0: DefaultMaxKeyLength).
// Anything else returns an error matching ErrKeyInvalid.
func ParseKey(v string, maxLen int, strict bool) (string, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxKeyLength
	}
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	// Longer than any key of maxLen bytes can be written (2*maxLen+2: the
	// quotes, and every byte escaped). Tested as (len(v)-1)/2 > maxLen,
	// which holds exactly when len(v) > 2*maxLen+2 and, unlike it, cannot
	// overflow for a huge maxLen (math.MaxInt: no limit of ours).
	if (len(v)-1)/2 > maxLen {
		return "", invalidKey("too long")
	}
	var key string
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && plainString(v[1:len(v)-1]) {
		// The common case, no escapes: the key is a substring, no copy.
		key = v[1 : len(v)-1]
	} else if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		closed := false
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '\\':
				i++
				if i == len(v) || (v[i] != '"' && v[i] != '\\') {
					return "", invalidKey("bad escape")
				}
				b.WriteByte(v[i])
			case c == '"':
				if i != len(v)-1 {
					return "", invalidKey("text after the closing quote")
				}
				closed = true
			case c < 0x20 || c > 0x7e:
				return "", invalidKey("not printable ASCII")
			default:
				b.WriteByte(c)
			}
		}
		if !closed {
			return "", invalidKey("unterminated string")
		}
		key = b.String()
	} else {
		if strict {
			return "", invalidKey("not a structured-field string")
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= 0x20 || c > 0x7e || c == '"' || c == '\\' || c == ',' || c == ';' {
				return "", invalidKey("character not allowed in a bare key")
			}
		}
		key = v
	}
	if len(key) == 0 {
		return "", invalidKey("empty")
	}
	if len(key) > maxLen {
		return "", invalidKey("too long")
	}
	return key, nil
}

// plainString reports whether s is printable ASCII without quotes or
// backslashes: the inside of a structured-field string without escapes.
// Every replay parses its key, so eight bytes are checked at a time, and
// the rest with one table load each.
func plainString(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56 // one load
		if !plainWord(x) {
			return false
		}
	}
	for ; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

// plainWord reports whether each of x's eight bytes is plainByte: none is
// below 0x20, none is 0x7f or above, none is '"' or '\\'. Each test is
// exact as a whole-word answer (a borrow or carry between bytes only
// starts at a byte that fails a test).
func plainWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (x - 0x20*ones) &^ x // a byte < 0x20 (bytes >= 0x80 are caught by above)
	above := (x + ones) | x       // a byte >= 0x7f
	q := x ^ '"'*ones             // a zero byte where x has '"'
	b := x ^ '\\'*ones            // a zero byte where x has '\\'
	return (below|above|(q-ones)&^q|(b-ones)&^b)&highs == 0
}

// plainByte[c] says c may appear unescaped in a structured-field string:
// printable ASCII other than '"' and '\\'. It is never written after init.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func invalidKey(why string) error {
	e := errFrom(ErrKeyInvalid, "idempotency.key", nil)
	e.Detail += ": " + why
	return e
}

// Fingerprint returns a digest of parts (hex SHA-256 over each part with
// its length, so part boundaries cannot shift): what a Store compares to
// tell a retry of the same payload from a reuse of the key with another.
func Fingerprint(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}
