package idempotency

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/rwcap"
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

// DefaultReplayHeaders returns the response headers stored and replayed
// when MiddlewareConfig.ReplayHeaders is nil. Set-Cookie and other
// per-response credentials are deliberately absent. It returns a new
// slice on every call: changing it changes no middleware.
func DefaultReplayHeaders() []string {
	return []string{
		"Content-Type", "Content-Encoding", "Content-Language", "Content-Location",
		"Location", "ETag", "Last-Modified", "Cache-Control", "Link",
	}
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
	// Scope returns the caller's identity (tenant, account, user) from the
	// request, typically from what authentication put on its context.
	// Keys are stored per scope, so one caller can never replay, probe or
	// block another's requests. Use an identity that outlives credentials,
	// not the API key or token itself: a client that rotates its key and
	// then retries a request whose answer it lost would land in a new scope
	// and run the operation again. Required: a single-caller service
	// returns a constant. An error is written as a problem with the status of its
	// kind as contract.KindOf tells it: a *contract.Error keeps its kind,
	// a timeout (an identity lookup that timed out) is 504, a refused
	// connection 503; an error KindOf cannot classify, and an empty
	// scope, are 401 (code idempotency.no_scope).
	Scope func(*http.Request) (string, error)
	// Methods the middleware applies to; others pass through. Default
	// (nil) POST and PATCH. Methods are case-sensitive: a name that is not
	// an HTTP token, or a lowercase standard method ("post"), is refused,
	// and so is an empty, non-nil list, which would protect nothing.
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
	// Memory for the body is taken as its bytes arrive, not on the word of
	// its Content-Length (of which at most 32 KiB is set aside ahead), so
	// a large limit costs nothing until a large body is sent. Default 1 MiB.
	MaxBodyBytes int64
	// MaxResponseBytes is the largest response body stored. A larger
	// response still reaches the first client unchanged, but is not kept:
	// the key is completed with a 409 problem (code
	// "idempotency.response_not_stored") that duplicates get, so the
	// operation never runs twice. The same happens when the store refuses
	// a response as too large (a MemoryStore's per-shard byte budget, or
	// the room its running claims leave); should it refuse even the 409,
	// the key is held in progress for the retention period instead.
	// Default 1 MiB.
	MaxResponseBytes int
	// FingerprintHeaders are request headers included in the fingerprint
	// besides method, request target (path with query, as the client sent
	// it: see Middleware) and body; a header sent with an empty value and
	// one not sent are different requests. Default none. A name
	// that is not an HTTP token (a stray space or colon) is refused.
	FingerprintHeaders []string
	// ReplayHeaders are the response headers stored and replayed. Default
	// DefaultReplayHeaders(). A name that is not an HTTP token is refused.
	// They name the trailer fields stored and replayed too: those the
	// handler declared in a Trailer header (which is replayed as it was,
	// whatever the list says) or set with http.TrailerPrefix, with their
	// values when the handler returned. One caveat: net/http drops a
	// trailer first set with the prefix after the header was written when
	// it sent the response unchunked (HTTP/1.1, short and never flushed);
	// its replay sends it. Declare trailers to have them sent alike.
	ReplayHeaders []string
	// StoreStatus reports whether a response status is stored and replayed
	// (true) or releases the key so the client may retry (false). Default
	// DefaultStoreStatus. It is not asked about 101 Switching Protocols or a
	// hijacked connection: their duplicates get a 409 (see Middleware).
	StoreStatus func(status int) bool
}

