package logctx

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// labels is a named map[string]string, as label and tag sets often are.
type labels map[string]string

// The values under secret keys of a string-keyed map are redacted whatever
// the map's type: a map[string]int, a named map type and a pointer to a map
// were passed on as they are (a PIN, a CVV, an API key in clear), though
// the same key as an attribute, or in a map[string]any, is redacted.
func TestRedactKeysOfOtherMaps(t *testing.T) {
	body := map[string]any{"password": "ptr-secret", "user": "ann"}
	hs := []http.Header{{"Authorization": {"Bearer ptr-hdr-secret"}}}
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m",
		"form", map[string]int{"pin": 987654, "cvv": 321, "amount": 1250},
		"labels", labels{"api_key": "labels-secret", "env": "prod"},
		"flags", map[string]bool{"session": true, "debug": false},
		"body_ptr", &body,
		"headers_ptr", &hs,
		"nil_ptr", (*map[string]any)(nil),
	)
	got := jsonLines(t, buf)[0]
	want := map[string]any{
		"form":        map[string]any{"pin": DefaultRedacted, "cvv": DefaultRedacted, "amount": 1250.0},
		"labels":      map[string]any{"api_key": DefaultRedacted, "env": "prod"},
		"flags":       map[string]any{"session": DefaultRedacted, "debug": false},
		"body_ptr":    map[string]any{"password": DefaultRedacted, "user": "ann"},
		"headers_ptr": []any{map[string]any{"Authorization": []any{DefaultRedacted}}},
		"nil_ptr":     nil,
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	tl, tbuf := newTextLogger(t, HandlerConfig{})
	tl.Info("m", "form", map[string]int{"pin": 987654}, "body_ptr", &body)
	for _, leak := range []string{"987654", "ptr-secret"} {
		if out := tbuf.String(); strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	if body["password"] != "ptr-secret" {
		t.Error("caller's map was modified")
	}
}
