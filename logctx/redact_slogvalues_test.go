package logctx

import (
	"log/slog"
	"reflect"
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