// Middleware implements the IETF Idempotency-Key draft as net/http
// middleware. It works with any router: Wrap has the signature every
// router's Use accepts. A Middleware is safe for concurrent use.
//
// A request already running under a Middleware's claim of its key (one
// applied twice, router-wide and again on a route or a mounted sub-router,
// or two nested) passes through the inner one: the outer protects it.
//
// For a request whose method is configured:
//
//   - no Idempotency-Key: 400 problem (code idempotency.key_missing), unless KeyOptional;
//   - a malformed, repeated or too long key: 400 (idempotency.key_invalid);
//   - a body over MaxBodyBytes: 413;
//   - the key seen before with another method, path, query, body or
//     fingerprinted header: 422 (idempotency.key_reused). Path and query
//     are the request target as the client sent it (r.RequestURI), not
//     r.URL as http.StripPrefix or a router's mount rewrote it: the same
//     key under /v1/payments and /v2/payments is two requests;
//   - the first request still in flight: 409 (idempotency.in_progress)
//     with Retry-After, or, under the Wait policy, the first response once
//     it is done;
//   - the first request completed: its stored status, replay headers,
//     body bytes and replay trailers, with Idempotent-Replayed: true;
//   - the store failing: 503 with Retry-After (unless FailOpen);
//   - otherwise the handler runs once. Its response is passed through to
//     the client, not buffered (a flush, through http.Flusher or
//     http.ResponseController, streams it; the handler's writer is an
//     http.Flusher only when the one it wraps can flush), while a copy is
//     kept — of everything the handler wrote,
//     even when the client is gone or timed out and writes fail, except
//     what net/http refuses to send to any client (past Content-Length, a
//     body on a 204 or 304); then the response is stored if StoreStatus
//     accepts its status, else the key is released. A handler that wrote
//     nothing before its context ended leaves the key to a retry
//     (released, or its lease lost), and its client gets a problem, not
//     net/http's empty 200: 409 (idempotency.lease_lost) when the lease
//     was lost, 504 past a deadline. A panic releases the key and continues. A handler that hijacks the connection or answers
//     101 Switching Protocols gives no response to keep: duplicates get a
//     409 (idempotency.response_not_stored), as for one over
//     MaxResponseBytes.
//
// Put deadline middleware that answers for a handler still running, such
// as http.TimeoutHandler, outside the Middleware, never between it and the
// handler. Inside, its 503 is all the Middleware sees: it releases the key
// while the handler goes on in the background, and the client's retry runs
// the handler a second time alongside the first. Outside, the handler's
// context is canceled, duplicates get 409 until it returns, and its own
// answer decides, as for any request whose context ended (see above).
type Middleware struct {
	ex          *Executor
	scope       func(*http.Request) (string, error)
	methods     []string
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
	ex.notStored = func() Result { return problemResult(errResponseNotStored(tooLargeDetail)) }
	m := &Middleware{
		ex: ex, scope: cfg.Scope, optional: cfg.KeyOptional, strict: cfg.StrictKey,
		maxKey: cfg.MaxKeyLength, maxBody: cfg.MaxBodyBytes, maxResp: cfg.MaxResponseBytes,
		storeStatus: cfg.StoreStatus,
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
	if len(methods) == 0 {
		// Not the zero value, and a middleware that applies to no
		// method leaves every request unprotected, silently.
		return nil, configError("MiddlewareConfig.Methods", "empty: list at least one method (nil means POST and PATCH)")
	}
	for _, meth := range methods {
		if meth == "" {
			return nil, configError("MiddlewareConfig.Methods", "empty method")
		}
		// A method no request can have would leave the requests meant
		// unprotected, silently.
		if !validToken(meth) {
			return nil, configError("MiddlewareConfig.Methods", "%q is not an HTTP method", meth)
		}
		if up := strings.ToUpper(meth); up != meth && slices.Contains(standardMethods, up) {
			return nil, configError("MiddlewareConfig.Methods", "methods are case-sensitive: %q is not %s", meth, up)
		}
		if !m.applies(meth) {
			m.methods = append(m.methods, meth)
		}
	}
	for _, h := range cfg.FingerprintHeaders {
		if !validToken(h) { // never in a request: silently not fingerprinted
			return nil, configError("MiddlewareConfig.FingerprintHeaders", "%q is not a header name", h)
		}
		m.fpHeaders = append(m.fpHeaders, http.CanonicalHeaderKey(h))
	}
	replay := cfg.ReplayHeaders
	if replay == nil {
		replay = DefaultReplayHeaders()
	}
	for _, h := range replay {
		if !validToken(h) { // never in a response: silently not replayed
			return nil, configError("MiddlewareConfig.ReplayHeaders", "%q is not a header name", h)
		}
		m.replay = append(m.replay, http.CanonicalHeaderKey(h))
	}
	return m, nil
}

// standardMethods are the methods of net/http's Method constants.
var standardMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

// validToken reports whether s is an HTTP token (RFC 9110, section 5.6.2),
// the syntax of a method and of a header name: one or more visible ASCII
// characters other than delimiters.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Wrap returns next guarded by the middleware.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.applies(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		vals := r.Header[HeaderKey]
		if len(vals) == 1 {
			if outer, ok := r.Context().Value(claimedKey{}).(string); ok && outer == vals[0] {
				// A Middleware already runs this request under its claim
				// of this key (applied router-wide and again on the
				// route). Claiming again would find that claim in
				// progress and answer 409, which the outer one would
				// store as the request's answer.
				next.ServeHTTP(w, r)
				return
			}
		} // HeaderKey is canonical: Values(HeaderKey) without canonicalising it again
		if len(vals) == 0 {
			if m.optional {
				next.ServeHTTP(w, r)
				return
			}
			contract.WriteProblem(w, r, withKind(errFrom(ErrKeyMissing, "idempotency.http", nil), contract.KindMalformed))
			return
		}
		if len(vals) > 1 {
			contract.WriteProblem(w, r, withKind(invalidKey("repeated header"), contract.KindMalformed))
			return
		}
		key, err := ParseKey(vals[0], m.maxKey, m.strict)
		if err != nil {
			contract.WriteProblem(w, r, withKind(err, contract.KindMalformed))
			return
		}
		scope, err := m.scope(r)
		if err != nil || scope == "" {
			if contract.KindOf(err) == contract.KindInternal && !errors.As(err, new(*contract.Error)) {
				err = contract.New(contract.KindUnauthorized, "idempotency.http", "no caller identity for the idempotency key").WithCode("idempotency.no_scope")
			}
			contract.WriteProblem(w, r, err)
			return
		}
		rb := getReqBuf()
		defer putReqBuf(rb)
		fp, bodyAt, err := m.readAndFingerprint(rb, r)
		if err != nil {
			contract.WriteProblem(w, r, err)
			return
		}

		var rec *recorder
		res, slot, replayed, err := m.ex.run(r.Context(), Key{Scope: scope, Key: key}, fp, true, nil, func(ctx context.Context) (Result, bool, error) {
			rec = &recorder{w: w, limit: m.maxResp, replay: m.replay}
			body := bytes.Clone(rb.b[bodyAt:]) // the handler may keep it; the buffer goes back to the pool
			if _, owned := Token(ctx); owned { // not when failing open: no claim protects it
				ctx = context.WithValue(ctx, claimedKey{}, vals[0])
			}
			r2 := r.WithContext(ctx)
			r2.Body = io.NopCloser(bytes.NewReader(body))
			r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			next.ServeHTTP(rec.writer(), r2)
			return m.outcome(ctx, rec)
		})
		if rec != nil {
			// The handler ran (fresh, or fail-open): its response is
			// already with the client. Errors were logged and counted.
			if rec.status == 0 && !rec.switched {
				// Unless it wrote nothing before its context ended (see
				// outcome): the key was released or the lease lost, and
				// the empty 200 net/http would write for it would tell a
				// client still there that it succeeded. It gets the
				// problem: the lost lease, or the end of its request
				// (504 past a deadline; 499 for a client gone, who reads
				// nothing).
				if err == nil {
					err = context.Cause(r.Context())
				}
				contract.WriteProblem(w, r, err)
			}
			return
		}
		if err != nil {
			if errors.Is(err, ErrMismatch) {
				err = withKind(err, contract.KindInvalid) // 422, as the draft requires
			}
			contract.WriteProblem(w, r, err)
			return
		}
		if replayed {
			writeReplay(w, res, slot)
		}
	})
}

