package logctx

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// An slog.Attr or slog.Value passed as a value (slog.Any("creds",
// slog.String("password", p)), an Attr in a []any, a group Value in a
// map) was passed on as it was: the text handler prints them with their
// String methods, "password=…" in clear, and the JSON handler as
// {"Key":"password","Value":{}}. They are now redacted as the attribute or
// value they are, and written as a map or as the value.
func TestRedactSlogAttrsAndValuesAsValues(t *testing.T) {
	attrs := []any{
		"creds", slog.String("password", "attr-secret"),
		"list", []any{slog.String("token", "list-secret"), slog.Int("n", 7)},
		"group", map[string]any{"v": slog.GroupValue(slog.String("api_key", "group-secret"), slog.String("env", "prod"))},
		"values", []slog.Value{slog.StringValue("card " + testPAN), slog.IntValue(3)},
		"by_name", map[string]slog.Attr{"a": slog.String("secret", "map-secret")},
		"valuer", []any{slog.AnyValue(maskedCard{Holder: "Ann", Number: testPAN})},
	}
	leaks := []string{"attr-secret", "list-secret", "group-secret", "map-secret", testPAN}
	checkBothHandlers(t, attrs, leaks, nil, false)
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", attrs...)
	got := jsonLines(t, buf)[0]
	want := map[string]any{
		"creds":   map[string]any{"password": DefaultRedacted},
		"list":    []any{map[string]any{"token": DefaultRedacted}, map[string]any{"n": 7.0}},
		"group":   map[string]any{"v": map[string]any{"api_key": DefaultRedacted, "env": "prod"}},
		"values":  []any{"card ************1111", 3.0},
		"by_name": map[string]any{"a": map[string]any{"secret": DefaultRedacted}},
		"valuer":  []any{map[string]any{"holder": "Ann", "number": "************1111", "pin": DefaultRedacted}},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
}

// A group found as a value (an slog.Value or LogValuer in a []any or a
// map, an Attr in one) is written as a map, and a map holds one value per
// key: two attrs of the group with one key — or one key in the group and
// in a group inlined into it — became one entry, and the other value
// vanished from the line, where slog's own handlers print both. Every
// value is now kept, a repeated key written "key (2)", "key (3)"…, as map
// keys that mask alike are; a repeated secret key has its value replaced
// though the suffix hides the key from an exact match ("pin (2)"), and a
// repeated card number in a key is still masked.
func TestRedactGroupAsMapKeepsRepeatedKeys(t *testing.T) {
	const card, masked = "4000 0000 0006 1111", "**** **** **** 1111"
	attrs := []any{
		"same", []any{slog.GroupValue(slog.String("x", "x-1"), slog.String("x", "x-2"), slog.String("x (2)", "x-3"))},
		"inline", []any{slog.GroupValue(slog.String("y", "y-1"), slog.Group("", slog.String("y", "y-2")))},
		"cards", []any{slog.GroupValue(slog.String(card, "c-1"), slog.String(card, "c-2"), slog.String("5500 0000 0008 1111", "c-3"))},
		"pins", []any{slog.GroupValue(slog.String("pin", "pin-secret-1"), slog.String("pin", "pin-secret-2"))},
		"groups", map[string]any{"v": slog.GroupValue(slog.Group("g", slog.Int("a", 1)), slog.Group("g", slog.Int("b", 2)))},
		"zero", []any{slog.GroupValue(slog.Attr{}, slog.Attr{}, slog.Int("n", 1))},
	}
	leaks := []string{"pin-secret-1", "pin-secret-2", "0000 0006", "0000 0008"}
	keeps := []string{"x-1", "x-2", "x-3", "y-1", "y-2", "c-1", "c-2", "c-3"}
	checkBothHandlers(t, attrs, leaks, keeps, false)

	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", attrs...)
	got := jsonLines(t, buf)[0]
	want := map[string]any{
		"same":   []any{map[string]any{"x": "x-1", "x (2)": "x-3", "x (3)": "x-2"}},
		"inline": []any{map[string]any{"y": "y-1", "y (2)": "y-2"}},
		"pins":   []any{map[string]any{"pin": DefaultRedacted, "pin (2)": DefaultRedacted}},
		"groups": map[string]any{"v": map[string]any{"g": map[string]any{"a": 1.0}, "g (2)": map[string]any{"b": 2.0}}},
		"zero":   []any{map[string]any{"n": 1.0}},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	cards := got["cards"].([]any)[0].(map[string]any)
	seen := map[any]bool{}
	for k, v := range cards {
		if !strings.HasPrefix(k, masked) {
			t.Errorf("key %q not masked", k)
		}
		seen[v] = true
	}
	if len(cards) != 3 || len(seen) != 3 {
		t.Errorf("cards = %v: values lost", cards)
	}
}
