package logctx

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
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

// A card number used as a map key is masked as one in a value is: the keys
// of maps were never scanned, so map[string]int{"4111 1111 1111 1111": 1}
// printed the card number in every map type, header and body.
func TestRedactCardNumbersInMapKeys(t *testing.T) {
	const card = "4111 1111 1111 1111"
	values := map[string]any{
		"ints":     map[string]int{card: 1},
		"strings":  map[string]string{card: "a"},
		"labels":   labels{card: "a"},
		"named":    map[cardNumber]int{card: 1},
		"header":   http.Header{card: {"a"}},
		"query":    url.Values{card: {"a"}},
		"lists":    map[string][]string{card: {"a"}},
		"body":     map[string]any{"cards": map[string]any{card: 1.0}},
		"in_list":  []map[string]int{{card: 1}},
		"body_ptr": &map[string]any{card: 1.0},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			l, buf := newJSONLogger(t, HandlerConfig{})
			l.Info("m", "v", v)
			tl, tbuf := newTextLogger(t, HandlerConfig{})
			tl.Info("m", "v", v)
			for _, out := range []string{buf.String(), tbuf.String()} {
				if strings.Contains(out, card) || !strings.Contains(out, "**** **** **** 1111") {
					t.Errorf("card number in a key not masked: %s", out)
				}
			}
			jsonLines(t, buf)
		})
	}
}

// Two keys may mask to one text: two cards with the same last four digits,
// or a key already written masked. Neither value is lost: the second key
// is written "… (2)".
func TestRedactMaskedMapKeysCollide(t *testing.T) {
	const a, b, masked = "4000 0000 0006 1111", "5500 0000 0008 1111", "**** **** **** 1111"
	want := map[string]bool{"1": true, "2": true, "3": true}
	body := map[string]any{a: "1", b: "2", masked: "3"}
	for name, v := range map[string]any{
		"ints":    map[string]int{a: 1, b: 2, masked: 3},
		"strings": map[string]string{a: "1", b: "2", masked: "3"},
		"header":  http.Header{a: {"1"}, b: {"2"}, masked: {"3"}},
		"body":    body,
		"labels":  labels{a: "1", b: "2", masked: "3"},
	} {
		t.Run(name, func(t *testing.T) {
			l, buf := newJSONLogger(t, HandlerConfig{})
			l.Info("m", "v", v)
			got := jsonLines(t, buf)[0]["v"].(map[string]any)
			seen := map[string]bool{}
			for k, x := range got {
				if strings.Contains(k, "0000") {
					t.Errorf("key %q not masked", k)
				}
				if l, ok := x.([]any); ok && len(l) == 1 {
					x = l[0]
				}
				seen[fmt.Sprint(x)] = true
			}
			if !reflect.DeepEqual(seen, want) {
				t.Errorf("got %v: values lost", got)
			}
			if _, ok := got[masked+" (2)"]; !ok {
				t.Errorf("got %v, want a key %q", got, masked+" (2)")
			}
		})
	}
	if len(body) != 3 || body[a] != "1" {
		t.Errorf("caller's map was modified: %v", body)
	}
}

// A map is walked whatever its key type: a map[int]string with a card
// number in it, or a map[int]map[string]any with a password, was passed on
// as it was and printed in clear by both handlers, though maps of strings
// are scanned. A key that is an interface holding a string (a
// map[any]any, as YAML decoders return) is read as a string key is.
func TestRedactMapsWithOtherKeys(t *testing.T) {
	type point struct{ X, Y int }
	for name, tc := range map[string]struct {
		v     any
		leaks []string
		json  any // the value as the JSON handler writes it; nil: not checked
	}{
		"int_string": {
			v:     map[int]string{7: "card " + testPAN, 8: "ok"},
			leaks: []string{testPAN},
			json:  map[string]any{"7": "card ************1111", "8": "ok"},
		},
		"int_body": {
			v:     map[int64]map[string]any{1: {"password": "int-key-secret", "n": 1.0}},
			leaks: []string{"int-key-secret"},
			json:  map[string]any{"1": map[string]any{"password": DefaultRedacted, "n": 1.0}},
		},
		"bool_header": {
			v:     map[bool]http.Header{true: {"Authorization": {"Bearer bool-key-secret"}}},
			leaks: []string{"bool-key-secret"}, // the JSON handler cannot write bool keys, logctx or not
		},
		"struct_key": {
			v:     map[point][]string{{1, 2}: {testPAN}},
			leaks: []string{testPAN},
		},
		"yaml": {
			v:     map[any]any{"password": "yaml-secret", 1: "card " + testPAN, "4111 1111 1111 1111": "k", "nested": map[any]any{"token": "yaml-token"}},
			leaks: []string{"yaml-secret", testPAN, "4111 1111 1111 1111", "yaml-token"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			l, buf := newJSONLogger(t, HandlerConfig{})
			l.Info("m", "v", tc.v)
			tl, tbuf := newTextLogger(t, HandlerConfig{})
			tl.Info("m", "v", tc.v)
			for _, out := range []string{buf.String(), tbuf.String()} {
				for _, leak := range tc.leaks {
					if strings.Contains(out, leak) {
						t.Errorf("%q leaked: %s", leak, out)
					}
				}
			}
			got := jsonLines(t, buf)[0]["v"]
			if tc.json != nil && !reflect.DeepEqual(got, tc.json) {
				t.Errorf("json v = %#v, want %#v", got, tc.json)
			}
		})
	}
	// A NaN key cannot be looked up: its entry, copied before it is
	// redacted, cannot be replaced, and the whole map is.
	tl, tbuf := newTextLogger(t, HandlerConfig{})
	tl.Info("m", "v", map[float64]string{math.NaN(): "card " + testPAN, 1: "a", 2: "b"})
	if out := tbuf.String(); strings.Contains(out, testPAN) {
		t.Errorf("card number under a NaN key leaked: %s", out)
	}
	// The text handler writes the map as fmt does.
	tl, tbuf = newTextLogger(t, HandlerConfig{})
	tl.Info("m", "v", map[any]any{"password": "x", 2: "b", "4111 1111 1111 1111": "k"})
	for _, want := range []string{"2:b", "**** **** **** 1111:k", "password:[REDACTED]"} {
		if !strings.Contains(tbuf.String(), want) {
			t.Errorf("got %s, want %s in it", tbuf.String(), want)
		}
	}
}

