package logctx

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/sadpath/sadpath/internal/rwcap"
)

// HeaderCorrelationID is the default header carrying the correlation id.
const HeaderCorrelationID = "X-Correlation-ID"

// headerTraceparent is the W3C Trace Context header.
const headerTraceparent = "Traceparent"

// MiddlewareConfig configures the HTTP server middleware returned by
// NewMiddleware. The zero value of every field means its documented
// default.
type MiddlewareConfig struct {
	// Logger receives the access line of every request and the notice that
	// an invalid incoming correlation id was replaced. Give it a logctx
	// Handler so those lines carry the coordinates. Default nil: no logging.
	Logger *slog.Logger

	// Header is the request and response header carrying the correlation
	// id. Default HeaderCorrelationID ("X-Correlation-ID"). It must be a
	// valid header field name.
	Header string

	// IgnoreTraceparent stops the middleware deriving the correlation id
	// from the W3C traceparent header (or from the span already on the
	// request context) when the request has no valid id of its own.
	// Default false: a request that is part of a trace gets the trace id as
	// its correlation id.
	IgnoreTraceparent bool

	// AccessLevel is the level of the access line; 5xx responses are logged
	// at least at slog.LevelWarn. Default slog.LevelInfo (the zero Level).
	AccessLevel slog.Level

	// NoAccessLog turns the access line off while keeping the replacement
	// notice. Default false.
	NoAccessLog bool

	// Clock measures request durations. Default: the system clock.
	Clock Clock

	// Rand is the source of fresh correlation ids. Default crypto/rand.
	// Should it fail, ids fall back to a per-middleware counter.
	Rand io.Reader
}

// middleware holds the validated configuration.
type middleware struct {
	log            *slog.Logger
	header         string // canonical form
	useTraceparent bool
	level          slog.Level
	access         bool
	clock          Clock
	rand           io.Reader // nil: crypto/rand
	fallback       atomic.Uint64
	start          time.Time // fallback id prefix, for uniqueness across restarts
}

// NewMiddleware returns HTTP server middleware that gives every request a
// correlation id and logs one access line per request. See the package doc
// ("HTTP") for the precise rules. It returns a *contract.Error of
// KindInvalid naming the field when cfg is invalid.
func NewMiddleware(cfg MiddlewareConfig) (func(http.Handler) http.Handler, error) {
	m := &middleware{
		log:            cfg.Logger,
		header:         http.CanonicalHeaderKey(HeaderCorrelationID),
		useTraceparent: !cfg.IgnoreTraceparent,
		level:          cfg.AccessLevel,
		access:         !cfg.NoAccessLog && cfg.Logger != nil,
		clock:          cfg.Clock,
		rand:           cfg.Rand,
	}
	if cfg.Header != "" {
		if !validHeaderName(cfg.Header) {
			return nil, configError("MiddlewareConfig.Header", "not a valid header field name: "+strconv.Quote(cfg.Header))
		}
		m.header = http.CanonicalHeaderKey(cfg.Header)
	}
	if m.clock == nil {
		m.clock = systemClock{}
	}
	m.start = m.clock.Now()
	return m.wrap, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			c == '-' || c == '_' || c == '.' || c == '!' || c == '#' || c == '$' || c == '%' ||
			c == '&' || c == '\'' || c == '*' || c == '+' || c == '^' || c == '`' || c == '|' || c == '~'
		if !ok {
			return false
		}
	}
	return true
}

// requestState is everything the middleware allocates per request, in one
// allocation: the context node carrying the coordinates, the response
// writer wrapper and the echoed header value.
type requestState struct {
	ctx valueCtx
	rw  responseWriter
	hdr [1]string
}

func (m *middleware) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var start time.Time
		if m.access {
			start = m.clock.Now()
		}
		parent := r.Context()
		id, rejected := m.correlationID(parent, r)

		st := &requestState{}
		st.ctx.Context = parent
		if c := from(parent); c != nil {
			st.ctx.c = *c
		}
		st.ctx.c.correlationID = id
		st.rw.ResponseWriter = w
		st.hdr[0] = id
		w.Header()[m.header] = st.hdr[:]

		r2 := r.WithContext(&st.ctx)
		if rejected != "" {
			Decision(&st.ctx, m.log, slog.LevelWarn, "correlation id replaced", rejected,
				slog.String("header", m.header))
		}
		hw := st.rw.writer()
		if !m.access {
			next.ServeHTTP(hw, r2)
			return
		}
		done := false
		defer func() {
			// Runs on panic too (without recovering it), so a request
			// that blew up still has its access line.
			m.logAccess(&st.ctx, r2, &st.rw, start, done)
		}()
		next.ServeHTTP(hw, r2)
		done = true
	})
}

