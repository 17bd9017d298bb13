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
	if len(v) > 2*maxLen+2 { // longer than any escaped key of maxLen
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
// One table load per byte: every replay parses its key.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
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
