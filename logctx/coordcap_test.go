package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const mib = 1 << 20

func truncated(prefix string, full int) string {
	return prefix + "...[truncated, " + strconv.Itoa(full) + " bytes]"
}

// TestHandlerCapsHugeCoordinates: an event subject or entity id of 1 MiB
// from a hostile or buggy producer is not printed in full on every line;
// each coordinate is cut to DefaultMaxCoordinateBytes with its length.
func TestHandlerCapsHugeCoordinates(t *testing.T) {
	huge := strings.Repeat("a", mib)
	ctx := WithCorrelationID(context.Background(), "c"+huge)
	ctx = WithOperation(ctx, "o"+huge)
	ctx = WithEntity(ctx, "k"+huge, "subject."+huge)
	ctx = With(ctx, slog.String("tenant", "t"+huge), slog.Int("n", 7))

	for _, grouped := range []bool{false, true} {
		l, buf := newJSONLogger(t, HandlerConfig{})
		if grouped {
			l = l.WithGroup("g")
		}
		l.InfoContext(ctx, "m", "amount", 5)
		if buf.Len() > 4*DefaultMaxCoordinateBytes+1024 {
			t.Fatalf("grouped=%v: line of %d bytes", grouped, buf.Len())
		}
		got := jsonLines(t, buf)[0]
		for key, val := range map[string]string{
			KeyCorrelationID: "c" + huge,
			KeyOperation:     "o" + huge,
			KeyEntityKind:    "k" + huge,
			KeyEntityID:      "subject." + huge,
			"tenant":         "t" + huge,
		} {
			want := truncated(val[:DefaultMaxCoordinateBytes], len(val))
			if got[key] != want {
				t.Errorf("grouped=%v: %s = %.80q… (%d bytes), want %.80q… (%d bytes)", grouped, key, got[key], len(got[key].(string)), want, len(want))
			}
		}
		if got["n"] != float64(7) {
			t.Errorf("grouped=%v: n = %v", grouped, got["n"])
		}
	}
}

type hugeValuer struct{}

func (hugeValuer) LogValue() slog.Value { return slog.StringValue(strings.Repeat("v", mib)) }

func TestHandlerCapsCoordinateBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		id   string
		want string
	}{
		{"at the limit: in full", 0, strings.Repeat("x", DefaultMaxCoordinateBytes), strings.Repeat("x", DefaultMaxCoordinateBytes)},
		{"one over", 0, strings.Repeat("x", DefaultMaxCoordinateBytes+1),
			truncated(strings.Repeat("x", DefaultMaxCoordinateBytes), DefaultMaxCoordinateBytes+1)},
		{"configured", 8, "pay_abcdef0123", truncated("pay_abcd", 14)},
		{"no limit", -1, strings.Repeat("y", mib), strings.Repeat("y", mib)},
		// "é" is 2 bytes: a cut at byte 7 would split the fourth.
		{"utf-8 boundary", 7, "ééééé", truncated("ééé", 10)},
		// The cut at byte 12 falls inside the card number: the digits
		// before it go too, not "4111 11" left in clear.
		{"inside a card number", 12, "id 4111 1111 1111 1111 rest",
			truncated("id", 27)},
		{"inside an id's digits", 6, "ord12345678", truncated("ord", 11)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, buf := newJSONLogger(t, HandlerConfig{MaxCoordinateBytes: tc.max})
			l.InfoContext(WithEntity(context.Background(), "payment", tc.id), "m")
			got, _ := jsonLines(t, buf)[0][KeyEntityID].(string)
			if got != tc.want {
				t.Errorf("entity_id = %.100q, want %.100q", got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("entity_id %q is not valid UTF-8", got)
			}
		})
	}
}

// TestHandlerCapsCardNumberAcrossCut: wherever the cut falls in a card
// number, no more than its last four digits are ever visible.
func TestHandlerCapsCardNumberAcrossCut(t *testing.T) {
	const card = "4111 1111 1111 1111"
	id := "ref " + card + " " + strings.Repeat("z", 64)
	for max := 1; max < len(id); max++ {
		l, buf := newJSONLogger(t, HandlerConfig{MaxCoordinateBytes: max})
		l.InfoContext(WithEntity(context.Background(), "payment", id), "m")
		got, _ := jsonLines(t, buf)[0][KeyEntityID].(string)
		digits := 0
		for _, c := range []byte(strings.TrimSuffix(got, "...[truncated, "+strconv.Itoa(len(id))+" bytes]")) {
			if isDigit(c) {
				digits++
			}
		}
		if digits > 4 {
			t.Errorf("max %d: entity_id %q shows %d digits of a card number", max, got, digits)
		}
	}
}

func TestHandlerCapsResolvedCoordinate(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.InfoContext(With(context.Background(), slog.Any("subject", hugeValuer{})), "m")
	got := jsonLines(t, buf)[0]["subject"]
	if want := truncated(strings.Repeat("v", DefaultMaxCoordinateBytes), mib); got != want {
		t.Errorf("subject = %.80q, want %.80q", got, want)
	}
}

// The record's own attributes are the caller's choice on that line: not cut.
func TestHandlerDoesNotCapRecordAttrs(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)}))
	long := strings.Repeat("b", 4*DefaultMaxCoordinateBytes)
	l.InfoContext(WithOperation(context.Background(), "op"), "m", "body", long)
	if got := jsonLines(t, &buf)[0]["body"]; got != long {
		t.Errorf("record attr cut: %.80q", got)
	}
}
