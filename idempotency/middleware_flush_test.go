package idempotency_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

// The middleware does not buffer the first response: it passes it through
// and keeps a copy. A handler that flushes, by http.Flusher or by
// http.ResponseController, streams to its client as it would without the
// middleware — what it flushed arrives while it still runs — and the
// replay is the whole response.
func TestMiddlewareFlushStreamsToFirstClient(t *testing.T) {
	flushers := map[string]func(http.ResponseWriter) error{
		"http.Flusher": func(w http.ResponseWriter) error {
			f, ok := w.(http.Flusher)
			if !ok {
				return errors.New("the writer is not an http.Flusher")
			}
			f.Flush()
			return nil
		},
		"http.ResponseController": func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() },
	}
	for name, flush := range flushers {
		t.Run(name, func(t *testing.T) {
			env := newMW(t, nil)
			read := make(chan struct{})
			flushErr := make(chan error, 1)
			srv := httptest.NewServer(env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if env.runs.Add(1) > 1 {
					t.Error("the handler ran twice")
					return
				}
				_, _ = io.WriteString(w, "first\n")
				err := flush(w)
				flushErr <- err
				if err == nil {
					<-read // the client has the first line: the handler is still running
				}
				_, _ = io.WriteString(w, "second\n")
			})))
			defer srv.Close()
			send := func() *http.Response {
				t.Helper()
				r, _ := http.NewRequest("POST", srv.URL+"/stream", strings.NewReader("{}"))
				r.Header.Set("X-Caller", "alice")
				r.Header.Set("Idempotency-Key", `"k"`)
				resp, err := srv.Client().Do(r)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			resp := send()
			if err := <-flushErr; err != nil {
				t.Fatalf("flush: %v", err)
			}
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if line != "first\n" || err != nil {
				t.Fatalf("first line %q, %v", line, err)
			}
			close(read)
			rest, _ := io.ReadAll(br)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(rest) != "second\n" {
				t.Fatalf("first response: %d, rest %q", resp.StatusCode, rest)
			}
			again := send()
			body, _ := io.ReadAll(again.Body)
			again.Body.Close()
			if again.StatusCode != http.StatusOK || string(body) != "first\nsecond\n" || again.Header.Get(idempotency.HeaderReplayed) != "true" || env.runs.Load() != 1 {
				t.Fatalf("replay: %d %q replayed=%q runs %d, want the whole streamed response", again.StatusCode, body, again.Header.Get(idempotency.HeaderReplayed), env.runs.Load())
			}
		})
	}
}

// Behind a writer that cannot flush, the handler's writer is no
// http.Flusher, as it would not be without the middleware: a Flush that
// did nothing would tell a streaming handler its bytes were on their way.
// http.ResponseController agrees (http.ErrNotSupported).
func TestMiddlewareFlusherOnlyWhenFlushable(t *testing.T) {
	env := newMW(t, nil)
	var isFlusher bool
	var rcErr error
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, isFlusher = w.(http.Flusher)
		rcErr = http.NewResponseController(w).Flush()
		w.WriteHeader(http.StatusCreated)
	}))
	h.ServeHTTP(unflushable{httptest.NewRecorder()}, req("POST", "/p", "alice", "k", "{}"))
	if isFlusher || !errors.Is(rcErr, http.ErrNotSupported) {
		t.Fatalf("behind a writer that cannot flush: http.Flusher %v, ResponseController.Flush %v; want neither to flush", isFlusher, rcErr)
	}
	h.ServeHTTP(httptest.NewRecorder(), req("POST", "/p", "alice", "k2", "{}"))
	if !isFlusher || rcErr != nil {
		t.Fatalf("behind a writer that flushes: http.Flusher %v, ResponseController.Flush %v; want both to flush", isFlusher, rcErr)
	}
}

// The same holds for http.Hijacker: behind a writer that cannot be
// hijacked (an HTTP/2 connection, a recorder), the handler's writer is no
// http.Hijacker, as it would not be without the middleware, so a handler
// that hijacks only when it can takes its other way rather than failing.
// Behind one that can, the writer is a Hijacker, and a Flusher only when
// that one flushes too.
func TestMiddlewareHijackerOnlyWhenHijackable(t *testing.T) {
	env := newMW(t, nil)
	var isHijacker, isFlusher bool
	h := env.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, isHijacker = w.(http.Hijacker)
		_, isFlusher = w.(http.Flusher)
		w.WriteHeader(http.StatusCreated)
	}))
	h.ServeHTTP(httptest.NewRecorder(), req("POST", "/p", "alice", "k1", "{}"))
	if isHijacker || !isFlusher {
		t.Fatalf("behind a recorder: http.Hijacker %v, http.Flusher %v; want a Flusher only", isHijacker, isFlusher)
	}
	h.ServeHTTP(hijackable{unflushable{httptest.NewRecorder()}}, req("POST", "/p", "alice", "k2", "{}"))
	if !isHijacker || isFlusher {
		t.Fatalf("behind a hijackable writer that cannot flush: http.Hijacker %v, http.Flusher %v; want a Hijacker only", isHijacker, isFlusher)
	}
	h.ServeHTTP(hijackable{httptest.NewRecorder()}, req("POST", "/p", "alice", "k3", "{}"))
	if !isHijacker || !isFlusher {
		t.Fatalf("behind a hijackable writer that flushes: http.Hijacker %v, http.Flusher %v; want both", isHijacker, isFlusher)
	}
}

// hijackable is a writer whose connection could be taken over (the test
// never does): it unwraps to the writer it wraps for the rest.
type hijackable struct{ http.ResponseWriter }

func (hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("test writer: not hijacked")
}
func (h hijackable) Unwrap() http.ResponseWriter { return h.ResponseWriter }
