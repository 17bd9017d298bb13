package logctx

import (
	"net/url"
	"reflect"
	"testing"
)

// A pointer is written by the JSON handler as what it points to, however
// many pointers and interfaces lie on the way: only a pointer to a map or
// slice was walked, so a pointer to a pointer to a map, a pointer to an
// interface holding one, a pointer to a *url.URL (marshalled field by
// field, RawQuery included) and a pointer to a string were printed in
// clear.
func TestRedactThroughPointers(t *testing.T) {
	body := map[string]any{"token": "ptrptr-secret", "user": "ptrptr-visible"}
	pbody := &body
	var boxed any = map[string]any{"secret": "boxed-secret", "n": "boxed-visible"}
	u, _ := url.Parse("https://bob:url-password@db.example/x?access_token=url-token&page=2")
	note := "card " + testPAN
	var self any
	self = &self // a pointer cycle through an interface
	attrs := []any{
		"ptr_ptr", &pbody,
		"ptr_iface", &boxed,
		"ptr_url", &u,
		"ptr_string", &note,
		"ptrs", []**map[string]any{&pbody},
		"self", &self,
	}
	leaks := []string{"ptrptr-secret", "boxed-secret", "url-password", "url-token", testPAN}
	keeps := []string{"ptrptr-visible", "boxed-visible", "db.example", "page=2", "************1111"}
	checkBothHandlers(t, attrs, leaks, keeps, true)
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", attrs...)
	got := jsonLines(t, buf)[0]
	want := map[string]any{
		"ptr_ptr":    map[string]any{"token": DefaultRedacted, "user": "ptrptr-visible"},
		"ptr_iface":  map[string]any{"secret": DefaultRedacted, "n": "boxed-visible"},
		"ptr_string": "card ************1111",
		"self":       DefaultRedacted,
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	if body["token"] != "ptrptr-secret" || boxed.(map[string]any)["secret"] != "boxed-secret" || note != "card "+testPAN {
		t.Error("caller's values were modified")
	}
}
