package retry

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sadpath/sadpath/contract"
)

// IdempotencyKeyHeader is the header that makes a non-idempotent request
// retryable (IETF draft "The Idempotency-Key HTTP Header Field").
const IdempotencyKeyHeader = "Idempotency-Key"

// maxDrain is the most of a discarded response body read so its connection
// can be reused; a longer body is closed unread.
const maxDrain = 64 << 10

// DefaultBodyTimeout is the default TransportConfig.BodyTimeout.
const DefaultBodyTimeout = time.Second

// TransportConfig configures a Transport. Zero fields mean the defaults.
type TransportConfig struct {
	// Base makes the attempts. Default http.DefaultTransport.
	Base http.RoundTripper
	// Policy decides waits, attempts, budget, logs and telemetry. Nil means
	// New(Config{}). Its AttemptTimeout bounds each attempt until its
	// response body is closed, the one attempt of a request that is never
	// retried included.
	Policy *Policy
	// RetryStatuses are the response statuses retried. Default 429, 502,
	// 503 and 504; each must be in [400, 599].
	RetryStatuses []int
	// GenerateIdempotencyKey adds a random Idempotency-Key to POST requests
	// that have none, making them retryable; the same key is sent on every
	// attempt. The server must implement the header.
	GenerateIdempotencyKey bool
	// ResendCountHeader, when set, names a request header carrying the
	// resend count (1 on the first retry) on retries; the first attempt does
	// not carry it. It must not be IdempotencyKeyHeader, whose value must
	// stay the same on every attempt. Default: no header.
	ResendCountHeader string
	// BodyTimeout bounds, in real time (not the Policy's Clock), each read
	// the Transport makes of a retryable-status response body itself: the
	// peek at a problem body and the drain of a discarded response. A body
	// still stalled then is closed, so its connection is not reused; the
	// peek then falls back to the status and headers alone, and the caller
	// reading the last answer gets the bytes peeked, then a KindTimeout
	// error. Without it, a server stalling after the header would hang
	// RoundTrip when neither the context nor AttemptTimeout has a
	// deadline. Default DefaultBodyTimeout (1s); must be >= 0.
	BodyTimeout time.Duration
}

