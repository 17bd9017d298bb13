package logctx

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"strconv"

	"github.com/sadpath/sadpath/contract"
)

// MaxCorrelationIDLen is the longest correlation id accepted from outside.
const MaxCorrelationIDLen = 128

// CodeCorrelationIDInvalid is the contract code of the error returned for a
// correlation id that is empty, too long or outside the safe charset.
const CodeCorrelationIDInvalid = "correlation_id.invalid"

// idChars marks the bytes allowed in a correlation id: ASCII letters,
// digits and - _ . : — enough for UUIDs, ULIDs, hex trace ids and most
// vendor request ids, and nothing that can break a log line, a header or a
// file name (no spaces, quotes, slashes, control or non-ASCII bytes).
var idChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-_.:" {
		t[c] = true
	}
	return t
}()

// checkID reports why id is not a valid correlation id ("" when it is).
// It never allocates on success; the reason names a position, never the
// content, so a hostile id is not echoed into the log.
func checkID(id string) string {
	if id == "" {
		return "empty"
	}
	if len(id) > MaxCorrelationIDLen {
		return "longer than " + strconv.Itoa(MaxCorrelationIDLen) + " bytes (" + strconv.Itoa(len(id)) + ")"
	}
	for i := 0; i < len(id); i++ {
		if !idChars[id[i]] {
			return "byte 0x" + strconv.FormatUint(uint64(id[i]), 16) + " at offset " + strconv.Itoa(i) + " is outside [A-Za-z0-9._:-]"
		}
	}
	return ""
}

// ValidateCorrelationID returns nil when id may be used as a correlation
// id: 1 to 128 bytes of ASCII letters, digits, '-', '_', '.' and ':'.
// Otherwise it returns a *contract.Error of KindInvalid with Code
// "correlation_id.invalid" whose Detail says why without quoting the id.
func ValidateCorrelationID(id string) error {
	if reason := checkID(id); reason != "" {
		return contract.New(contract.KindInvalid, "logctx", "correlation id: "+reason).WithCode(CodeCorrelationIDInvalid)
	}
	return nil
}

// NewCorrelationID returns a fresh correlation id: 128 random bits from
// crypto/rand as 32 lowercase hex characters, the shape of a W3C trace id.
func NewCorrelationID() string {
	id, _ := newID(nil)
	return id
}

// newID returns 16 bytes from r (crypto/rand when nil), hex-encoded.
func newID(r io.Reader) (string, error) {
	if r == nil {
		return randomID(), nil
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	return hexID(&b), nil
}

// randomID reads crypto/rand directly, which never fails and keeps the
// buffer on the stack (an io.Reader would move it to the heap).
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hexID(&b)
}

func hexID(b *[16]byte) string {
	var s [32]byte
	hex.Encode(s[:], b[:])
	return string(s[:])
}

// traceIDFromTraceparent returns the trace-id of a W3C traceparent header
// value ("00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>"), or ""
// when the value is not a valid traceparent. The result is a substring of
// v: no allocation.
func traceIDFromTraceparent(v string) string {
	// version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return ""
	}
	if !lowerHex(v[0:2]) || v[0:2] == "ff" {
		return ""
	}
	// Version 00 has exactly 55 bytes; later versions may append fields
	// after a '-'.
	if len(v) > 55 && (v[0:2] == "00" || v[55] != '-') {
		return ""
	}
	traceID, parentID, flags := v[3:35], v[36:52], v[53:55]
	if !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return ""
	}
	if allZero(traceID) || allZero(parentID) {
		return ""
	}
	return traceID
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
