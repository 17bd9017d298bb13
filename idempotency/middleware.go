package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Header names of the IETF draft "The Idempotency-Key HTTP Header Field".
const (
	HeaderKey      = "Idempotency-Key"
	HeaderReplayed = "Idempotent-Replayed"
)

// Defaults of MiddlewareConfig.
const (
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxResponseBytes = 1 << 20
)

// DefaultReplayHeaders are the response headers stored and replayed when
// MiddlewareConfig.ReplayHeaders is nil. Set-Cookie and other
// per-response credentials are deliberately absent.
var DefaultReplayHeaders = []string{
	"Content-Type", "Content-Encoding", "Content-Language", "Content-Location",
	"Location", "ETag", "Last-Modified", "Cache-Control", "Link",
}

// DefaultStoreStatus is the default MiddlewareConfig.StoreStatus: responses
// 200-499 are stored and replayed, except 408 Request Timeout, 425 Too Early,
// 429 Too Many Requests and 499 (client closed request), which say "try
// again" and so release the key, like every 1xx and 5xx status.
func DefaultStoreStatus(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests, 499:
		return false
	}
	return status >= 200 && status < 500
}

// MiddlewareConfig configures a Middleware. The embedded Config sets the
// store, lease, retention, duplicate policy (409 or wait), heartbeat, fail
// open, clock, logger and meter; its Codec and StoreError are not used.
type MiddlewareConfig struct {
	Config
	// Scope returns the caller's identity (tenant, user, API key id) from
	// the request, typically from what authentication put on its context.
	// Keys are stored per scope, so one caller can never replay, probe or
	// block another's requests. Required: a single-caller service returns a
	// constant. An error is written as a problem (a *contract.Error keeps
	// its kind, anything else is 401); an empty scope is 401.
	Scope func(*http.Request) (string, error)
	// Methods the middleware applies to; others pass through. Default POST and PATCH.
	Methods []string
	// KeyOptional lets requests without an Idempotency-Key through without
	// idempotency. Default false: they get 400.
	KeyOptional bool
	// MaxKeyLength is the longest key accepted, in bytes. Default 255.
	MaxKeyLength int
	// StrictKey accepts only the draft's structured-field string ("...").
	// Default false: bare tokens are accepted too (see ParseKey).
	StrictKey bool
	// MaxBodyBytes is the largest request body read; larger gets 413.
	// Default 1 MiB.
	MaxBodyBytes int64
	// MaxResponseBytes is the largest response body stored. A larger
	// response still reaches the first client unchanged, but is not kept:
	// the key is completed with a 409 problem (code
	// "idempotency.response_not_stored") that duplicates get, so the
	// operation never runs twice. Default 1 MiB.
	MaxResponseBytes int
	// FingerprintHeaders are request headers included in the fingerprint
	// besides method, path with query, and body. Default none.
	FingerprintHeaders []string
	// ReplayHeaders are the response headers stored and replayed. Default
	// DefaultReplayHeaders.
	ReplayHeaders []string
	// StoreStatus reports whether a response status is stored and replayed
	// (true) or releases the key so the client may retry (false). Default
	// DefaultStoreStatus.
	StoreStatus func(status int) bool
}

// Middleware implements the IETF Idempotency-Key draft as net/http
// middleware. It works with any router: Wrap has the signature every
// router's Use accepts. A Middleware is safe for concurrent use.
//
// For a request whose method is configured:
//
//   - no Idempotency-Key: 400 problem (code idempotency.key_missing), unless KeyOptional;
//   - a malformed, repeated or too long key: 400 (idempotency.key_invalid);
//   - a body over MaxBodyBytes: 413;
//   - the key seen before with another method, path, query, body or
//     fingerprinted header: 422 (idempotency.key_reused);
//   - the first request still in flight: 409 (idempotency.in_progress)
//     with Retry-After, or, under the Wait policy, the first response once
//     it is done;
//   - the first request completed: its stored status, replay headers and
//     body bytes, with Idempotent-Replayed: true;
//   - the store failing: 503 with Retry-After (unless FailOpen);
//   - otherwise the handler runs once. Its response is passed through to
//     the client while a copy is kept; then the response is stored if
//     StoreStatus accepts its status, else the key is released. A panic
//     releases the key and continues.
type Middleware struct {
	ex          *Executor
	scope       func(*http.Request) (string, error)
	methods     map[string]bool
	optional    bool
	maxKey      int
	strict      bool
	maxBody     int64
	maxResp     int
	fpHeaders   []string
	replay      []string
	storeStatus func(int) bool
}

