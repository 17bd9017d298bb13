package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/logctx"
)

// Limits of the payments contract.
const (
	maxBodyBytes   = 64 << 10
	maxAmountMinor = 10_000_000 // 100,000.00 in a two-decimal currency
)

// How the idempotency middleware parses Idempotency-Key. create parses the
// header again with the same settings to derive the gateway key (see
// gatewayKey): both must see the same key, or two spellings of one key
// ("order-9" quoted and bare) would be one key to the middleware but two
// to the gateway.
const (
	maxKeyBytes = idempotency.DefaultMaxKeyLength
	strictKey   = false // bare tokens are accepted as well as "quoted" keys
)

// createPaymentRequest is the body of POST /payments.
type createPaymentRequest struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	Payer       string `json:"payer"`
	Payee       string `json:"payee"`
	Reference   string `json:"reference"`
}

func (p *createPaymentRequest) validate() error {
	v := contract.NewValidator()
	v.Range("amount_minor", p.AmountMinor, 1, maxAmountMinor)
	v.Currency("currency", p.Currency)
	// Required first: white space only is empty too (" " names no
	// account), and Length alone would accept it.
	v.Required("payer", p.Payer)
	v.Length("payer", p.Payer, 1, 64)
	v.Required("payee", p.Payee)
	if v.Length("payee", p.Payee, 1, 64) && p.Payer != "" {
		v.Check(p.Payee != p.Payer, "payee", "must differ from payer")
	}
	v.Required("reference", p.Reference)
	v.Length("reference", p.Reference, 1, 128)
	return v.Err()
}

// Payment is the resource the service creates.
type Payment struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Payer       string    `json:"payer"`
	Payee       string    `json:"payee"`
	Reference   string    `json:"reference"`
	ChargeID    string    `json:"charge_id"`
	CreatedAt   time.Time `json:"created_at"`

	owner string // the merchant who created it; never serialized
	seq   int    // creation order, for listing; never serialized
}

// payments is the service's own data: in memory, per process, for the
// example. With -store redis or postgres the idempotency records are shared
// and durable but these payments are not: a 201 replayed by another
// instance, or after a restart, carries the whole payment in its body, but
// its Location answers 404 there. A real service keeps its payments in its
// database and writes each one in the same transaction as the idempotency
// record that completes the request (pgstore.DoTx), so a replay always
// points at a payment that exists.
type payments struct {
	mu       sync.Mutex
	byID     map[string]Payment
	byCharge map[string]string // owner NUL charge id → payment id
	seq      int
}

func newPayments() *payments {
	return &payments{byID: map[string]Payment{}, byCharge: map[string]string{}}
}

// add records p, captured by the gateway's charge p.ChargeID, and returns
// it with its id; or, when that charge is recorded already, the payment
// recorded then, and false. One charge is one payment: a request can run
// again after its charge was made and recorded (its idempotency record
// could not be completed, a store blip, and its lease ran out before the
// client's retry), and the gateway answers the retry's same gateway key
// with the same charge. Recorded twice, the merchant would see, ship and
// reconcile two payments for the money moved once.
func (s *payments) add(p Payment) (Payment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ck := p.owner + "\x00" + p.ChargeID
	if id, ok := s.byCharge[ck]; ok {
		return s.byID[id], false
	}
	s.seq++
	// Random, not sequential: a sequence would tell a caller how many
	// payments others made, and which ids missing from its own list exist.
	p.ID, p.seq = "pay_"+rand.Text(), s.seq
	s.byID[p.ID] = p
	s.byCharge[ck] = p.ID
	return p, true
}

// get returns owner's payment id. Another caller's payment is not found,
// exactly like a missing one, so ids cannot be probed.
func (s *payments) get(owner, id string) (Payment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[id]
	if !ok || p.owner != owner {
		return Payment{}, false
	}
	return p, true
}

// list returns owner's payments, oldest first.
func (s *payments) list(owner string) []Payment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Payment, 0)
	for _, p := range s.byID {
		if p.owner == owner {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Payment) int { return a.seq - b.seq })
	return out
}

