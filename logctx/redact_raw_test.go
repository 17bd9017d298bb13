package logctx

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A json.RawMessage (contract.Event.Data, an undecoded request body) is
// written inline by the JSON handler: the values under its secret keys,
// at any level, were printed in clear, though the same document decoded
// into a map[string]any is redacted.
func TestRedactSecretKeysInRawMessage(t *testing.T) {
	raw := json.RawMessage(`{"user":"ann","password":"raw-secret","card":{"cvv":"987","pan":4111111111111111},` +
		`"items":[{"access_token":"item-secret","n":12.50}],"note":"card ` + testPAN + `","big":12345678901234567890}`)
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "data", raw, "nested", map[string]any{"body": raw})
	out := buf.String()
	for _, leak := range []string{"raw-secret", "987", "item-secret", testPAN} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	want := map[string]any{
		"user": "ann", "password": DefaultRedacted, "card": map[string]any{"cvv": DefaultRedacted, "pan": DefaultRedacted},
		"items": []any{map[string]any{"access_token": DefaultRedacted, "n": 12.5}},
		"note":  "card ************1111", "big": 12345678901234567890.0,
	}
	got := jsonLines(t, buf)[0]
	if !reflect.DeepEqual(got["data"], want) {
		t.Errorf("data = %#v, want %#v", got["data"], want)
	}
	if !reflect.DeepEqual(got["nested"], map[string]any{"body": want}) {
		t.Errorf("nested = %#v", got["nested"])
	}
	// The digits of a large number are kept as they were.
	if !strings.Contains(out, "12345678901234567890") {
		t.Errorf("number rewritten: %s", out)
	}
	// Text handler: the same, as text.
	tl, tbuf := newTextLogger(t, HandlerConfig{})
	tl.Info("m", "data", raw)
	for _, leak := range []string{"raw-secret", "item-secret", testPAN} {
		if strings.Contains(tbuf.String(), leak) {
			t.Errorf("text: %q leaked: %s", leak, tbuf.String())
		}
	}
	// A key spelled with an escape is still a key; a secret key in a
	// document that does not parse drops the document rather than leak it.
	l, buf = newJSONLogger(t, HandlerConfig{})
	l.Info("m", "escaped", json.RawMessage(`{"pass\u0077ord":"esc-secret"}`), "broken", json.RawMessage(`{"password":"broken-secret",`))
	got = jsonLines(t, buf)[0]
	if !reflect.DeepEqual(got["escaped"], map[string]any{"password": DefaultRedacted}) || got["broken"] != DefaultRedacted {
		t.Errorf("escaped = %#v, broken = %#v", got["escaped"], got["broken"])
	}
	// A document without a secret key is passed on byte for byte.
	l, buf = newJSONLogger(t, HandlerConfig{})
	l.Info("m", "data", json.RawMessage(`{"b":1,  "a":"password"}`))
	if !strings.Contains(buf.String(), `"data":{"b":1,"a":"password"}`) {
		t.Errorf("clean document rewritten: %s", buf.String())
	}
}

// A json.RawMessage inside a container the redactor walks by reflection
// (map[string]json.RawMessage, what a partial decode of a body gives, or
// a []json.RawMessage) has the values under its secret keys replaced as
// one on its own does: scanned for card numbers only, it was printed in
// clear when it had none.
func TestRedactSecretKeysInRawMessageContainers(t *testing.T) {
	raw := json.RawMessage(`{"password":"raw-secret","n":1}`)
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m",
		"fields", map[string]json.RawMessage{"body": raw, "id": json.RawMessage(`7`)},
		"list", []json.RawMessage{raw},
		"pair", [1]json.RawMessage{raw},
		"ptr", &raw,
	)
	out := buf.String()
	if strings.Contains(out, "raw-secret") {
		t.Fatalf("secret printed in clear: %s", out)
	}
	doc := map[string]any{"password": DefaultRedacted, "n": 1.0}
	got := jsonLines(t, buf)[0]
	want := map[string]any{
		"fields": map[string]any{"body": doc, "id": 7.0},
		"list":   []any{doc},
		"pair":   []any{doc},
		"ptr":    doc,
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
}
