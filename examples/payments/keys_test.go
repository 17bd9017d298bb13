package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sadpath/sadpath/contract"
)

// A merchant whose answer was lost rotates its API key (issues a new one,
// revokes the old) and retries with the new key: the same merchant's same
// request, so the stored 201 is replayed and the gateway charges once.
// (Scoped by the API key, the retry landed in a new scope, under a new
// gateway key: charged twice.) The old key is refused, and another
// merchant using the same Idempotency-Key, even with another payment, gets
// its own execution: nothing of the first merchant's is replayed or
// revealed.
func TestPaymentsKeyRotationReplays(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := start(t, newStore(t), &FakeGateway{})
			first := f.do(t, "POST", "/payments", goodBody, auth("rotate-1"))
			if first.status != 201 {
				t.Fatalf("create: %d %s", first.status, first.body)
			}
			// The answer is lost; the merchant rotates its key.
			const rotated = "sk_test_merchant1_rotated"
			if err := f.keys.Issue(rotated, "merchant-1"); err != nil {
				t.Fatal(err)
			}
			f.keys.Revoke(key1)

			retry := f.do(t, "POST", "/payments", goodBody, map[string]string{"X-Api-Key": rotated, "Idempotency-Key": "rotate-1"})
			if retry.status != 201 || retry.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(retry.body, first.body) {
				t.Fatalf("retry with the rotated key: %d replayed=%q %s, want the stored 201 %s",
					retry.status, retry.header.Get("Idempotent-Replayed"), retry.body, first.body)
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("gateway charged %d times for one request retried with a rotated key, want 1", got)
			}
			var list struct{ Payments []Payment }
			if r := f.do(t, "GET", "/payments", "", map[string]string{"X-Api-Key": rotated}); json.Unmarshal(r.body, &list) != nil || len(list.Payments) != 1 {
				t.Errorf("the rotated key lists %d %s, want merchant-1's payment", r.status, r.body)
			}

			// The revoked key: 401, and no charge.
			for _, r := range []response{
				f.do(t, "POST", "/payments", goodBody, auth("rotate-1")),
				f.do(t, "POST", "/payments", goodBody, auth("rotate-2")),
				f.do(t, "GET", first.header.Get("Location"), "", map[string]string{"X-Api-Key": key1}),
			} {
				var p contract.Problem
				if r.status != 401 || json.Unmarshal(r.body, &p) != nil || p.Code != "auth.invalid_api_key" {
					t.Errorf("revoked key: %d %s, want 401 auth.invalid_api_key", r.status, r.body)
				}
			}
			if got := f.gw.Charges(); got != 1 {
				t.Fatalf("gateway charged %d times, want 1", got)
			}

			// Another merchant, the same Idempotency-Key with another
			// payment: its own execution (a 422 would tell it merchant-1
			// used the key), replayed to its own retry.
			otherBody := strings.Replace(goodBody, "1999", "2999", 1)
			m2 := map[string]string{"X-Api-Key": key2, "Idempotency-Key": "rotate-1"}
			other := f.do(t, "POST", "/payments", otherBody, m2)
			if other.status != 201 || other.header.Get("Idempotent-Replayed") == "true" {
				t.Fatalf("merchant-2 with merchant-1's Idempotency-Key: %d replayed=%q %s, want its own 201",
					other.status, other.header.Get("Idempotent-Replayed"), other.body)
			}
			if again := f.do(t, "POST", "/payments", otherBody, m2); again.status != 201 || !bytes.Equal(again.body, other.body) {
				t.Errorf("merchant-2's retry: %d %s, want its own 201 replayed", again.status, again.body)
			}
			if got := f.gw.Charges(); got != 2 {
				t.Errorf("gateway charged %d times, want 2 (merchant-1 once, merchant-2 once)", got)
			}
		})
	}
}

// The gateway's answer is lost (the service answers 503 and releases the
// key), the merchant rotates its key and retries: the gateway key is
// derived from the merchant, not the API key, so the gateway replays its
// charge instead of making a second one.
func TestPaymentsKeyRotationAfterLostGatewayAnswer(t *testing.T) {
	var lose atomic.Bool
	f := startWrapped(t, stores(t)["memory"](t), &FakeGateway{}, loseAnswers(&lose))
	lose.Store(true)
	if r := f.do(t, "POST", "/payments", goodBody, auth("rotate-lost-1")); r.status != 503 {
		t.Fatalf("lost answer: %d %s, want 503", r.status, r.body)
	}
	lose.Store(false)
	f.keys.Revoke(key1)
	r := f.do(t, "POST", "/payments", goodBody, map[string]string{"X-Api-Key": key1Other, "Idempotency-Key": "rotate-lost-1"})
	if r.status != 201 {
		t.Fatalf("retry with merchant-1's other key: %d %s, want 201", r.status, r.body)
	}
	if got := f.gw.Charges(); got != 1 {
		t.Fatalf("gateway charged %d times for one request retried with a rotated key, want 1", got)
	}
}

// An unknown key and a revoked one are the same 401; a key is issued to
// one merchant only, never empty.
func TestKeys(t *testing.T) {
	f := start(t, stores(t)["memory"](t), &FakeGateway{})
	f.keys.Revoke(key2)
	revoked := f.do(t, "GET", "/payments", "", map[string]string{"X-Api-Key": key2})
	unknown := f.do(t, "GET", "/payments", "", map[string]string{"X-Api-Key": "sk_test_nobody"})
	var a, b contract.Problem
	if err := errors.Join(json.Unmarshal(revoked.body, &a), json.Unmarshal(unknown.body, &b)); err != nil || revoked.status != 401 || unknown.status != 401 ||
		a.Code != "auth.invalid_api_key" || a.Code != b.Code || a.Detail != b.Detail {
		t.Errorf("revoked key %d %s, unknown key %d %s: want the same 401", revoked.status, revoked.body, unknown.status, unknown.body)
	}

	k := testKeys(t)
	if err := k.Issue(key1, "merchant-2"); !errors.Is(err, contract.ErrConflict) {
		t.Errorf("merchant-1's key issued to merchant-2: %v, want a conflict", err)
	}
	if m, _ := k.merchantOf(key1); m != "merchant-1" {
		t.Errorf("merchant-1's key now authenticates %q", m)
	}
	if err := k.Issue(key1, "merchant-1"); err != nil {
		t.Errorf("issuing a key again to its merchant: %v", err)
	}
	for _, kv := range [][2]string{{"", "merchant-1"}, {"sk_x", ""}} {
		if err := k.Issue(kv[0], kv[1]); !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("Issue(%q, %q): %v, want invalid", kv[0], kv[1], err)
		}
	}
	if _, err := NewKeys(map[string]string{"": "merchant-1"}); err == nil {
		t.Error("NewKeys with an empty key: want an error")
	}
}