// correlationID picks the request's correlation id: one already on the
// context, else a valid incoming header, else the trace id of a valid
// traceparent or of the span on the context, else a fresh one. rejected
// says why an incoming header was refused ("" when there was none or it
// was valid).
func (m *middleware) correlationID(ctx context.Context, r *http.Request) (id, rejected string) {
	// An id already on the context (an outer logctx middleware, a test)
	// wins: nested middleware must not split one request into two ids.
	if id := CorrelationID(ctx); id != "" && checkID(id) == "" {
		return id, ""
	}
	if vs := r.Header[m.header]; len(vs) > 0 {
		if len(vs) > 1 {
			rejected = "header repeated " + strconv.Itoa(len(vs)) + " times"
		} else if reason := checkID(vs[0]); reason != "" {
			rejected = reason
		} else {
			return vs[0], ""
		}
	}
	if m.useTraceparent {
		if vs := r.Header[headerTraceparent]; len(vs) == 1 {
			if tid := traceIDFromTraceparent(vs[0]); tid != "" {
				return tid, rejected
			}
		}
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			return sc.TraceID().String(), rejected
		}
	}
	return m.newID(), rejected
}

func (m *middleware) newID() string {
	if id, err := newID(m.rand); err == nil {
		return id
	}
	// The random source failed: a process-unique id is still better than
	// none. Never reached with crypto/rand, which does not fail.
	n := m.fallback.Add(1)
	return "f" + strconv.FormatInt(m.start.UnixNano(), 36) + "-" + strconv.FormatUint(n, 36)
}

func (m *middleware) logAccess(ctx context.Context, r *http.Request, rw *responseWriter, start time.Time, done bool) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
		if !done {
			status = http.StatusInternalServerError // the handler panicked before writing
		}
	}
	level := m.level
	if status >= 500 && level < slog.LevelWarn {
		level = slog.LevelWarn
	}
	if !m.log.Enabled(ctx, level) {
		return
	}
	d := m.clock.Now().Sub(start)
	msg := "http request"
	if !done {
		msg = "http request panicked"
	}
	m.log.LogAttrs(ctx, level, msg,
		slog.String(KeyMethod, r.Method),
		slog.String(KeyRoute, r.Pattern),
		slog.Int(KeyStatus, status),
		slog.Float64(KeyDurationMS, float64(d.Microseconds())/1000),
		slog.Int64(KeyBytes, rw.bytes))
}

// responseWriter records the status and body size. It unwraps for
// http.ResponseController; the handler gets it through writer, which adds
// Flush and Hijack only when the writer it wraps has them.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	// 1xx informational responses (other than 101) are not the final status.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writer returns the ResponseWriter the handler gets: w, an http.Flusher
// only when the writer it wraps can flush and an http.Hijacker only when
// it can be hijacked (as http.ResponseController finds them, through
// Unwrap too). A Flush that did nothing would tell a streaming handler its
// bytes were on their way while http.ResponseController said
// http.ErrNotSupported; a Hijack that always fails would keep a handler
// from choosing another way. Each variant is a single pointer, so
// returning it as an interface allocates nothing.
func (w *responseWriter) writer() http.ResponseWriter {
	switch f, h := rwcap.CanFlush(w.ResponseWriter), rwcap.CanHijack(w.ResponseWriter); {
	case f && h:
		return flushHijackWriter{w}
	case f:
		return flushWriter{w}
	case h:
		return hijackWriter{w}
	}
	return w
}

func (w *responseWriter) flush() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// flushWriter is a responseWriter over a writer that can flush.
type flushWriter struct{ *responseWriter }

// Flush flushes the underlying writer.
func (w flushWriter) Flush() { _ = w.flush() }

// FlushError flushes the underlying writer and returns its error, for
// http.ResponseController, which asks for it before Flush.
func (w flushWriter) FlushError() error { return w.flush() }

// hijackWriter is a responseWriter over a writer that can be hijacked.
type hijackWriter struct{ *responseWriter }

// Hijack hijacks the underlying writer.
func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }

// flushHijackWriter is a responseWriter over a writer that can do both.
type flushHijackWriter struct{ *responseWriter }

// Flush flushes the underlying writer.
func (w flushHijackWriter) Flush() { _ = w.flush() }

// FlushError flushes the underlying writer and returns its error, for
// http.ResponseController, which asks for it before Flush.
func (w flushHijackWriter) FlushError() error { return w.flush() }

// Hijack hijacks the underlying writer.
func (w flushHijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }
