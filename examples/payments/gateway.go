package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/retry"
)

// FakeGateway is the downstream payment gateway of the example: idempotent on
// its side (it honours Idempotency-Key with sadpath's middleware), with
// injectable faults: a failure rate (503 problems) and a latency.
type FakeGateway struct {
	FailRate float64       // share of charges answered with 503, in [0, 1]
	Latency  time.Duration // added to every charge

	charges atomic.Int64
	calls   atomic.Int64
	mu      sync.Mutex
	rnd     *rand.Rand
	down    atomic.Bool
}

// Charges returns how many charges the gateway really executed.
func (g *FakeGateway) Charges() int64 { return g.charges.Load() }

// Calls returns how many requests reached the gateway, replays included.
func (g *FakeGateway) Calls() int64 { return g.calls.Load() }

// SetDown makes every charge fail (true) or follow FailRate again (false).
func (g *FakeGateway) SetDown(down bool) { g.down.Store(down) }

// Handler returns the gateway's HTTP handler: POST /charges.
func (g *FakeGateway) Handler(logger *slog.Logger) (http.Handler, error) {
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		return nil, err
	}
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: store, Duplicate: idempotency.Wait, Logger: logger},
		Scope:  func(*http.Request) (string, error) { return "payments-service", nil },
	})
	if err != nil {
		return nil, err
	}
	g.rnd = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	mux := http.NewServeMux()
	mux.Handle("POST /charges", mw.Wrap(http.HandlerFunc(g.charge)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.calls.Add(1)
		mux.ServeHTTP(w, r)
	}), nil
}

func (g *FakeGateway) charge(w http.ResponseWriter, r *http.Request) {
	if g.Latency > 0 {
		time.Sleep(g.Latency)
	}
	g.mu.Lock()
	fail := g.down.Load() || g.rnd.Float64() < g.FailRate
	g.mu.Unlock()
	if fail {
		contract.WriteProblem(w, r, contract.New(contract.KindUnavailable, "gateway.charge", "the gateway is unavailable").WithRetryAfter(time.Second))
		return
	}
	n := g.charges.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(chargeResponse{ChargeID: fmt.Sprintf("ch_%06d", n), Status: chargeSucceeded})
}

// chargeRequest is the body of a charge. It carries every field of the
// payment (exactly createPaymentRequest's: create converts one into the
// other): the gateway fingerprints the body it sees under an
// Idempotency-Key, so a field left out here is a field a reused key could
// change without the gateway noticing (the retry would get the charge made
// for the other payee).
type chargeRequest struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	Payer       string `json:"payer"`
	Payee       string `json:"payee"`
	Reference   string `json:"reference"`
}

// chargeResponse is the gateway's answer to a charge. Status is one of
// chargeSucceeded, chargeDeclined, chargeFailed; anything else (a
// "pending" charge, a status we do not know) is unexpected.
type chargeResponse struct {
	ChargeID string `json:"charge_id"`
	Status   string `json:"status"`
}

// Charge statuses of the gateway's answer.
const (
	chargeSucceeded = "succeeded" // money moved: the only answer a payment is captured on
	chargeDeclined  = "declined"  // the gateway's final no (card declined, insufficient funds…)
	chargeFailed    = "failed"    // the charge was attempted and failed: final too
)

// gatewayClient calls the gateway through the protections, outermost first:
// bulkhead (bounded concurrency) → retry (same Idempotency-Key on every
// attempt, budgeted) → breaker (fail fast when the gateway is down) →
// correlation propagation → HTTP.
type gatewayClient struct {
	url      string
	http     *http.Client
	bulkhead *limit.Bulkhead
}

