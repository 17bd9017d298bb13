package idempotency

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/contract"
)

// oldFingerprint is the middleware's fingerprint as first written, over
// Fingerprint's framing: the single-buffer version must give the same
// digests, or records stored before an upgrade would answer their retries
// with 422. The target is the request target as received (RequestURI),
// which for a request whose URL nothing rewrote is the escaped path and
// query the first version hashed; a header present with one empty value is
// "Name=", apart from an absent one ("Name:", as first written).
func oldFingerprint(r *http.Request, fpHeaders []string, body []byte) string {
	target := r.RequestURI
	if target == "" {
		target = r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
	}
	parts := [][]byte{[]byte(r.Method), []byte(target)}
	for _, h := range fpHeaders {
		if vs := r.Header[h]; len(vs) == 1 && vs[0] == "" {
			parts = append(parts, []byte(h+"="))
			continue
		}
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
		for _, inProcess := range []bool{false, true} {
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
			}
			r := httptest.NewRequest(tc.method, tc.target, body)
			if inProcess {
				r.RequestURI = "" // as http.NewRequest leaves it
			}
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
				t.Fatalf("%s %s (in process %v): fingerprint %s, want %s", tc.method, tc.target, inProcess, fp, want)
			}
			putReqBuf(rb)
		}
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
		// Bodies past the first room set aside, which grow the buffer as
		// they arrive: the limit stays exact.
		{"large, at limit", 100_000, -1, io.EOF, 100_000, ""},
		{"large, at limit, length known", 100_000, 100_000, io.EOF, 100_000, ""},
		{"large, over by one", 100_001, -1, io.EOF, 100_000, "idempotency.body_too_large"},
		{"large, over by one, length known short", 100_001, 50_000, io.EOF, 100_000, "idempotency.body_too_large"},
		{"longer than declared", 70_000, 40_000, io.EOF, 100_000, ""},
		{"shorter than declared", 40_000, 70_000, io.EOF, 100_000, ""},
		{"no limit", 70_000, 70_000, io.EOF, math.MaxInt64, ""},
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

// TestReadBodyRoomFollowsArrivedBytes: the room readBody sets aside before
// a body arrives is bounded whatever Content-Length declares (the client's
// word: a request declaring a large body and sending nothing must not pin
// that much memory), and grows with the bytes that do arrive, to no more
// than twice them and, for a body as long as declared, to the declared
// length exactly (one read past it finds EOF).
func TestReadBodyRoomFollowsArrivedBytes(t *testing.T) {
	prefix := []byte("prefix")
	for _, tc := range []struct {
		name     string
		n        int
		cl       int64
		limit    int64
		maxCap   int
		exactCap bool
	}{
		{"declared 64 MiB, 2 bytes sent", 2, 64 << 20, 64 << 20, len(prefix) + maxBodyPresize + 1, false},
		{"declared MaxInt64, 2 bytes sent", 2, math.MaxInt64, math.MaxInt64, len(prefix) + maxBodyPresize + 1, false},
		{"declared and sent 1000", 1000, 1000, 1 << 20, len(prefix) + 1001, true},
		{"declared and sent 100 KiB", 100 << 10, 100 << 10, 1 << 20, len(prefix) + 100<<10 + 1, true},
		{"declared and sent 1 MiB", 1 << 20, 1 << 20, 1 << 20, len(prefix) + 1<<20 + 1, true},
		{"declared 1 MiB, 100 KiB sent", 100 << 10, 1 << 20, 1 << 20, len(prefix) + 2*100<<10 + 1, false},
		{"unknown length, 100 KiB", 100 << 10, -1, 1 << 20, len(prefix) + 2*100<<10 + 1, false},
		{"unknown length, no limit", 100 << 10, -1, math.MaxInt64, len(prefix) + 2*100<<10 + 1, false},
		{"declared MaxInt64, no limit, 100 KiB sent", 100 << 10, math.MaxInt64, math.MaxInt64, len(prefix) + 2*100<<10 + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("z"), tc.n)
			r := httptest.NewRequest("POST", "/", nil)
			r.Body = io.NopCloser(&chunkReader{data: data, chunk: 4096})
			r.ContentLength = tc.cl
			b, err := readBody(slices.Clip(append([]byte(nil), prefix...)), r, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[:len(prefix)], prefix) || !bytes.Equal(b[len(prefix):], data) {
				t.Fatalf("read %d bytes, want %d", len(b)-len(prefix), tc.n)
			}
			if cap(b) > tc.maxCap || (tc.exactCap && cap(b) != tc.maxCap) {
				t.Fatalf("buffer of cap %d for %d bytes declared as %d, want at most %d (exactly: %v)", cap(b), tc.n, tc.cl, tc.maxCap, tc.exactCap)
			}
		})
	}
}

// chunkReader returns its data chunk bytes at a time, then io.EOF.
type chunkReader struct {
	data  []byte
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
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