// claimedKey marks the context of a request a Middleware runs under its
// claim, with the Idempotency-Key header value claimed: a Middleware
// meeting the same request again lets it through (see Wrap). A request
// made in process under that context with another key (a batch endpoint's
// sub-requests) is claimed as usual.
type claimedKey struct{}

// outcome decides what the handler's response means for the key.
func (m *Middleware) outcome(ctx context.Context, rec *recorder) (Result, bool, error) {
	if rec.switched {
		// The handler hijacked the connection or switched protocols: it
		// ran, but what it answered went past the recorder, and nothing
		// may be written on a connection net/http no longer serves.
		// Duplicates get a 409, as for a response too large to keep,
		// rather than a second run or a response that never was.
		return problemResult(errResponseNotStored(switchedDetail)), true, nil
	}
	if rec.status == 0 {
		if ctx.Err() != nil { // nothing written and the request is gone: a timeout
			return Result{}, false, nil
		}
		rec.WriteHeader(http.StatusOK) // net/http would answer 200 with an empty body
	}
	if !m.storeStatus(rec.status) {
		return Result{}, false, nil
	}
	if ctx.Err() != nil && rec.status >= 400 {
		// The request timed out or the client went away, and the handler
		// answered with an error: treat it as the timeout it is. A 2xx or
		// 3xx (a 303 See Other to what a POST created) is a success: the
		// work was done, and its retry must get that answer, not a run.
		return Result{}, false, nil
	}
	if rec.overflow {
		return problemResult(errResponseNotStored(tooLargeDetail)), true, nil
	}
	body := rec.buf
	if cap(body)-len(body) > len(body)/8 {
		body = bytes.Clone(body) // the growth slack of append would stay allocated for the retention period
	}
	header := addTrailers(rec.header, rec.w.Header(), rec.declared, m.replay)
	return Result{StatusCode: rec.status, Header: header, Body: body}, true, nil
}