func newGatewayClient(url string, logger *slog.Logger) (*gatewayClient, error) {
	corr, err := logctx.NewTransport(logctx.TransportConfig{})
	if err != nil {
		return nil, err
	}
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{
		Window: 10 * time.Second, MinCalls: 10, FailureRatio: 0.5, SlowCallThreshold: 2 * time.Second,
		OpenTimeout: 5 * time.Second, Logger: logger,
	}})
	if err != nil {
		return nil, err
	}
	brk, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg, Next: corr})
	if err != nil {
		return nil, err
	}
	budget, err := retry.NewTokenBucket(retry.TokenBucketConfig{})
	if err != nil {
		return nil, err
	}
	policy, err := retry.New(retry.Config{
		Name: "gateway", MaxAttempts: 3, InitialDelay: 50 * time.Millisecond, MaxDelay: time.Second,
		MaxElapsedTime: 3 * time.Second, AttemptTimeout: 3 * time.Second, Budget: budget, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	rt, err := retry.NewTransport(retry.TransportConfig{Base: brk, Policy: policy})
	if err != nil {
		return nil, err
	}
	bh, err := limit.NewBulkhead(limit.BulkheadConfig{Name: "gateway", MaxConcurrent: 32, MaxWaiting: 64, MaxWait: time.Second, Logger: logger})
	if err != nil {
		return nil, err
	}
	// Redirects are not followed: a 307 or 308 would send the charge (its
	// payer, payee and Idempotency-Key) to whatever host the answer names,
	// and a 301/302/303 turn it into a GET whose answer would be taken for
	// the charge's. The 3xx reaches gatewayError: 503, ask again later.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &gatewayClient{url: url, http: &http.Client{Transport: rt, Timeout: chargeTimeout, CheckRedirect: noRedirect}, bulkhead: bh}, nil
}

// gatewayKey derives the key sent to the gateway from the caller's scope
// (its merchant, not its API key, which rotates) and Idempotency-Key: the
// same client request always sends the same key, even when a first
// execution failed after the gateway charged. key must be the
// key as the idempotency middleware parsed it (idempotency.ParseKey with
// the middleware's MaxKeyLength and StrictKey), not the raw header: the
// middleware treats "order-9" and order-9 as one key, and a retry spelled
// the other way must reach the gateway under the same key, or the charge
// is made twice.
func gatewayKey(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return "pay-" + hex.EncodeToString(sum[:16])
}

// chargeTimeout bounds a charge from the moment the bulkhead admits it,
// all its attempts included. The charge runs on a context of its own
// (detached from the client's, see charge), so this is its only bound
// besides the http.Client's. It must cover the retry policy's longest
// charge: a first attempt of up to AttemptTimeout (3 s), then retries only
// while their wait ends within MaxElapsedTime (3 s) of that first failure,
// the last one running up to AttemptTimeout (3 s): 9 s at most, so 10 s
// never cuts a retry the policy would make (a retry also needs a full
// AttemptTimeout left before the deadline: it starts by 6 s, 9 s < 10 s).
// And it must stay well below the idempotency lease (30 s, see NewHandler),
// with the bulkhead's wait (1 s) on top: the detached charge ignores the
// request's cancellation, the lease-lost one included, so it must be over
// long before the key could be another request's.
const chargeTimeout = 10 * time.Second

// charge charges req at the gateway under key; sent reports whether the
// charge was sent on its way to the gateway (past the bulkhead, to the
// retry and breaker transports, which may still fail it fast), so that a
// client gone before it can be told from a charge that failed on its own.
//
// The wait for a bulkhead slot follows the client's ctx: a client that
// hangs up while queued is answered 499 and never charged. Once a slot is
// taken the charge is sent, and a charge once sent is followed to its
// answer whatever the client does: it runs on ctx without its cancellation
// (its values, the correlation id among them, are kept), bounded by
// chargeTimeout, and all its retries with it. Cut off with the client, the
// service would release the key and record nothing while the gateway
// charged: the money would move with no payment in the service, found only
// if that client came back with that key. Followed, the payment is
// recorded and its 201 stored by the idempotency middleware (which keeps
// the whole answer for a client gone), for the client's retry.
func (c *gatewayClient) charge(ctx context.Context, key string, req chargeRequest) (out chargeResponse, sent bool, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return chargeResponse{}, false, err
	}
	out, err = limit.Do(ctx, c.bulkhead, func(ctx context.Context) (chargeResponse, error) {
		if err := ctx.Err(); err != nil { // gone as the slot was granted: not sent yet, so not sent at all
			return chargeResponse{}, contract.Wrap(contract.KindOf(err), "payments.create", err)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chargeTimeout)
		defer cancel()
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/charges", bytes.NewReader(body))
		if err != nil {
			return chargeResponse{}, err
		}
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Idempotency-Key", key)
		sent = true
		resp, err := c.http.Do(hr)
		if err != nil {
			return chargeResponse{}, unavailable(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			return chargeResponse{}, gatewayError(resp)
		}
		var out chargeResponse
		body := &io.LimitedReader{R: resp.Body, N: maxChargeBody + 1} // one byte more tells an over-limit body
		if err := json.NewDecoder(body).Decode(&out); err != nil {
			return chargeResponse{}, bodyError(resp.StatusCode, err, body.N == 0)
		}
		if err := chargeError(resp.StatusCode, out); err != nil {
			return chargeResponse{}, err
		}
		return out, nil
	})
	return out, sent, err
}

// chargeError checks a 200/201 charge: only a succeeded charge with a
// charge id is a payment we capture (nil).
//
//   - declined or failed: the gateway's final word on this payment, like a
//     402: a 422 problem of ours (code payments.gateway_rejected) that the
//     idempotency middleware stores, so a retry replays it and never
//     reaches the gateway again.
//   - anything else (pending, a status we do not know, a succeeded charge
//     without an id): we cannot tell whether money moved, so we record
//     nothing and answer 500 (code payments.gateway_unexpected, details
//     kept out of the answer, logged as an error for reconciliation). A
//     5xx is not stored: the key is released, and a retry with it sends
//     the same gateway key, so it can never charge twice. Not a 503 with
//     Retry-After: the gateway would replay the same answer to every
//     retry.
func chargeError(status int, out chargeResponse) error {
	switch {
	case out.Status == chargeSucceeded && out.ChargeID != "":
		return nil
	case out.Status == chargeDeclined || out.Status == chargeFailed:
		return &contract.Error{Kind: contract.KindInvalid, Op: "payments.create", Code: "payments.gateway_rejected",
			Detail: "the payment gateway rejected the payment (charge " + out.Status + ")"}
	}
	return &contract.Error{Kind: contract.KindInternal, Op: "payments.create", Code: "payments.gateway_unexpected",
		Detail: fmt.Sprintf("the gateway answered %d with charge status %.32q and charge id %.64q, want %q with an id",
			status, out.Status, out.ChargeID, chargeSucceeded)}
}

// maxChargeBody bounds the 200/201 body read from the gateway: a charge is
// a few dozen bytes.
const maxChargeBody = 64 << 10

// bodyError classifies a 200/201 whose body did not decode; overLimit
// reports that more than maxChargeBody bytes were read. A body cut short
// on its way (a read error, or JSON ending early) may arrive whole next
// time: 503, retry. A body that is not a charge (not JSON, a field of the
// wrong type, empty: io.EOF, the body ended whole before any value) or
// that is over the limit is the gateway's answer itself,
// replayed whole to every retry under the same key (a 503 would have the
// client retry forever): like an unexpected charge status (see
// chargeError), we cannot tell whether money moved, so it is a 500
// payments.gateway_unexpected, logged as an error for reconciliation.
func bodyError(status int, err error, overLimit bool) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case overLimit:
		return &contract.Error{Kind: contract.KindInternal, Op: "payments.create", Code: "payments.gateway_unexpected",
			Detail: fmt.Sprintf("the gateway answered %d with a body over %d bytes", status, maxChargeBody), Cause: err}
	case err != io.EOF && !errors.As(err, &syntax) && !errors.As(err, &typ):
		return unavailable(err)
	}
	return &contract.Error{Kind: contract.KindInternal, Op: "payments.create", Code: "payments.gateway_unexpected",
		Detail: fmt.Sprintf("the gateway answered %d with a body that is not a charge", status), Cause: err}
}