// stringerKey is a string type with a String method: a key of a
// map[fmt.Stringer]T.
type stringerKey string

func (k stringerKey) String() string { return string(k) }

// A key of an interface type with methods (a map[fmt.Stringer]T) that
// holds a string is read as a string key too, as the documentation says
// of interface keys. It was not: the key was read with reflect's
// SetIterKey into an any, which for such a key type stores the interface
// itself rather than the string it holds, so no key was ever seen, and
// the value under "password" and a card number in a key were printed in
// clear. A masked key keeps the key's type, or it could not go back in
// the map (a string is no fmt.Stringer).
func TestRedactMapsWithMethodInterfaceKeys(t *testing.T) {
	v := map[fmt.Stringer]string{
		stringerKey("password"):            "stringer-secret",
		stringerKey("4111 1111 1111 1111"): "k",
		stringerKey("env"):                 "prod",
	}
	tl, tbuf := newTextLogger(t, HandlerConfig{})
	tl.Info("m", "v", v)
	out := tbuf.String()
	for _, leak := range []string{"stringer-secret", "4111 1111 1111 1111"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	for _, want := range []string{"password:" + DefaultRedacted, "**** **** **** 1111:k", "env:prod"} {
		if !strings.Contains(out, want) {
			t.Errorf("got %s, want %s in it", out, want)
		}
	}
	if len(v) != 3 || v[stringerKey("password")] != "stringer-secret" {
		t.Errorf("caller's map was modified: %v", v)
	}
}

// Which of two keys that mask alike became "… (2)" followed the map's
// iteration order, which Go randomizes: the same call logged the same map
// as {"**** 1111": 1, "**** 1111 (2)": 2} on one line and the other way
// round on the next. Keys that mask alike are now taken in the order of
// their unmasked text, so a map is always written the same way.
func TestRedactMaskedMapKeysDeterministic(t *testing.T) {
	const a, b = "4000 0000 0006 1111", "5500 0000 0008 1111"
	const masked = "**** **** **** 1111"
	u, _ := url.Parse("https://example.com/x?" + url.Values{a: {"1"}, b: {"2"}}.Encode())
	for name, tc := range map[string]struct {
		v    any
		want string // in the text handler's line
	}{
		"ints":     {map[string]int{b: 2, a: 1}, masked + ":1 " + masked + " (2):2"},
		"strings":  {map[string]string{b: "2", a: "1"}, masked + ":1 " + masked + " (2):2"},
		"labels":   {labels{b: "2", a: "1"}, masked + ":1 " + masked + " (2):2"},
		"header":   {http.Header{b: {"2"}, a: {"1"}}, masked + ":[1] " + masked + " (2):[2]"},
		"body":     {map[string]any{b: "2", a: "1", "n": 0}, masked + ":1 " + masked + " (2):2"},
		"yaml":     {map[any]any{b: "2", a: "1", 7: "x"}, masked + ":1 " + masked + " (2):2"},
		"stringer": {map[fmt.Stringer]string{stringerKey(b): "2", stringerKey(a): "1"}, masked + ":1 " + masked + " (2):2"},
		"url":      {u, "x?%2A%2A%2A%2A+%2A%2A%2A%2A+%2A%2A%2A%2A+1111=1&%2A%2A%2A%2A+%2A%2A%2A%2A+%2A%2A%2A%2A+1111+%282%29=2"},
	} {
		t.Run(name, func(t *testing.T) {
			var first string
			for i := range 64 {
				l, buf := newTextLogger(t, HandlerConfig{})
				l.Info("m", "v", tc.v)
				out := buf.String()
				out = out[strings.Index(out, " v="):]
				if i == 0 {
					first = out
					if !strings.Contains(out, tc.want) {
						t.Fatalf("got %s, want %s in it", out, tc.want)
					}
					if strings.Contains(out, "0000") {
						t.Fatalf("card number leaked: %s", out)
					}
				} else if out != first {
					t.Fatalf("logged %d times, the line changed:\n%s\n%s", i+1, first, out)
				}
			}
		})
	}
}
