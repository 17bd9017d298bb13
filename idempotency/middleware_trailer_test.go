package idempotency_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

// Trailer fields the handler sets — declared in a Trailer header, or
// through http.TrailerPrefix — are stored and replayed as header fields
// are: those named in ReplayHeaders, with the Trailer header the first
// response declared. Over HTTP/1.1 and HTTP/2, the replay's trailers are
// the first response's, less the ones not to replay.
func TestMiddlewareReplaysTrailers(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		env := newMW(t, func(c *idempotency.MiddlewareConfig) {
			c.ReplayHeaders = append(idempotency.DefaultReplayHeaders(), "X-Checksum", "X-Count", "X-Early")
		})
		inner := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env.runs.Add(1)
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Trailer", "X-Checksum, X-Signature")
			w.Header().Set(http.TrailerPrefix+"X-Early", "e") // announced with the header
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "paid")
			w.Header().Set("X-Checksum", "c1")
			w.Header().Add("X-Checksum", "c2")
			w.Header().Set("X-Signature", "per-response") // declared, not to replay
			w.Header().Set(http.TrailerPrefix+"X-Count", "1")
		}))
		srv := httptest.NewUnstartedServer(inner)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		send := func() (*http.Response, string) {
			t.Helper()
			r, _ := http.NewRequest("POST", srv.URL+"/pay", strings.NewReader("{}"))
			r.Header.Set("X-Caller", "alice")
			r.Header.Set("Idempotency-Key", `"k"`)
			resp, err := srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body) // trailers arrive after the body
			if h2 != (resp.ProtoMajor == 2) {
				t.Fatalf("test premise: protocol %s", resp.Proto)
			}
			return resp, string(b)
		}
		first, firstBody := send()
		wantFirst := http.Header{"X-Checksum": {"c1", "c2"}, "X-Signature": {"per-response"}, "X-Count": {"1"}, "X-Early": {"e"}}
		if !maps.EqualFunc(first.Trailer, wantFirst, equalValues) {
			t.Fatalf("HTTP/2 %v: test premise: first response trailers %v, want %v", h2, first.Trailer, wantFirst)
		}
		for i := range 3 { // the third replay writes the headers memoized by the second
			again, againBody := send()
			if again.Header.Get(idempotency.HeaderReplayed) != "true" || again.StatusCode != first.StatusCode || againBody != firstBody || env.runs.Load() != 1 {
				t.Fatalf("HTTP/2 %v: replay %d: %d %q replayed=%q runs %d", h2, i, again.StatusCode, againBody, again.Header.Get(idempotency.HeaderReplayed), env.runs.Load())
			}
			// X-Signature is declared (so the client expects it, with no
			// value) but not replayed: it is not in ReplayHeaders.
			wantAgain := http.Header{"X-Checksum": {"c1", "c2"}, "X-Signature": nil, "X-Count": {"1"}, "X-Early": {"e"}}
			if !maps.EqualFunc(again.Trailer, wantAgain, equalValues) {
				t.Errorf("HTTP/2 %v: replay %d: trailers %v, want %v", h2, i, again.Trailer, wantAgain)
			}
		}
		srv.Close()
	}
}

func equalValues(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && (a == nil) == (b == nil)
}