// gatewayError turns a gateway answer other than 200/201 into the answer our
// client gets. What decides is whether the same request can succeed later:
//
//   - 5xx, 408, 425, 429, 499, and 409 idempotency.in_progress (the gateway
//     is still running this key's charge): 503 + Retry-After. The idempotency
//     middleware releases the key, and the client's retry with it sends the
//     same gateway key, so a charge already made is replayed, not repeated.
//   - 401, 403, 404, 407, 410: the gateway refuses us (credentials, URL),
//     not the payment: 500, details kept out of the answer. Nothing was
//     charged and the key is released: a retry works once we are fixed.
//   - 409 idempotency.response_not_stored (or result_not_stored): the
//     gateway ran this key's charge but kept no answer to replay, so we
//     cannot tell whether money moved: as for an unexpected charge status
//     (see chargeError), 500 payments.gateway_unexpected, nothing
//     recorded, logged as an error for reconciliation, the key released (a
//     retry sends the same gateway key: never a second charge). Kept as
//     the gateway's final "conflict", the client would take the payment
//     for rejected and pay again under a new key.
//   - any other 4xx is the gateway's final word on this payment (422 key
//     reused, 402 declined, …): its kind is kept, in an error of our own, so
//     the middleware stores the answer and a retry replays it without
//     calling the gateway again. Wrapping it as 503 would tell the client to
//     retry a request that can never succeed, hitting the gateway each time.
func gatewayError(resp *http.Response) error {
	perr := contract.ParseProblem(resp)
	if perr == nil { // 202, 204, 3xx: not a charge we can record; ask again later
		return unavailable(fmt.Errorf("gateway answered %d, want 200 or 201", resp.StatusCode))
	}
	code := contract.As(perr).CodeOrKind()
	switch s := resp.StatusCode; {
	case s >= 500, contract.Retryable(perr), s == contract.StatusClientClosedRequest,
		s == http.StatusConflict && code == "idempotency.in_progress":
		return unavailable(perr)
	case s == http.StatusUnauthorized, s == http.StatusForbidden, s == http.StatusNotFound,
		s == http.StatusProxyAuthRequired, s == http.StatusGone:
		return &contract.Error{Kind: contract.KindInternal, Op: "payments.create", Code: "payments.gateway_refused",
			Detail: "the payment gateway refused our request", Cause: perr}
	case s == http.StatusConflict && (code == "idempotency.response_not_stored" || code == "idempotency.result_not_stored"):
		return &contract.Error{Kind: contract.KindInternal, Op: "payments.create", Code: "payments.gateway_unexpected",
			Detail: "the payment gateway ran this charge but kept no answer (" + code + "); whether money moved is unknown", Cause: perr}
	}
	e := &contract.Error{Kind: contract.KindOf(perr), Op: "payments.create", Code: "payments.gateway_rejected",
		Detail: "the payment gateway rejected the payment (" + code + ")", Cause: perr}
	if code == "idempotency.key_reused" {
		// The gateway saw this Idempotency-Key with another body: the
		// client reused its key (an earlier request with it reached the
		// gateway though its answer was lost). Same code as our middleware.
		e.Code, e.Detail = code, "this Idempotency-Key was already used with another payment; use a new key for a new payment"
	}
	return e
}

// unavailable turns a transient gateway failure into the answer our client
// gets: 503 with a Retry-After, keeping the gateway's hint when it gave one.
// The cause stays internal.
func unavailable(cause error) error {
	ra, ok := contract.RetryAfter(cause)
	if !ok || ra < time.Second {
		ra = time.Second
	}
	return &contract.Error{Kind: contract.KindUnavailable, Op: "payments.create", Code: "payments.gateway_unavailable",
		Detail: "the payment gateway is unavailable; retry with the same Idempotency-Key", RetryAfter: ra, Cause: cause}
}
