package logctx

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Slices, arrays and string-keyed maps of the containers the Handler
// redacts are walked like them: passed on as is, both handlers printed
// every element in full (Authorization headers, cookies, URL passwords and
// tokens, decoded bodies' passwords).
func TestRedactSlicesOfContainers(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://api.example/pay?access_token=req-query-secret", nil)
	req.Header.Set("Authorization", "Bearer req-secret")
	req.Header.Set("Cookie", "sid=req-cookie-secret")
	req.Header.Set("X-Visible", "req-visible")
	u, _ := url.Parse("https://bob:url-password@db.example/x?access_token=url-token&page=2")
	hdr := http.Header{"Authorization": {"Bearer hdr-secret"}, "Accept": {"hdr-visible"}}
	urlErr := &url.Error{Op: "Get", URL: "https://api.example/x?api_key=err-secret", Err: errors.New("dial tcp: refused")}
	attrs := []any{
		"headers", []http.Header{hdr, {"Accept": {"second-visible"}}},
		"header_array", [2]http.Header{hdr},
		"header_ptrs", []*http.Header{&hdr},
		"bodies", []map[string]any{{"password": "map-secret", "user": "map-visible"}},
		"labels", []map[string]string{{"api_key": "labels-secret", "env": "labels-visible"}},
		"requests", []*http.Request{req, nil},
		"urls", []url.URL{*u},
		"url_ptrs", []*url.URL{u},
		"errs", []error{urlErr},
		"nested", [][]any{{map[string]any{"token": "nested-secret", "n": "nested-visible"}}},
		"by_name", map[string]http.Header{"upstream": hdr},
		"by_name_urls", map[string]*url.URL{"primary": u},
		"cards", []maskedCard{{Holder: "Ann", Number: testPAN}},
		"empty", []http.Header{}, "none", []*url.URL(nil),
	}
	leaks := []string{"req-secret", "req-cookie-secret", "req-query-secret", "url-password", "url-token",
		"hdr-secret", "map-secret", "labels-secret", "err-secret", "nested-secret", testPAN, "1234"}
	keeps := []string{"req-visible", "hdr-visible", "second-visible", "map-visible", "labels-visible",
		"db.example", "page=2", "dial tcp", "nested-visible", "upstream", "primary", "Ann", "************1111"}
	checkBothHandlers(t, attrs, leaks, keeps, false)
	if hdr.Get("Authorization") != "Bearer hdr-secret" || req.Header.Get("Cookie") != "sid=req-cookie-secret" {
		t.Error("caller's values were modified")
	}
	// The JSON form: a slice is written as a list of the redacted elements.
	l, buf := newJSONLogger(t, HandlerConfig{})
	l.Info("m", "headers", []http.Header{hdr}, "bodies", []map[string]any{{"password": "x", "n": 1}})
	got := jsonLines(t, buf)[0]
	wantH := []any{map[string]any{"Authorization": []any{DefaultRedacted}, "Accept": []any{"hdr-visible"}}}
	wantB := []any{map[string]any{"password": DefaultRedacted, "n": 1.0}}
	if !reflect.DeepEqual(got["headers"], wantH) || !reflect.DeepEqual(got["bodies"], wantB) {
		t.Errorf("headers = %v, bodies = %v; want %v, %v", got["headers"], got["bodies"], wantH, wantB)
	}
}

// anyList is a slice of its own: one that contains itself is cut where it
// recurs, as a []any is.
type anyList []any

// headerList nests by type: a headerList of headerLists, to the depth bound.
type headerList []any

func TestRedactSlicesOfContainersBounded(t *testing.T) {
	l := anyList{nil, nil, map[string]any{"token": "cycle-secret"}}
	l[0], l[1] = l, l
	var deep any = []http.Header{{"Authorization": {"Bearer deep-secret"}}}
	for range 3 * maxWalkDepth {
		deep = []any{headerList{deep}}
	}
	lg, buf := newJSONLogger(t, HandlerConfig{})
	lg.Info("m", "l", l, "deep", deep)
	out := buf.String()
	for _, leak := range []string{"cycle-secret", "deep-secret"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked: %s", leak, out)
		}
	}
	want := []any{DefaultRedacted, DefaultRedacted, map[string]any{"token": DefaultRedacted}}
	if got := jsonLines(t, buf)[0]["l"]; !reflect.DeepEqual(got, want) {
		t.Errorf("l = %v, want %v", got, want)
	}
}

// Card numbers in the []byte or json.RawMessage elements of a slice or map
// are masked, and the elements stay bytes.
func TestRedactCardInSliceOfBytes(t *testing.T) {
	r := newRedactor(HandlerConfig{})
	v, ok := r.any(map[string][][]byte{"batch": {[]byte("pan " + testPAN), []byte("none")}})
	want := map[string]any{"batch": []any{[]byte("pan ************1111"), []byte("none")}}
	if !ok || !reflect.DeepEqual(v.Any(), want) {
		t.Errorf("any = %#v, %v; want %#v", v.Any(), ok, want)
	}
	if _, ok := newRedactor(HandlerConfig{NoCardScan: true}).any([][]byte{[]byte(testPAN)}); ok {
		t.Error("NoCardScan: a [][]byte changed")
	}
}