// addTrailers adds to stored (storedHeader's copy, or nil) the trailer
// fields the handler set and replay names, as they are when it returned,
// and returns it. They are stored under http.TrailerPrefix and their name:
// those set with that prefix as they were set (net/http sends their name
// as it is), and the values of each trailer declared in the Trailer header
// (declared) under its canonical name, after any of the same key set with
// the prefix, as net/http sends them. A declaration is stored as its
// Trailer header, whatever replay says: the fields it names are not
// themselves replayed unless replay names them.
func addTrailers(stored, src http.Header, declared, replay []string) http.Header {
	for k, vs := range src {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && slices.Contains(replay, http.CanonicalHeaderKey(name)) {
			if stored == nil {
				stored = make(http.Header)
			}
			stored[k] = slices.Clone(vs)
		}
	}
	if len(declared) == 0 {
		return stored
	}
	if stored == nil {
		stored = make(http.Header)
	}
	stored["Trailer"] = declared
	var done []string
	forEachTrailer(declared, func(name string) {
		if slices.Contains(done, name) {
			return // net/http sends a trailer declared twice twice: so will the replay
		}
		done = append(done, name)
		if vs := src[name]; len(vs) > 0 && slices.Contains(replay, name) {
			k := http.TrailerPrefix + name
			stored[k] = append(slices.Clip(stored[k]), vs...)
		}
	})
	return stored
}

// forEachTrailer calls fn with the canonical name of each trailer that the
// Trailer header values decl declare: comma-separated, spaces and tabs
// around them ignored, as net/http reads them.
func forEachTrailer(decl []string, fn func(name string)) {
	for _, v := range decl {
		for elem := range strings.SplitSeq(v, ",") {
			if elem = strings.Trim(elem, " \t"); elem != "" {
				fn(http.CanonicalHeaderKey(elem))
			}
		}
	}
}

// applies reports whether the middleware applies to method.
func (m *Middleware) applies(method string) bool {
	for _, meth := range m.methods { // a handful: cheaper than hashing into a map
		if meth == method {
			return true
		}
	}
	return false
}

// reqBuf is a pooled buffer holding a request's fingerprint framing
// followed by its body, and the fingerprint's hex digits.
type reqBuf struct {
	b   []byte
	hex [2 * sha256.Size]byte
}

// maxPooledReqBuf is the largest buffer returned to the pool: a rare large
// body should not keep its memory pinned in the pool.
const maxPooledReqBuf = 64 << 10

var reqBufPool = sync.Pool{New: func() any { return &reqBuf{b: make([]byte, 0, 1024)} }}

func getReqBuf() *reqBuf { return reqBufPool.Get().(*reqBuf) }

func putReqBuf(rb *reqBuf) {
	if cap(rb.b) <= maxPooledReqBuf {
		rb.b = rb.b[:0]
		reqBufPool.Put(rb)
	}
}