// Keys is the service's API key table: the merchant each key
// authenticates. A merchant holds several keys at once so that it can
// rotate them (issue the new one, move its clients over, revoke the old
// one) without downtime. Everything the service keys per caller (the
// idempotency scope, the gateway key, the payments' owner) is the
// merchant, never the key: a request retried with a rotated key is the
// same merchant's same request, replayed, not charged again. Keys are
// kept as their SHA-256, never in clear, as a real service keeps them in
// its database. Safe for concurrent use.
type Keys struct {
	mu       sync.RWMutex
	merchant map[[sha256.Size]byte]string
}

// NewKeys returns a table holding keys (API key → merchant id).
func NewKeys(keys map[string]string) (*Keys, error) {
	k := &Keys{merchant: map[[sha256.Size]byte]string{}}
	for key, merchant := range keys {
		if err := k.Issue(key, merchant); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Issue makes key authenticate merchant. A key issued to another merchant
// is refused: it would hand that merchant's stored answers to whoever
// holds the key.
func (k *Keys) Issue(key, merchant string) error {
	if key == "" || merchant == "" {
		return contract.New(contract.KindInvalid, "payments.keys", "an API key and its merchant must not be empty").WithCode("config.invalid")
	}
	h := sha256.Sum256([]byte(key))
	k.mu.Lock()
	defer k.mu.Unlock()
	if m, ok := k.merchant[h]; ok && m != merchant {
		return contract.New(contract.KindConflict, "payments.keys", "the API key is issued to another merchant").WithCode("config.invalid")
	}
	k.merchant[h] = merchant
	return nil
}

// Revoke makes key authenticate no one: a request with it is a 401.
func (k *Keys) Revoke(key string) {
	h := sha256.Sum256([]byte(key))
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.merchant, h)
}

// merchantOf returns the merchant key authenticates, false when none
// (never issued, or revoked).
func (k *Keys) merchantOf(key string) (string, bool) {
	h := sha256.Sum256([]byte(key))
	k.mu.RLock()
	defer k.mu.RUnlock()
	m, ok := k.merchant[h]
	return m, ok
}

// Config wires a payments service.
type Config struct {
	Store      idempotency.Store // idempotency records; required
	Keys       *Keys             // API keys and the merchant each authenticates; required
	GatewayURL string            // base URL of the payment gateway (http or https; no query, fragment or trailing slash); required
	Logger     *slog.Logger      // JSON logs with coordinates; required
}

type merchantCtx struct{}

// NewHandler returns the service's HTTP handler:
//
//	logctx middleware (correlation id, access line)
//	└─ mux
//	   ├─ POST /payments   auth → idempotency middleware → create
//	   ├─ GET  /payments/{id}, GET /payments   auth → the caller's own payments only
//	   └─ GET  /healthz
func NewHandler(cfg Config) (http.Handler, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.GatewayURL == "" || cfg.Logger == nil {
		return nil, contract.New(contract.KindInvalid, "payments.NewHandler", "Store, Keys, GatewayURL and Logger are required").WithCode("config.invalid")
	}
	if reason := badGatewayURL(cfg.GatewayURL); reason != "" {
		return nil, contract.New(contract.KindInvalid, "payments.NewHandler", "GatewayURL: "+reason).WithCode("config.invalid")
	}
	gw, err := newGatewayClient(cfg.GatewayURL, cfg.Logger)
	if err != nil {
		return nil, err
	}
	idem, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: cfg.Store, Lease: 30 * time.Second, Logger: cfg.Logger},
		// The authenticated merchant is the idempotency scope: one merchant
		// can never replay or probe another's payments, and a merchant that
		// rotates its API key still gets its retries replayed. Never the key
		// itself: a retry sent with the new key would be charged again.
		Scope:        func(r *http.Request) (string, error) { return caller(r.Context()), nil },
		MaxKeyLength: maxKeyBytes,
		StrictKey:    strictKey,
		MaxBodyBytes: maxBodyBytes,
	})
	if err != nil {
		return nil, err
	}
	store := newPayments()
	svc := &service{gw: gw, store: store, logger: cfg.Logger}

	mux := http.NewServeMux()
	mux.Handle("POST /payments", authenticate(cfg.Keys, idem.Wrap(http.HandlerFunc(svc.create))))
	// Reads are authenticated too and see only the caller's payments: ids
	// are random, but they travel (logs, URLs, support tickets), and an
	// open GET would show a payment to anyone who saw its id.
	mux.Handle("GET /payments/{id}", authenticate(cfg.Keys, http.HandlerFunc(svc.get)))
	mux.Handle("GET /payments", authenticate(cfg.Keys, http.HandlerFunc(svc.list)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	access, err := logctx.NewMiddleware(logctx.MiddlewareConfig{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return access(mux), nil
}

// badGatewayURL says what is wrong with the gateway's base URL, "" when
// nothing: it must be an absolute http or https URL with a host, to which
// charge appends "/charges", so no query, fragment or trailing slash. The
// reason never quotes the URL (it may carry credentials).
func badGatewayURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "must be an absolute http or https URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute http or https URL, got scheme " + strconv.Quote(u.Scheme)
	case u.Host == "":
		return "must name a host"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return "must have no query or fragment (\"/charges\" is appended to it)"
	case strings.HasSuffix(u.Path, "/"):
		return "must not end in \"/\" (\"/charges\" is appended to it)"
	}
	return ""
}

// authenticate requires an X-Api-Key that keys knows and puts the merchant
// it authenticates on the context. An unknown key and a revoked one get
// the same 401: the answer tells nothing of which keys exist or existed.
// It never logs the key itself.
func authenticate(keys *Keys, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Api-Key")
		if key == "" {
			contract.WriteProblem(w, r, contract.New(contract.KindUnauthorized, "payments.auth", "X-Api-Key is required").WithCode("auth.missing_api_key"))
			return
		}
		merchant, ok := keys.merchantOf(key)
		if !ok {
			contract.WriteProblem(w, r, contract.New(contract.KindUnauthorized, "payments.auth", "X-Api-Key is not valid").WithCode("auth.invalid_api_key"))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), merchantCtx{}, merchant)))
	})
}

