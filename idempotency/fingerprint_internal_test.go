package idempotency

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/contract"
)

// oldFingerprint is the middleware's fingerprint as first written, over
// Fingerprint's framing: the single-buffer version must give the same
// digests, or records stored before an upgrade would answer their retries
// with 422.
func oldFingerprint(r *http.Request, fpHeaders []string, body []byte) string {
	target := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	parts := [][]byte{[]byte(r.Method), []byte(target)}
	for _, h := range fpHeaders {
		parts = append(parts, []byte(h+":"+strings.Join(r.Header[h], "\x00")))
	}
	return Fingerprint(append(parts, body)...)
}

func TestMiddlewareFingerprintFraming(t *testing.T) {
	m := &Middleware{maxBody: 1 << 20, fpHeaders: []string{"X-Tenant", "Accept", "X-Absent"}}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	for _, tc := range []struct {
		method, target string
		header         http.Header
		body           []byte
	}{
		{"POST", "/payments", nil, []byte(`{"amount":1250}`)},
		{"POST", "/payments?x=1&y=%20", nil, nil},
		{"PATCH", "/a%2Fb/c%20d", http.Header{"X-Tenant": {"t1"}}, []byte("x")},
		{"POST", "/", http.Header{"X-Tenant": {"a", "b"}, "Accept": {""}}, big},
		{"POST", "/p?", http.Header{"Accept": {"a\x00b"}}, []byte{}},
	} {
		var body io.Reader
		if tc.body != nil {
			body = bytes.NewReader(tc.body)
		}
		r := httptest.NewRequest(tc.method, tc.target, body)
		for k, vs := range tc.header {
			r.Header[k] = vs
		}
		rb := getReqBuf()
		fp, at, err := m.readAndFingerprint(rb, r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rb.b[at:], tc.body) {
			t.Fatalf("%s %s: body %q, want %q", tc.method, tc.target, rb.b[at:], tc.body)
		}
		if want := oldFingerprint(r, m.fpHeaders, tc.body); fp != want {
			t.Fatalf("%s %s: fingerprint %s, want %s", tc.method, tc.target, fp, want)
		}
		putReqBuf(rb)
	}
}

// oneByteReader returns its data a byte at a time, then err.
type oneByteReader struct {
	data []byte
	err  error
}

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(o.data) == 0 {
		return 0, o.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.data[0]
	o.data = o.data[1:]
	return 1, nil
}

func TestReadBodyLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		cl      int64
		readErr error
		limit   int64
		code    string
	}{
		{"under", 9, -1, io.EOF, 10, ""},
		{"at limit", 10, -1, io.EOF, 10, ""},
		{"at limit, length known", 10, 10, io.EOF, 10, ""},
		{"over by one", 11, -1, io.EOF, 10, "idempotency.body_too_large"},
		{"declared over", 5, 11, io.EOF, 10, "idempotency.body_too_large"},
		{"read error", 5, -1, errors.New("reset"), 10, "idempotency.body_unreadable"},
		{"empty", 0, 0, io.EOF, 10, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("z"), tc.n)
			r := httptest.NewRequest("POST", "/", nil)
			r.Body = io.NopCloser(&oneByteReader{data: data, err: tc.readErr})
			r.ContentLength = tc.cl
			prefix := []byte("prefix")
			b, err := readBody(prefix, r, tc.limit)
			if tc.code != "" {
				if err == nil || contract.As(err).Code != tc.code {
					t.Fatalf("err %v, want code %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != "prefix"+string(data) {
				t.Fatalf("read %q", b)
			}
		})
	}
}

// TestPlainStringEveryByte checks plainString's table against its
// definition for every byte value, alone and inside a longer string.
func TestPlainStringEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
		if got := plainString(string([]byte{byte(c)})); got != want {
			t.Errorf("plainString(%#x) = %v, want %v", c, got, want)
		}
		if got := plainString("abc" + string([]byte{byte(c)}) + "xyz"); got != want {
			t.Errorf("plainString(abc %#x xyz) = %v, want %v", c, got, want)
		}
	}
	if !plainString("") {
		t.Error(`plainString("") = false, want true`)
	}
}