// readAndFingerprint reads the request body, up to MaxBodyBytes, into rb
// (the body is rb.b[bodyAt:]) and returns the request's fingerprint:
// Fingerprint(method, target, "Name:v1\x00v2" per fingerprinted header
// ("Name:" when absent, "Name=" when present with one empty value), body),
// where target is the request target as the server received it
// (r.RequestURI), or, for a request built in process (no RequestURI), the
// escaped path plus "?" and the raw query when there is one. The framing is written into rb ahead of the body, so the
// body is read once and hashed in place; the fingerprint returned borrows
// rb's memory and is valid only until rb goes back to the pool.
func (m *Middleware) readAndFingerprint(rb *reqBuf, r *http.Request) (fp string, bodyAt int, err error) {
	b := appendPart(rb.b[:0], r.Method)
	if r.RequestURI != "" {
		// As received: r.URL may have been rewritten since (http.StripPrefix,
		// a router's mount), and two mounts of one handler must not share
		// their answers.
		b = appendPart(b, r.RequestURI)
	} else if path := r.URL.EscapedPath(); r.URL.RawQuery != "" {
		b = binary.BigEndian.AppendUint64(b, uint64(len(path)+1+len(r.URL.RawQuery)))
		b = append(append(append(b, path...), '?'), r.URL.RawQuery...)
	} else {
		b = appendPart(b, path)
	}
	for _, h := range m.fpHeaders {
		vs := r.Header[h]
		if len(vs) == 1 && vs[0] == "" {
			// Present but empty: "Name:" alone is an absent header (as
			// fingerprints have always been made), so this one is "Name=".
			b = binary.BigEndian.AppendUint64(b, uint64(len(h)+1))
			b = append(append(b, h...), '=')
			continue
		}
		n := len(h) + 1 + max(len(vs)-1, 0) // "Name:" and the NUL separators
		for _, v := range vs {
			n += len(v)
		}
		b = binary.BigEndian.AppendUint64(b, uint64(n))
		b = append(append(b, h...), ':')
		for i, v := range vs {
			if i > 0 {
				b = append(b, 0)
			}
			b = append(b, v...)
		}
	}
	lenAt := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	bodyAt = len(b)
	b, err = readBody(b, r, m.maxBody)
	rb.b = b
	if err != nil {
		return "", 0, err
	}
	binary.BigEndian.PutUint64(b[lenAt:], uint64(len(b)-bodyAt))
	sum := sha256.Sum256(b)
	hex.Encode(rb.hex[:], sum[:])
	// The fingerprint borrows rb's bytes: it is only compared while rb is
	// held, and run is told so, so that whatever keeps it copies it.
	return unsafe.String(&rb.hex[0], len(rb.hex)), bodyAt, nil
}

// appendPart appends s framed by its length, as Fingerprint frames a part.
func appendPart(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint64(b, uint64(len(s))), s...)
}

// maxBodyPresize is the most room readBody sets aside for a request body
// before any of it has arrived. Content-Length is only the client's word:
// a request declaring a large body and sending little or nothing must not
// pin what it declared (up to MaxBodyBytes, for as long as the read takes
// to time out), nor a declared length near MaxInt64 overflow anything.
// Past it, the buffer grows with the bytes that do arrive.
const maxBodyPresize = 32 << 10

// minBodyGrowth is the least room added to a full body buffer.
const minBodyGrowth = 512

// readBody appends the request body, up to limit bytes, to b. The buffer
// grows with the bytes that arrive (see bodyGrowth), never on the word of
// Content-Length beyond maxBodyPresize.
func readBody(b []byte, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return b, nil
	}
	if r.ContentLength > limit {
		return b, tooLarge(limit)
	}
	start := len(b)
	if r.ContentLength > 0 {
		// A small declared body at once, with room for the read that
		// finds EOF (+1); the first maxBodyPresize bytes of a larger one.
		b = reserve(b, int(min(r.ContentLength, maxBodyPresize))+1)
	}
	for {
		if len(b) == cap(b) {
			b = reserve(b, bodyGrowth(len(b)-start, r.ContentLength, limit))
		}
		room := cap(b) - len(b)
		if left := limit - int64(len(b)-start); left < int64(room) {
			room = int(left) + 1 // one byte past the limit tells "too large"
		}
		n, err := r.Body.Read(b[len(b) : len(b)+room])
		b = b[:len(b)+n]
		if int64(len(b)-start) > limit {
			_ = r.Body.Close()
			return b, tooLarge(limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			_ = r.Body.Close()
			if me := (*http.MaxBytesError)(nil); errors.As(err, &me) { // an outer http.MaxBytesReader
				return b, tooLarge(me.Limit)
			}
			// A timeout or a client gone keeps its kind (504, 499);
			// anything else is a request that could not be read (400).
			k := contract.KindOf(err)
			if k == contract.KindInternal {
				k = contract.KindMalformed
			}
			return b, contract.Wrap(k, "idempotency.http", err).WithCode("idempotency.body_unreadable")
		}
	}
	_ = r.Body.Close()
	return b, nil
}