// Transport is an http.RoundTripper that retries safe requests: those with
// an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE) and those carrying
// an Idempotency-Key header (or given one, see
// TransportConfig.GenerateIdempotencyKey). Other requests, and requests whose
// body cannot be rewound (a Body without GetBody), get exactly one attempt.
//
// A connection error (an HTTP/2 connection closed after a GOAWAY or lost to
// an unanswered PING included) or a response with a RetryStatuses status is
// retried under the Policy; Retry-After is honoured (capped by MaxDelay and
// the deadline), a 503 problem with code "overloaded" or "retryable": false
// (contract.KindOverloaded as contract.ParseProblem reads it, from a body
// contract.ParseProblem decodes, see contract.IsJSONMediaType), or any
// retried status whose problem says "retryable": false (a 429 or 504
// written by contract.WriteProblem for an error made not retryable), stops
// at once. A 409 answering a request that carries an Idempotency-Key is
// retried too, with the same key, when its problem says "retryable": true
// (idempotency.Middleware's answer while the first request with the key
// is in flight: the IETF draft's "still being processed"); any other 409
// is returned at once. Bodies are rewound through GetBody, and every discarded response is
// drained (up to 64 KiB) and closed before the wait, so its connection is
// reused; each of those reads is bounded by BodyTimeout (1s by default),
// so a body stalled after its header never hangs RoundTrip. When the
// Policy gives up on a status the last response is returned
// as is, with a nil error, like any RoundTripper; when it gives up on a
// connection error, because the context ended during a wait, or because
// draining the discarded response took the time the retry needed
// (MaxElapsedTime, or a full AttemptTimeout before the deadline), the *Error
// is returned. A Retry-After wait capped by MaxDelay is shortened by the
// drain instead, down to what is left of MaxElapsedTime (see
// Config.OnRetry). A base that answers neither a response nor an error is
// broken: its answer is passed on as is, not retried, and http.Client
// reports it as an error.
//
// Retry at one layer: a Do around an http.Client using a Transport does
// not retry the *Error the Transport gives up with (see Classify), which
// reaches it inside http.Client's *url.Error. A RetryStatuses response (or
// a 409 in progress) coming out of a Transport is final as well: the Transport retried it as
// far as its Policy and Budget allowed, or the request was not safe to
// retry. Code that turns it into an error under an outer Do must say so,
// for instance contract.ErrorFromStatus(resp.StatusCode,
// resp.Header).WithRetryable(false), or the outer layer multiplies the
// attempts again.
//
// With a Budget, the Transport reports as Do does, for every request (one
// that gets one attempt included): a Call per request, a Failure per
// connection error, RetryStatuses answer or 409 in progress, and a Success per answer
// below 400; another status (a 500, a 404) says nothing about the
// dependency's health and is not reported, as a permanent error is not;
// nor is a request whose context had ended before it, nor the failure of
// one whose context ended during it (the caller's deadline, not the
// dependency's health).
//
// On a retried request the span in the request's context gets the
// attribute http.request.resend_count (unless the Policy's telemetry is
// off). A Transport is safe for concurrent use.
type Transport struct {
	base     http.RoundTripper
	p        *Policy
	loop     *Policy // p without AttemptTimeout and Budget.Success: try applies them itself
	statuses []int
	genKey   bool
	header   string
	bodyWait time.Duration // TransportConfig.BodyTimeout
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport validates cfg and returns the Transport.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	t := &Transport{base: cfg.Base, p: cfg.Policy, genKey: cfg.GenerateIdempotencyKey, bodyWait: cfg.BodyTimeout}
	if t.bodyWait < 0 {
		return nil, configError("TransportConfig.BodyTimeout", "must be >= 0, got %s", t.bodyWait)
	}
	if t.bodyWait == 0 {
		t.bodyWait = DefaultBodyTimeout
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.p == nil {
		t.p = defaultPolicy
	}
	// The attempt timeout must last until the response body is closed, so
	// try applies it, not Do; and only try knows whether an answer that
	// ends the retries is a success (see answeredBudget). The copy keeps
	// p's budget otherwise, its hooks, telemetry and deadline reserve.
	t.loop = t.p
	if t.p.attemptTimeout > 0 || t.p.budget != nil {
		c := *t.p
		c.attemptTimeout = 0
		if c.budget != nil {
			c.budget = answeredBudget{c.budget}
		}
		c.plain = c.budget == nil
		t.loop = &c
	}
	if len(cfg.RetryStatuses) == 0 {
		t.statuses = []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	} else {
		for i, s := range cfg.RetryStatuses {
			if s < 400 || s > 599 {
				return nil, configError("TransportConfig.RetryStatuses["+strconv.Itoa(i)+"]", "must be in [400, 599], got %d", s)
			}
		}
		t.statuses = append([]int(nil), cfg.RetryStatuses...)
	}
	if h := cfg.ResendCountHeader; h != "" {
		if !validHeaderName(h) {
			return nil, configError("TransportConfig.ResendCountHeader", "must be a valid header name, got %q", h)
		}
		t.header = http.CanonicalHeaderKey(h)
		if t.header == IdempotencyKeyHeader {
			return nil, configError("TransportConfig.ResendCountHeader", "must not be %s: a retry would carry a new key", IdempotencyKeyHeader)
		}
	}
	return t, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return len(s) <= 256
}

func idempotentMethod(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// RoundTrip sends req, retrying it when it is safe to.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	safe := idempotentMethod(req.Method) || req.Header.Get(IdempotencyKeyHeader) != ""
	if !safe && t.genKey && req.Method == http.MethodPost {
		r := req.Clone(req.Context())
		if r.Header == nil { // RoundTrip called directly, not through http.Client
			r.Header = make(http.Header)
		}
		r.Header.Set(IdempotencyKeyHeader, rand.Text())
		req, safe = r, true
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if !safe || (hasBody && req.GetBody == nil) {
		return t.once(req)
	}
	ctx := req.Context()
	p := t.p
	a := &attempts{t: t, req: req, hasBody: hasBody}
	resp, err := do(ctx, t.loop, a.try, a.discard)
	if a.n == 0 && hasBody {
		req.Body.Close() // a RoundTripper always closes the body
	}
	if a.n > 1 && p.tel != nil {
		trace.SpanFromContext(ctx).SetAttributes(attribute.Int("http.request.resend_count", a.n-1))
	}
	if err == nil {
		return resp, nil
	}
	if resp != nil && resp == a.pending {
		return resp, nil // gave up on a status: the caller reads the last answer
	}
	return nil, err
}

// once sends a request that must not be retried: one attempt, bounded by
// the policy's AttemptTimeout until its response body is closed, as every
// attempt is, and reported to the Budget as Do reports a call that makes
// one attempt: not at all when req's context had ended before it.
func (t *Transport) once(req *http.Request) (*http.Response, error) {
	report := t.p.budget != nil && req.Context().Err() == nil
	var resp *http.Response
	var err error
	if t.p.attemptTimeout <= 0 {
		resp, err = t.base.RoundTrip(req)
	} else {
		ctx, cancel := context.WithDeadline(req.Context(), t.p.clock.Now().Add(t.p.attemptTimeout))
		resp, err = t.base.RoundTrip(req.WithContext(ctx))
		if err != nil || resp == nil {
			cancel()
		} else {
			resp.Body = withCancel(resp.Body, cancel)
		}
	}
	if report {
		if err == nil || !notSent(err) { // see notSent
			t.p.budget.Call()
		}
		t.reportOnce(req.Context(), resp, err)
	}
	if err != nil || resp == nil { // nil, nil: a broken base, which http.Client reports
		return resp, err
	}
	return resp, nil
}

// reportOnce tells the Budget how the one attempt of once went, as try
// and Do would have: a Success for an answer below 400, a Failure for a
// RetryStatuses answer or a connection error that the Policy classifies
// Transient or Overloaded (not a circuit breaker's rejection or a local
// refusal, see notSent), nothing otherwise, nor when ctx, the caller's
// context, has ended: Do stops then before it reports a failure, which
// the caller's deadline rather than the dependency caused. The body is not
// peeked at: a 503 costs a Failure whether it says "overloaded" or not.
func (t *Transport) reportOnce(ctx context.Context, resp *http.Response, err error) {
	p := t.p
	switch {
	case err != nil:
		err = transportError(err)
	case resp == nil: // a broken base: http.Client reports it as an error
		return
	case resp.StatusCode < 400:
		p.budget.Success()
		return
	case t.retryStatus(resp.StatusCode):
		e := contract.ErrorFromStatusAt(resp.StatusCode, resp.Header, p.clock.Now())
		if e.Kind != contract.KindOverloaded {
			e.WithRetryable(true) // configured as retryable, as in statusError
		}
		err = e
	default:
		return
	}
	if ctx.Err() != nil {
		return
	}
	if c := p.classify(err); (c == Transient || c == Overloaded) && !notSent(err) {
		p.budget.Failure()
	}
}

// attempts is the state of one RoundTrip.
type attempts struct {
	t       *Transport
	req     *http.Request
	hasBody bool
	n       int
	pending *http.Response // the last retryable-status response, not yet discarded
}

// discard drains and closes the pending response before the wait, so its
// connection goes back to the pool while the client sleeps.
func (a *attempts) discard() {
	if a.pending != nil {
		drain(a.pending.Body, a.t.bodyWait)
		a.pending = nil
	}
}

func (a *attempts) try(ctx context.Context) (*http.Response, error) {
	a.discard()
	a.n++
	t, p := a.t, a.t.p
	var cancel context.CancelFunc
	if p.attemptTimeout > 0 {
		ctx, cancel = context.WithDeadline(ctx, p.clock.Now().Add(p.attemptTimeout))
	}
	r := a.req
	if cancel != nil || a.n > 1 {
		r = a.req.WithContext(ctx) // a shallow copy: the caller's request is never modified
	}
	if a.n > 1 {
		if a.hasBody {
			body, err := a.req.GetBody()
			if err != nil {
				if cancel != nil {
					cancel()
				}
				return nil, contract.Wrap(contract.KindInternal, "retry.Transport", err).WithCode("http.get_body")
			}
			r.Body = body
		}
		if t.header != "" {
			r.Header = a.req.Header.Clone()
			if r.Header == nil {
				r.Header = make(http.Header)
			}
			r.Header.Set(t.header, strconv.Itoa(a.n-1))
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		if cancel != nil {
			cancel()
		}
		return nil, transportError(err)
	}
	if resp == nil {
		// A base that answers neither a response nor an error is broken,
		// not transient: passed on as is, not retried; http.Client reports
		// it as an error.
		if cancel != nil {
			cancel()
		}
		return nil, nil
	}
	if cancel != nil {
		resp.Body = withCancel(resp.Body, cancel)
	}
	if !t.retryStatus(resp.StatusCode) {
		if resp.StatusCode == http.StatusConflict && a.req.Header.Get(IdempotencyKeyHeader) != "" {
			if err := inProgressError(resp, p, t.bodyWait); err != nil {
				a.pending = resp
				return resp, err
			}
		}
		if p.budget != nil && resp.StatusCode < 400 {
			p.budget.Success()
		}
		return resp, nil
	}
	a.pending = resp
	return resp, statusError(resp, p, t.bodyWait)
}

// answeredBudget is the Policy's Budget as the Transport's loop sees it:
// Do reports a Success for every answer that ends the retries, but only an
// answer below 400 is one; another status outside RetryStatuses (a 500, a
// 404) says nothing, like a permanent error in Do. try reports successes
// to the Budget itself.
type answeredBudget struct{ Budget }

func (answeredBudget) Success() {}

func (t *Transport) retryStatus(code int) bool {
	for _, s := range t.statuses {
		if s == code {
			return true
		}
	}
	return false
}

// statusError is the failure for a retryable status (see peekProblem),
// made retryable unless the problem reads back as overloaded or says
// "retryable": false.
func statusError(resp *http.Response, p *Policy, wait time.Duration) error {
	e := peekProblem(resp, p.clock.Now(), wait)
	if e.Kind != contract.KindOverloaded && !problemSays(e, false) {
		e.WithRetryable(true) // configured as retryable, whatever its Kind
	}
	return e
}

// inProgressError is the failure for a 409 answering a request that
// carries an Idempotency-Key, when its problem says "retryable": true
// (contract.RetryableMember): the IETF draft's "the original request is
// still being processed", as idempotency.Middleware answers it, to retry
// with the same key after its Retry-After. Any other 409 is final: nil.
// The body is peeked as statusError peeks it, and put back.
func inProgressError(resp *http.Response, p *Policy, wait time.Duration) error {
	if e := peekProblem(resp, p.clock.Now(), wait); problemSays(e, true) {
		return e
	}
	return nil
}

// peekProblem is contract's mapping of resp's status and Retry-After,
// refined by its problem body (its code, "overloaded", and its "retryable"
// member). A body contract.ParseProblem would decode
// (contract.IsJSONMediaType: a JSON or +json type in any case, or no
// Content-Type) is read, at most contract.MaxProblemBody+1 bytes within
// wait, and put back, so the caller can still read it when this is the
// last answer. A body not read within wait is closed and the decision
// rests on the status and headers alone; the caller then reads the bytes
// peeked, then bodyStalled's error.
func peekProblem(resp *http.Response, now time.Time, wait time.Duration) *contract.Error {
	var e *contract.Error
	if body := resp.Body; body != nil && body != http.NoBody && contract.IsJSONMediaType(resp.Header.Get("Content-Type")) {
		var buf []byte
		var rerr error
		if readWithin(body, wait, func() { buf, rerr = io.ReadAll(io.LimitReader(body, contract.MaxProblemBody+1)) }) {
			resp.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(buf), errReader{rerr}, body), c: body}
			peek := *resp
			peek.Body = io.NopCloser(bytes.NewReader(buf))
			e = contract.As(contract.ParseProblemAt(&peek, now))
		} else {
			resp.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(buf), errReader{bodyStalled()}), c: body}
			e = contract.ErrorFromStatusAt(resp.StatusCode, resp.Header, now)
		}
	} else {
		e = contract.ErrorFromStatusAt(resp.StatusCode, resp.Header, now)
	}
	return e
}