// NewMiddleware returns a Middleware configured by cfg, or a KindInvalid
// error naming the bad field.
func NewMiddleware(cfg MiddlewareConfig) (*Middleware, error) {
	if cfg.Scope == nil {
		return nil, configError("MiddlewareConfig.Scope", "required: keys must be scoped per caller (return a constant for a single-caller service)")
	}
	if cfg.MaxKeyLength < 0 {
		return nil, configError("MiddlewareConfig.MaxKeyLength", "must be >= 0, got %d", cfg.MaxKeyLength)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, configError("MiddlewareConfig.MaxBodyBytes", "must be >= 0, got %d", cfg.MaxBodyBytes)
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, configError("MiddlewareConfig.MaxResponseBytes", "must be >= 0, got %d", cfg.MaxResponseBytes)
	}
	ex, err := newExecutor(cfg.Config, "MiddlewareConfig", "http")
	if err != nil {
		return nil, err
	}
	m := &Middleware{
		ex: ex, scope: cfg.Scope, optional: cfg.KeyOptional, strict: cfg.StrictKey,
		maxKey: cfg.MaxKeyLength, maxBody: cfg.MaxBodyBytes, maxResp: cfg.MaxResponseBytes,
		storeStatus: cfg.StoreStatus, methods: map[string]bool{},
	}
	if m.maxKey == 0 {
		m.maxKey = DefaultMaxKeyLength
	}
	if m.maxBody == 0 {
		m.maxBody = DefaultMaxBodyBytes
	}
	if m.maxResp == 0 {
		m.maxResp = DefaultMaxResponseBytes
	}
	if m.storeStatus == nil {
		m.storeStatus = DefaultStoreStatus
	}
	methods := cfg.Methods
	if methods == nil {
		methods = []string{http.MethodPost, http.MethodPatch}
	}
	for _, meth := range methods {
		if meth == "" {
			return nil, configError("MiddlewareConfig.Methods", "empty method")
		}
		m.methods[meth] = true
	}
	for _, h := range cfg.FingerprintHeaders {
		m.fpHeaders = append(m.fpHeaders, http.CanonicalHeaderKey(h))
	}
	replay := cfg.ReplayHeaders
	if replay == nil {
		replay = DefaultReplayHeaders
	}
	for _, h := range replay {
		m.replay = append(m.replay, http.CanonicalHeaderKey(h))
	}
	return m, nil
}

// Wrap returns next guarded by the middleware.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.methods[r.Method] {
			next.ServeHTTP(w, r)
			return
		}
		vals := r.Header.Values(HeaderKey)
		if len(vals) == 0 {
			if m.optional {
				next.ServeHTTP(w, r)
				return
			}
			writeProblem(w, r, http.StatusBadRequest, errFrom(ErrKeyMissing, "idempotency.http", nil))
			return
		}
		if len(vals) > 1 {
			writeProblem(w, r, http.StatusBadRequest, invalidKey("repeated header"))
			return
		}
		key, err := ParseKey(vals[0], m.maxKey, m.strict)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, err)
			return
		}
		scope, err := m.scope(r)
		if err != nil || scope == "" {
			if contract.KindOf(err) == contract.KindInternal && !errors.As(err, new(*contract.Error)) {
				err = contract.New(contract.KindUnauthorized, "idempotency.http", "no caller identity for the idempotency key").WithCode("idempotency.no_scope")
			}
			writeProblem(w, r, 0, err)
			return
		}
		buf, err := readBody(r, m.maxBody)
		if err != nil {
			writeProblem(w, r, 0, err)
			return
		}
		defer bufPool.Put(buf)
		fp := m.fingerprint(r, buf.Bytes())

		var rec *recorder
		res, _, replayed, err := m.ex.run(r.Context(), Key{Scope: scope, Key: key}, fp, func(ctx context.Context) (Result, bool, error) {
			rec = &recorder{w: w, limit: m.maxResp, replay: m.replay}
			body := bytes.Clone(buf.Bytes()) // the handler may keep it; the buffer goes back to the pool
			r2 := r.WithContext(ctx)
			r2.Body = io.NopCloser(bytes.NewReader(body))
			r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			next.ServeHTTP(rec, r2)
			return m.outcome(ctx, rec)
		})
		if rec != nil {
			// The handler ran (fresh, or fail-open): its response is
			// already with the client. Errors were logged and counted.
			return
		}
		if err != nil {
			status := 0
			if errors.Is(err, ErrMismatch) {
				status = http.StatusUnprocessableEntity
			}
			writeProblem(w, r, status, err)
			return
		}
		if replayed {
			writeReplay(w, res)
		}
	})
}

// outcome decides what the handler's response means for the key.
func (m *Middleware) outcome(ctx context.Context, rec *recorder) (Result, bool, error) {
	if rec.status == 0 {
		if ctx.Err() != nil { // nothing written and the request is gone: a timeout
			return Result{}, false, nil
		}
		rec.WriteHeader(http.StatusOK) // net/http would answer 200 with an empty body
	}
	if !m.storeStatus(rec.status) {
		return Result{}, false, nil
	}
	if ctx.Err() != nil && (rec.status < 200 || rec.status > 299) {
		// The request timed out or the client went away, and the handler
		// answered with an error: treat it as the timeout it is.
		return Result{}, false, nil
	}
	if rec.overflow {
		return problemResult(contract.New(contract.KindConflict, "idempotency.http",
			"the response to the first request with this key was too large to store; it was delivered once").
			WithCode("idempotency.response_not_stored")), true, nil
	}
	return Result{StatusCode: rec.status, Header: rec.header, Body: rec.buf}, true, nil
}