// bodyGrowth is the room to add to a full buffer holding got bytes of a
// request body declared as declared bytes (-1: unknown) with limit
// MaxBodyBytes: as much again as has arrived (at least minBodyGrowth), so
// the buffer stays within twice the bytes received and the copies add up
// to less than the body; but no more than the rest of the declared body
// and the read that finds EOF, so that a body as long as it said ends in
// a buffer of its size; and no more than one byte past the limit, which
// tells "too large". It is at least 1, since got <= limit; the 1 is added
// only to what is less than n, so that no sum overflows (a limit or a
// declared length of MaxInt64 is no limit at all).
func bodyGrowth(got int, declared, limit int64) int {
	n := int64(max(got, minBodyGrowth))
	if rest := declared - int64(got); rest >= 0 && rest < n {
		n = rest + 1
	}
	if left := limit - int64(got); left < n {
		n = left + 1
	}
	return int(n)
}

// reserve returns b, or a copy of it in a new array of exactly the
// capacity needed, with room for n more bytes.
func reserve(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

func tooLarge(limit int64) error {
	return contract.New(contract.KindTooLarge, "idempotency.http",
		"request body larger than "+strconv.FormatInt(limit, 10)+" bytes").WithCode("idempotency.body_too_large")
}

// replayHeaders is a stored response's headers in the form a replay writes
// them: names as stored, and every value in one slice, followed by "true"
// for Idempotent-Replayed. It is memoized next to a MemoryStore record
// from the record's second replay on.
type replayHeaders struct {
	names []string
	ends  []int    // the values of names[i] are vals[ends[i-1]:ends[i]]
	vals  []string // immutable: every replay copies it
}

func newReplayHeaders(h http.Header) *replayHeaders {
	rh := &replayHeaders{names: make([]string, 0, len(h)), ends: make([]int, 0, len(h))}
	for k := range h {
		rh.names = append(rh.names, k)
	}
	slices.Sort(rh.names)
	for _, k := range rh.names {
		rh.vals = append(rh.vals, h[k]...)
		rh.ends = append(rh.ends, len(rh.vals))
	}
	rh.vals = append(rh.vals, "true")
	return rh
}

// writeReplay writes a stored response, with Idempotent-Replayed: true.
// The header values written are a fresh copy, made in one allocation: the
// stored ones are shared with the store and with other replays, and a
// later handler or middleware may modify what it finds in the response's
// header map.
func writeReplay(w http.ResponseWriter, res Result, slot *memoSlot) {
	rh, _ := slot.load().(*replayHeaders)
	if rh == nil && slot.secondMiss() {
		rh = newReplayHeaders(res.Header)
		slot.store(rh)
	}
	h := w.Header()
	if rh != nil {
		vals := slices.Clone(rh.vals)
		start := 0
		for i, k := range rh.names {
			end := rh.ends[i]
			h[k] = vals[start:end:end]
			start = end
		}
		h[HeaderReplayed] = vals[start : start+1 : start+1]
	} else {
		n := 1
		for _, vs := range res.Header {
			n += len(vs)
		}
		vals := make([]string, 0, n)
		for k, vs := range res.Header {
			start := len(vals)
			vals = append(vals, vs...)
			h[k] = vals[start:len(vals):len(vals)]
		}
		vals = append(vals, "true")
		h[HeaderReplayed] = vals[n-1 : n : n]
	}
	// A declared trailer is set after the body, under its name, as the
	// handler set it: net/http then sends it as it did the first time (it
	// sends a declared trailer only if its name may be one). Trailers set
	// with http.TrailerPrefix stay in the header map, where net/http finds
	// them when the response ends.
	var late http.Header
	if decl, ok := res.Header["Trailer"]; ok {
		forEachTrailer(decl, func(name string) {
			if vs, ok := h[http.TrailerPrefix+name]; ok {
				if late == nil {
					late = make(http.Header)
				}
				late[name] = vs
				delete(h, http.TrailerPrefix+name)
			}
		})
	}
	status := res.StatusCode
	if status < 200 || status > 999 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(res.Body)
	maps.Copy(h, late)
}

// withKind returns a copy of err's *contract.Error with kind k, for the
// problems the middleware answers with a status other than their kind's
// (contract.WriteProblem writes the kind's): ErrKeyMissing and
// ErrKeyInvalid, of KindInvalid (422), are 400 (KindMalformed); ErrMismatch,
// of KindPreconditionFailed (412), is 422 (KindInvalid), as the draft
// requires. Code, detail, field errors and cause are kept.
func withKind(err error, k contract.Kind) error {
	e := *contract.As(err)
	e.Kind = k
	return &e
}

// errResponseNotStored is what duplicates of a request get when its
// response could not be kept — too large (over MaxResponseBytes, or refused
// by the store as too large), or never seen (the handler hijacked the
// connection or switched protocols): a 409, never a second execution.
func errResponseNotStored(detail string) error {
	return contract.New(contract.KindConflict, "idempotency.http", detail).
		WithCode("idempotency.response_not_stored")
}

// Details of errResponseNotStored.
const (
	tooLargeDetail = "the response to the first request with this key was too large to store; it was sent once"
	switchedDetail = "the first request with this key took over its connection (hijacked, or switched protocols); its response was not stored"
)

// problemResult renders err as a stored problem response: what
// contract.WriteProblem writes for it, headers included, so that its
// replays are marked as every other problem of the middleware is (without
// "instance": it is written for no request in particular).
func problemResult(err error) Result {
	pw := problemWriter{h: make(http.Header, 4)}
	contract.WriteProblem(&pw, nil, err)
	return Result{StatusCode: pw.status, Header: pw.h, Body: pw.body}
}

// problemWriter is the http.ResponseWriter problemResult has
// contract.WriteProblem write to.
type problemWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (pw *problemWriter) Header() http.Header { return pw.h }

func (pw *problemWriter) WriteHeader(code int) {
	if pw.status == 0 {
		pw.status = code
	}
}

func (pw *problemWriter) Write(p []byte) (int, error) {
	if pw.status == 0 {
		pw.status = http.StatusOK
	}
	pw.body = append(pw.body, p...)
	return len(p), nil
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
	// switched: the handler took the connection over, by a hijack or
	// 101 Switching Protocols. What it answered is not an HTTP response
	// the recorder sees, so there is nothing to keep.
	switched bool
	// declared is the Trailer header as the status was written, when it
	// had one.
	declared []string
}

func (rc *recorder) Header() http.Header { return rc.w.Header() }

func (rc *recorder) WriteHeader(code int) {
	if rc.status != 0 || rc.switched { // superfluous, or on a connection taken over
		return
	}
	// Informational: passed on, not final. 101 Switching Protocols is
	// final, as net/http treats it: the connection leaves HTTP.
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rc.w.WriteHeader(code)
		return
	}
	rc.status = code
	if code == http.StatusSwitchingProtocols {
		rc.switched = true
	} else {
		h := rc.w.Header()
		rc.header = storedHeader(h, rc.replay)
		// net/http reads the trailers declared with the header; so is
		// the declaration kept.
		if decl := h["Trailer"]; len(decl) > 0 {
			rc.declared = slices.Clone(decl)
		}
	}
	rc.w.WriteHeader(code)
}

