package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
)

// paymentRequest is the body of POST /payments.
type paymentRequest struct {
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Payer       string    `json:"payer"`
	Payee       string    `json:"payee"`
	Reference   string    `json:"reference"`
	ExecuteAt   time.Time `json:"execute_at,omitzero"`
}

// validate collects every field error at once.
func (p *paymentRequest) validate(now time.Time) error {
	v := contract.NewValidator()
	v.Range("amount_minor", p.AmountMinor, 1, 100_000_000)
	v.Currency("currency", p.Currency)
	v.Required("payer", p.Payer)
	if v.Required("payee", p.Payee) && p.Payer != "" {
		v.Check(p.Payee != p.Payer, "payee", "must differ from payer")
	}
	v.Length("reference", p.Reference, 1, 64)
	if !p.ExecuteAt.IsZero() {
		v.TimeWithin("execute_at", p.ExecuteAt, now, 24*time.Hour, 90*24*time.Hour)
	}
	return v.Err()
}

func createPayment(w http.ResponseWriter, req *http.Request) {
	var p paymentRequest
	if err := contract.DecodeRequest(req, 64<<10, &p); err != nil {
		contract.WriteProblem(w, req, err)
		return
	}
	if err := p.validate(time.Now()); err != nil {
		contract.WriteProblem(w, req, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func absurdPayload(ctx context.Context, e *env, r *report) error {
	send := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/payments", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		createPayment(rec, req)
		return rec
	}
	absurd := `{"amount_minor":-500,"currency":"XYZ","payer":"acct_1","payee":"acct_1","reference":"","execute_at":"1970-01-01T00:00:00Z"}`
	rec := send(absurd)
	var p struct {
		Status        int                   `json:"status"`
		InvalidParams []contract.FieldError `json:"invalid-params"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	r.did("POST /payments with well-formed JSON meaning nonsense: %s", absurd)
	r.decided("rejected before any side effect, with every bad field at once")
	for _, f := range p.InvalidParams {
		r.decided("invalid-params: %s — %s", f.Name, f.Reason)
	}
	r.figure("status", "%d %s", rec.Code, rec.Header().Get("Content-Type"))
	r.figure("problem", "%s", strings.TrimSpace(rec.Body.String()))
	r.expect(rec.Code == http.StatusUnprocessableEntity && p.Status == rec.Code, "absurd data gets a 422 problem whose status matches (got %d)", rec.Code)
	names := map[string]bool{}
	for _, f := range p.InvalidParams {
		names[f.Name] = true
	}
	want := []string{"amount_minor", "currency", "payee", "reference", "execute_at"}
	all := true
	for _, n := range want {
		all = all && names[n]
	}
	r.expect(all && len(p.InvalidParams) == len(want), "every one of the %d bad fields is listed, and nothing else (got %d)", len(want), len(p.InvalidParams))

	// Syntactically wrong: unknown field, wrong type, trailing data, too large.
	cases := []struct {
		what, body string
		status     int
	}{
		{"an unknown field", `{"amount_minor":1,"currency":"EUR","payer":"a","payee":"b","reference":"r","admin":true}`, http.StatusBadRequest},
		{"a wrong type", `{"amount_minor":"12.50"}`, http.StatusBadRequest},
		{"trailing data", `{"amount_minor":1}{"amount_minor":2}`, http.StatusBadRequest},
		{"a 100 KiB body", `{"reference":"` + strings.Repeat("x", 100<<10) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		rec := send(c.body)
		var prob contract.Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &prob)
		r.decided("%s: %d %s", c.what, rec.Code, prob.Detail)
		r.expect(rec.Code == c.status && prob.Status == rec.Code, "%s gets a %d problem (got %d)", c.what, c.status, rec.Code)
	}
	logctx.Decision(logctx.WithOperation(ctx, "payments.create"), e.logger, slog.LevelInfo, "rejected invalid payment",
		fmt.Sprintf("%d invalid fields", len(p.InvalidParams)), slog.Int("status", rec.Code))
	return nil
}
