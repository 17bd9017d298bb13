package resultcodec

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

func TestResultRoundTrip(t *testing.T) {
	cases := []idempotency.Result{
		{},
		{Body: []byte("opaque value")},
		{StatusCode: 201, Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"a", "", "c"}}, Body: []byte(`{"id":"pay_1"}`)},
		{StatusCode: 204, Header: http.Header{"Empty": {}}},
		{StatusCode: 200, Body: bytes.Repeat([]byte{0, 0xff, '{', '}'}, 4096)},
	}
	for i, r := range cases {
		got, err := Decode(Encode(r))
		if err != nil {
			t.Fatalf("case %d: decode: %v", i, err)
		}
		if got.StatusCode != r.StatusCode || !bytes.Equal(got.Body, r.Body) || !headerEqual(got.Header, r.Header) {
			t.Fatalf("case %d: got %+v, want %+v", i, got, r)
		}
	}
}

func headerEqual(a, b http.Header) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestEncodeIsDeterministic(t *testing.T) {
	r := idempotency.Result{StatusCode: 200, Header: http.Header{"B": {"2"}, "A": {"1"}, "C": {"3"}}}
	first := Encode(r)
	for range 20 {
		if !bytes.Equal(Encode(r), first) {
			t.Fatal("encoding depends on map order")
		}
	}
	if first[0] != resultVersion {
		t.Fatalf("first byte %d, want version %d", first[0], resultVersion)
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	good := Encode(idempotency.Result{StatusCode: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x")})
	cases := map[string][]byte{
		"empty":            nil,
		"unknown version":  append([]byte{9}, good[1:]...),
		"truncated":        good[:4],
		"status over 999":  {1, 0xe8, 0x07, 0},
		"huge field count": {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"string overruns":  {1, 0, 1, 0x7f, 'a'},
		"bad varint":       {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeResult: decoding any bytes returns a result or ErrCorrupt, never
// panics, and whatever decodes re-encodes to a value that decodes the same.
func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(Encode(idempotency.Result{StatusCode: 201, Header: http.Header{"K": {"v1", "v2"}}, Body: []byte("body")}))
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		again, err := Decode(Encode(r))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.StatusCode != r.StatusCode || !bytes.Equal(again.Body, r.Body) || !headerEqual(again.Header, r.Header) {
			t.Fatalf("round trip changed the result: %+v vs %+v", r, again)
		}
	})
}