// Write passes p on and keeps a copy of it for the replay. The copy is of
// the answer the handler gave, not of what reached the client: a client
// that went away or timed out (a broken connection, http.TimeoutHandler's
// ErrHandlerTimeout, any other write error, or a short write) retries to
// get that answer, and a replay of the bytes that happened to get through
// would be a truncated or empty response for the whole retention period.
// The exception is bytes the protocol refused, which no client could ever
// receive: past a declared Content-Length (http.ErrContentLength) or a body
// where the status allows none, on a 204 or 304 (http.ErrBodyNotAllowed).
// Those are not kept, so the replay is the response the first client was
// sent. A write to a connection hijacked elsewhere (http.ErrHijacked) means
// there is no response to keep.
func (rc *recorder) Write(p []byte) (int, error) {
	if rc.switched {
		return rc.w.Write(p) // not a response body: nothing to keep
	}
	if rc.status == 0 {
		rc.WriteHeader(http.StatusOK)
	}
	n, err := rc.w.Write(p)
	kept := p
	switch {
	case err == nil && n == len(p):
	case errors.Is(err, http.ErrBodyNotAllowed) || errors.Is(err, http.ErrContentLength):
		kept = p[:n]
	case errors.Is(err, http.ErrHijacked):
		rc.switched = true
		return n, err
	}
	if !rc.overflow {
		if len(rc.buf)+len(kept) > rc.limit {
			rc.overflow, rc.buf = true, nil
		} else {
			rc.buf = append(rc.buf, kept...)
		}
	}
	return n, err
}

