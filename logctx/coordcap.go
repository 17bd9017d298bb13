package logctx

import (
	"strconv"
	"unicode/utf8"
)

// DefaultMaxCoordinateBytes is the default of
// HandlerConfig.MaxCoordinateBytes: the longest coordinate value the
// Handler writes in full. Ids, operation names and event subjects are far
// shorter; a value this long is a hostile or buggy producer's.
const DefaultMaxCoordinateBytes = 256

// Short returns s as the Handler writes a coordinate value under the
// default limit: in full up to DefaultMaxCoordinateBytes, else cut (see
// HandlerConfig.MaxCoordinateBytes) and followed by
// "...[truncated, N bytes]". For packages that log a coordinate as an
// attribute of the line itself (an event's subject on an ordering decision),
// which the Handler does not cut: a value of normal size costs one length
// check and is returned as it is.
func Short(s string) string {
	if len(s) > DefaultMaxCoordinateBytes {
		return capCoordinate(s, DefaultMaxCoordinateBytes)
	}
	return s
}

// coord returns s, or s cut by capCoordinate when it is longer than the
// limit: for a value of normal size, one length check.
func (r *redactor) coord(s string) string {
	if len(s) > r.maxCoord {
		return capCoordinate(s, r.maxCoord)
	}
	return s
}

// capCoordinate returns the first at most max bytes of s (len(s) > max)
// followed by "...[truncated, N bytes]", N being len(s). The cut moves back
// to a UTF-8 boundary, and then before any digits, spaces and dashes
// around it, so it never falls inside a card number: scanned for card
// numbers afterwards, the kept bytes are masked exactly as they are in the
// whole value, and no card number is cut to a shorter run of digits that
// would escape the mask.
func capCoordinate(s string, max int) string {
	c := max
	for c > 0 && !utf8.RuneStart(s[c]) {
		c--
	}
	for c > 0 && (isDigit(s[c-1]) || s[c-1] == ' ' || s[c-1] == '-') {
		c--
	}
	return s[:c] + "...[truncated, " + strconv.Itoa(len(s)) + " bytes]"
}
