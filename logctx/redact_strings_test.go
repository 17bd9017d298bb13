package logctx

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// cardNumber is a named string type, as a domain model names its fields.
type cardNumber string

// Card numbers are masked in every string value, whatever its type: in a
// []string, an array of strings, a string of a named type and a slice or
// map of those, which were passed on as they are (the full PAN in clear),
// though the same text as a string attribute is masked.
func TestRedactCardInStringCollections(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m",
		"lines", []string{"ok", "card " + testPAN},
		"pair", [2]string{testPAN, "x"},
		"named", cardNumber(testPAN),
		"named_list", []cardNumber{testPAN},
		"named_map", map[string]cardNumber{"primary": testPAN},
		"nested", [][]string{{"pan " + testPAN}},
	)
	got := jsonLines(t, buf)[0]
	const masked = "************1111"
	want := map[string]any{
		"lines":      []any{"ok", "card " + masked},
		"pair":       []any{masked, "x"},
		"named":      masked,
		"named_list": []any{masked},
		"named_map":  map[string]any{"primary": masked},
		"nested":     []any{[]any{"pan " + masked}},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	tl, tbuf := newTextLogger(t, HandlerConfig{})
	tl.Info("m", "lines", []string{"card " + testPAN}, "named", cardNumber(testPAN))
	if out := tbuf.String(); strings.Contains(out, testPAN) {
		t.Errorf("leaked: %s", out)
	}
	// NoCardScan leaves them alone.
	nl, nbuf := newJSONLogger(t, HandlerConfig{NoCardScan: true})
	nl.Info("m", "lines", []string{testPAN})
	if !strings.Contains(nbuf.String(), testPAN) {
		t.Errorf("NoCardScan masked: %s", nbuf.String())
	}
}

// apiToken is a named string type that hides itself with a LogValue method.
type apiToken string

func (apiToken) LogValue() slog.Value { return slog.StringValue("[token]") }

// A string type with a LogValue method, in a slice, an array or a map, is
// resolved through LogValue as any LogValuer element is: reading it as a
// plain string (to scan it for card numbers) must not skip its LogValue,
// which would print the token in clear.
func TestRedactLogValuerStringsInCollections(t *testing.T) {
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m",
		"list", []apiToken{"tok-s3cret"},
		"pair", [1]apiToken{"tok-s3cret"},
		"by_name", map[string]apiToken{"primary": "tok-s3cret"},
	)
	if out := buf.String(); strings.Contains(out, "tok-s3cret") {
		t.Fatalf("token printed in clear: %s", out)
	}
	got := jsonLines(t, buf)[0]
	want := map[string]any{
		"list":    []any{"[token]"},
		"pair":    []any{"[token]"},
		"by_name": map[string]any{"primary": "[token]"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
}