// storedHeader copies the headers named in replay from src, or returns
// nil when there are none. The map is sized for what it holds, and the
// values share one slice: a stored response may stay in memory for the
// whole retention period, and a map sized for every replayable header
// (nine by default) would cost twice what one of up to eight does.
func storedHeader(src http.Header, replay []string) http.Header {
	keys, vals := 0, 0
	for _, k := range replay {
		if vs, ok := src[k]; ok {
			keys++
			vals += len(vs)
		}
	}
	if keys == 0 {
		return nil
	}
	h := make(http.Header, keys)
	all := make([]string, 0, vals)
	for _, k := range replay {
		if vs, ok := src[k]; ok {
			start := len(all)
			all = append(all, vs...)
			h[k] = all[start:len(all):len(all)]
		}
	}
	return h
}

// writer returns the ResponseWriter the handler gets: rc, which can
// neither flush nor hijack, with Flush and FlushError when the writer it
// wraps can flush, and with Hijack when it can be hijacked. So a handler
// finds an http.Flusher or an http.Hijacker exactly when it would without
// the middleware (a Flush that did nothing would tell a streaming handler
// its bytes were on their way; a Hijacker that always fails would stop a
// handler that hijacks only when it can from taking its other way), and
// http.ResponseController agrees: through rc alone it unwraps to a writer
// that cannot, and returns http.ErrNotSupported, committing nothing (a
// handler that then answers without streaming still sets its own status).
//
// Flushing streams: the recorder passes the response through as it is
// written and keeps a copy, so what the handler flushed reaches its client
// while it runs, and duplicates get the whole response once it returned.
func (rc *recorder) writer() http.ResponseWriter {
	switch flush, hijack := rwcap.CanFlush(rc.w), rwcap.CanHijack(rc.w); {
	case flush && hijack:
		return flushingHijackingRecorder{flushingRecorder{rc}}
	case flush:
		return flushingRecorder{rc}
	case hijack:
		return hijackingRecorder{rc}
	}
	return rc
}

// hijackingRecorder is a recorder over a writer that can be hijacked.
type hijackingRecorder struct{ *recorder }

// Hijack: see recorder.hijack.
func (h hijackingRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.hijack() }

// flushingHijackingRecorder is a recorder over a writer that can flush and
// be hijacked.
type flushingHijackingRecorder struct{ flushingRecorder }

// Hijack: see recorder.hijack.
func (f flushingHijackingRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return f.hijack()
}

// flushingRecorder is a recorder over a writer that can flush.
type flushingRecorder struct{ *recorder }

// Flush flushes the underlying writer (see FlushError).
func (f flushingRecorder) Flush() { _ = f.FlushError() }

// FlushError flushes the underlying writer, committing the status (200
// when none was written) as net/http does.
func (f flushingRecorder) FlushError() error {
	if f.status == 0 && !f.switched {
		f.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(f.w).Flush()
}

// hijack lets the handler take the connection over, through the
// underlying writer, and marks the response as one the recorder cannot
// keep. The handler's writer has it as Hijack when the underlying writer
// can be hijacked (see writer): it serves both http.Hijacker and
// http.ResponseController, which asks a writer for Hijack before it
// unwraps it, so a hijack cannot bypass the recorder.
func (rc *recorder) hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rc.w).Hijack()
	if err == nil {
		rc.switched = true
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer, for
// Flush, deadlines and full duplex.
func (rc *recorder) Unwrap() http.ResponseWriter { return rc.w }