// fingerprint is Fingerprint(method, target, "Name:v1\x00v2" per
// fingerprinted header, body), where target is the escaped path plus "?"
// and the raw query when there is one. It frames into a pooled buffer and
// hashes once, so the replay path allocates only the hex string.
func (m *Middleware) fingerprint(r *http.Request, body []byte) string {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	var n [8]byte
	part := func(ss ...string) {
		l := 0
		for _, s := range ss {
			l += len(s)
		}
		binary.BigEndian.PutUint64(n[:], uint64(l))
		b.Write(n[:])
		for _, s := range ss {
			b.WriteString(s)
		}
	}
	part(r.Method)
	if r.URL.RawQuery != "" {
		part(r.URL.EscapedPath(), "?", r.URL.RawQuery)
	} else {
		part(r.URL.EscapedPath())
	}
	for _, h := range m.fpHeaders {
		part(h+":", strings.Join(r.Header[h], "\x00"))
	}
	binary.BigEndian.PutUint64(n[:], uint64(len(body)))
	b.Write(n[:])
	b.Write(body)
	sum := sha256.Sum256(b.Bytes())
	bufPool.Put(b)
	return hex.EncodeToString(sum[:])
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads the request body, up to limit, into a pooled buffer the
// caller must return to bufPool.
func readBody(r *http.Request, limit int64) (*bytes.Buffer, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.Body == nil || r.Body == http.NoBody {
		return buf, nil
	}
	if r.ContentLength > limit {
		bufPool.Put(buf)
		return nil, tooLarge(limit)
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	_ = r.Body.Close()
	if err != nil {
		bufPool.Put(buf)
		return nil, contract.Wrap(contract.KindInvalid, "idempotency.http", err).WithCode("idempotency.body_unreadable")
	}
	if int64(buf.Len()) > limit {
		bufPool.Put(buf)
		return nil, tooLarge(limit)
	}
	return buf, nil
}

func tooLarge(limit int64) error {
	return contract.New(contract.KindTooLarge, "idempotency.http",
		"request body larger than "+strconv.FormatInt(limit, 10)+" bytes").WithCode("idempotency.body_too_large")
}

// replayedTrue is shared by every replay: header values are not modified in place.
var replayedTrue = []string{"true"}

func writeReplay(w http.ResponseWriter, res Result) {
	h := w.Header()
	for k, vs := range res.Header {
		h[k] = append([]string(nil), vs...) // the stored values may be shared with the store
	}
	h[HeaderReplayed] = replayedTrue
	status := res.StatusCode
	if status < 200 || status > 999 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(res.Body)
}

// writeProblem writes err as a problem; status 0 means the status of err's
// kind. A retry-after hint becomes a Retry-After header, for 409 too (the
// draft's "retry later" for a request in flight).
func writeProblem(w http.ResponseWriter, r *http.Request, status int, err error) {
	if d, ok := contract.RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	if status == 0 {
		contract.WriteProblem(w, r, err)
		return
	}
	p := contract.ProblemFrom(err)
	p.Status, p.Title = status, http.StatusText(status)
	if r != nil && r.URL != nil {
		p.Instance = r.URL.Path
	}
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", contract.ProblemContentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// problemResult renders err as a stored problem response.
func problemResult(err error) Result {
	p := contract.ProblemFrom(err)
	body, _ := json.Marshal(p)
	return Result{StatusCode: p.Status, Header: http.Header{"Content-Type": {contract.ProblemContentType}}, Body: body}
}

// recorder passes a response through to the client and keeps a copy of
// its status, replay headers and body (up to limit).
type recorder struct {
	w        http.ResponseWriter
	limit    int
	replay   []string
	status   int
	header   http.Header
	buf      []byte
	overflow bool
}

func (rc *recorder) Header() http.Header { return rc.w.Header() }

func (rc *recorder) WriteHeader(code int) {
	if rc.status != 0 {
		return
	}
	if code >= 100 && code < 200 { // informational: pass on, not final
		rc.w.WriteHeader(code)
		return
	}
	rc.status = code
	src := rc.w.Header()
	for _, k := range rc.replay {
		if vs, ok := src[k]; ok {
			if rc.header == nil {
				rc.header = make(http.Header, len(rc.replay))
			}
			rc.header[k] = append([]string(nil), vs...)
		}
	}
	rc.w.WriteHeader(code)
}

func (rc *recorder) Write(p []byte) (int, error) {
	if rc.status == 0 {
		rc.WriteHeader(http.StatusOK)
	}
	if !rc.overflow {
		if len(rc.buf)+len(p) > rc.limit {
			rc.overflow, rc.buf = true, nil
		} else {
			rc.buf = append(rc.buf, p...)
		}
	}
	return rc.w.Write(p)
}

// Flush flushes the underlying writer when it can.
func (rc *recorder) Flush() {
	if rc.status == 0 {
		rc.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rc.w).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rc *recorder) Unwrap() http.ResponseWriter { return rc.w }