// caller returns the merchant authenticate put on ctx, "" when none.
func caller(ctx context.Context) string {
	s, _ := ctx.Value(merchantCtx{}).(string)
	return s
}

type service struct {
	gw     *gatewayClient
	store  *payments
	logger *slog.Logger
}

func (s *service) create(w http.ResponseWriter, r *http.Request) {
	ctx := logctx.WithOperation(r.Context(), "payments.create")
	// The key as the middleware parsed it: "order-9" and order-9 are one
	// key, so they must be one gateway key too.
	key, err := idempotency.ParseKey(r.Header.Get(idempotency.HeaderKey), maxKeyBytes, strictKey)
	if err != nil { // the middleware answered 400 already; only reached without it
		contract.WriteProblem(w, r, err)
		return
	}
	var req createPaymentRequest
	if err := contract.DecodeRequest(r, maxBodyBytes, &req); err != nil {
		contract.WriteProblem(w, r, err)
		return
	}
	if err := req.validate(); err != nil {
		logctx.Decision(ctx, s.logger, slog.LevelInfo, "rejected invalid payment", "invalid fields", slog.Int("fields", len(contract.As(err).Fields)))
		contract.WriteProblem(w, r, err)
		return
	}
	scope := caller(ctx)
	gk := gatewayKey(scope, key)
	// Every line about this payment (the charge's retries and breaker
	// decisions included) says whose it is and the key the gateway knows
	// it by: a charge whose outcome we cannot tell is logged as an error
	// for reconciliation, and only these find it at the gateway. The
	// gateway key is a hash (see gatewayKey), not the client's key, and
	// replays nothing without our gateway credentials.
	ctx = logctx.With(ctx, slog.String("merchant", scope), slog.String("gateway_key", gk))
	// Every field of the payment goes to the gateway, so its fingerprint of
	// this gateway key covers the whole payment: a client that reuses its
	// key for another payment (say another payee) after a lost answer gets
	// the gateway's 422, never the charge made for the first one. A
	// conversion, not a literal: a field added to the request and not to
	// the charge does not compile.
	//
	// A client that hangs up once the charge is sent does not cancel it:
	// the charge is followed to its answer (see gatewayClient.charge), the
	// payment recorded and the 201 stored for the client's retry.
	charge, sent, err := s.gw.charge(ctx, gk, chargeRequest(req))
	if err != nil {
		// Transient (503 + Retry-After): the idempotency middleware releases
		// the key, so the client may retry with the same one; the gateway key
		// is derived from it, so a charge the gateway did make is never made
		// twice. A 4xx rejection is stored and replayed to every retry
		// (released if the client has gone meanwhile: the middleware keeps
		// no error for a gone client, and its retry gets the gateway's
		// same answer under the same gateway key).
		level, reason := notChargedReason(ctx, err, sent)
		logctx.Decision(ctx, s.logger, level, "payment not charged", reason, slog.String(logctx.KeyDependency, "gateway"), slog.Any("error", err))
		contract.WriteProblem(w, r, err)
		return
	}
	p, created := s.store.add(Payment{Status: "captured", AmountMinor: req.AmountMinor, Currency: req.Currency, Payer: req.Payer,
		Payee: req.Payee, Reference: req.Reference, ChargeID: charge.ChargeID, CreatedAt: time.Now().UTC(), owner: scope})
	ctx = logctx.WithEntity(ctx, "payment", p.ID)
	if created {
		s.logger.LogAttrs(ctx, slog.LevelInfo, "payment captured", slog.String("charge_id", p.ChargeID), slog.Int64("amount_minor", p.AmountMinor), slog.String("currency", p.Currency))
	} else {
		logctx.Decision(ctx, s.logger, slog.LevelWarn, "charge already recorded: its payment answered", "the request ran again after its charge was recorded",
			slog.String("charge_id", p.ChargeID))
	}
	w.Header().Set("Location", "/payments/"+p.ID)
	writeJSON(w, http.StatusCreated, p)
}