// problemSays reports whether the answer's problem body carried
// "retryable": v (contract.RetryableMember). False: the dependency asked
// not to be retried, as contract.WriteProblem writes it for a 429 or 504
// made not retryable; like an overloaded 503, it is returned at once.
// True: a 409 in progress may be retried (see inProgressError).
func problemSays(e *contract.Error, v bool) bool {
	var re *contract.ResponseError
	if !errors.As(e, &re) || re.Problem == nil {
		return false
	}
	return re.Problem.Extensions[contract.RetryableMember] == v
}

// transportError classifies an error from the base RoundTripper:
// connection failures (refused, reset, EOF, net errors, an HTTP/2
// connection lost, see h2ConnectionLost) and attempt timeouts are
// transient; a canceled context and anything else (bad URL, TLS
// verification …) are not.
func transportError(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if contract.Retryable(err) {
		var ce *contract.Error
		if errors.As(err, &ce) {
			return err
		}
		return contract.Wrap(contract.KindOf(err), "retry.Transport", err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || h2ConnectionLost(err) {
		return contract.Wrap(contract.KindUnavailable, "retry.Transport", err)
	}
	return err
}

// HTTP/2 connection losses that net/http's HTTP/2 transport (and
// golang.org/x/net/http2, whose code it bundles) reports with its own
// errors and does not retry itself.
const (
	// The server sent GOAWAY, then closed the connection without answering
	// a stream it had accepted (LastStreamID): a graceful shutdown, as in a
	// deploy. The same close without the GOAWAY is io.ErrUnexpectedEOF.
	h2GoAwayPrefix = "http2: server sent GOAWAY and closed the connection"
	// The connection failed its health check (HTTP2Config.SendPingTimeout;
	// x/net: ReadIdleTimeout): a PING unanswered within PingTimeout.
	h2LostMessage = "http2: client connection lost"
)

// h2ConnectionLost reports whether an error in err's chain is an HTTP/2
// connection lost under the request. Either way the request may or may not
// have been processed, as after a reset, and only safe requests are
// retried. String matching is unavoidable here: net/http exports neither
// error (the first is its unexported http2GoAwayError, the second an
// errors.New value), and matching the text rather than the type name also
// covers golang.org/x/net/http2's Transport, which gives the same texts.
//
// Not matched: what the HTTP/2 transport already retries itself, on a new
// connection, when the request can be rewound (up to 7 attempts over about
// a minute), namely a GOAWAY that excludes the stream and a stream refused
// (REFUSED_STREAM) before it was processed; and a connection closed by the
// caller (ClientConn.Close), which a retry would not undo.
func h2ConnectionLost(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if msg := err.Error(); msg == h2LostMessage || strings.HasPrefix(msg, h2GoAwayPrefix) {
			return true
		}
	}
	return false
}

// bodyStalled is what the caller reads, after the bytes peeked, from a
// last answer whose body did not arrive within BodyTimeout.
func bodyStalled() error {
	return contract.New(contract.KindTimeout, "retry.Transport", "response body stalled past TransportConfig.BodyTimeout; closed")
}

// drain reads up to maxDrain of b within wait, then closes it.
func drain(b io.ReadCloser, wait time.Duration) {
	if b == nil {
		return
	}
	readWithin(b, wait, func() { _, _ = io.CopyN(io.Discard, b, maxDrain) })
	_ = b.Close()
}

// readWithin runs read, which reads b, and closes b if read has not
// returned within wait (closing an HTTP response body ends a read blocked
// on it, and drops its connection). It reports whether read finished in
// time; when it did not, b is closed when readWithin returns.
func readWithin(b io.Closer, wait time.Duration, read func()) bool {
	closed := make(chan struct{})
	tm := time.AfterFunc(wait, func() {
		_ = b.Close()
		close(closed)
	})
	read()
	if tm.Stop() {
		return true
	}
	<-closed
	return false
}

// cancelBody ends the attempt's context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// cancelRWBody is a cancelBody over a writable body: the connection of a
// 101 Switching Protocols response, which the caller must still be able to
// write to (net/http documents it as an io.ReadWriteCloser).
type cancelRWBody struct {
	cancelBody
	w io.Writer
}

func (b *cancelRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// withCancel wraps body so that closing it calls cancel, keeping Write
// when body has it. A nil body, which http.Client accepts from a lenient
// RoundTripper as an empty one, becomes an empty body that still cancels.
func withCancel(body io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	if body == nil {
		body = http.NoBody
	}
	if w, ok := body.(io.Writer); ok {
		return &cancelRWBody{cancelBody: cancelBody{ReadCloser: body, cancel: cancel}, w: w}
	}
	return &cancelBody{ReadCloser: body, cancel: cancel}
}

// replayBody returns the bytes already read, then the rest.
type replayBody struct {
	io.Reader
	c io.Closer
}

func (b *replayBody) Close() error { return b.c.Close() }

// errReader replays a read error met while peeking (nil: nothing).
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	return 0, io.EOF
}