// notChargedReason classifies a failed charge for the decision log, by
// cause, so that only the gateway's own refusals read as such; sent tells
// whether the charge was sent to the gateway (see gatewayClient.charge):
//
//   - the client went away before the charge was sent (ctx done while it
//     was queued in the bulkhead): Info, nobody is waiting for the answer
//     and under overload these are many. The gateway never saw the
//     payment. A client that goes away once the charge is sent does not
//     end it: the charge fails or succeeds on its own, and is classified
//     (or captured) as for a client still waiting;
//   - the bulkhead is full or its wait timed out: our own overload, the
//     gateway never saw the payment;
//   - the gateway is unavailable (5xx, timeouts, breaker open…): retryable;
//   - the gateway rejected the payment (a 4xx of its own, a declined
//     charge): its final word, stored and replayed;
//   - anything else (the gateway refuses our credentials, or answered what
//     we cannot account for): Error, a human must look.
func notChargedReason(ctx context.Context, err error, sent bool) (slog.Level, string) {
	switch code := contract.As(err).CodeOrKind(); {
	case !sent && ctx.Err() != nil:
		return slog.LevelInfo, "client went away"
	case code == limit.CodeBulkheadFull || code == limit.CodeBulkheadWaitTimeout:
		return slog.LevelWarn, "gateway bulkhead full"
	case contract.Retryable(err):
		return slog.LevelWarn, "gateway unavailable"
	case contract.HTTPStatus(contract.KindOf(err)) < 500:
		return slog.LevelWarn, "gateway rejected the payment"
	}
	return slog.LevelError, "gateway call failed"
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	p, ok := s.store.get(caller(r.Context()), r.PathValue("id"))
	if !ok { // missing, or another caller's: the same 404
		contract.WriteProblem(w, r, contract.New(contract.KindNotFound, "payments.get", "no payment with this id").WithCode("payments.not_found"))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *service) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Payments []Payment `json:"payments"`
	}{s.store.list(caller(r.Context()))})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		contract.WriteProblem(w, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
