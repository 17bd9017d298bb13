package main

import (
	"encoding/json"
	"testing"
)

// Payment ids tell a caller nothing of other callers' payments: they are
// random, not a shared sequence (whose gaps in a merchant's own list would
// count, and point at, the other merchants' payments), and a caller's list
// is still in creation order.
func TestPaymentIDsRevealNothingOfOthers(t *testing.T) {
	f := start(t, stores(t)["memory"](t), &FakeGateway{})
	m2 := func(k string) map[string]string {
		return map[string]string{"X-Api-Key": key2, "Idempotency-Key": k}
	}
	if r := f.do(t, "POST", "/payments", goodBody, m2("a")); r.status != 201 {
		t.Fatal(r.status)
	}
	if r := f.do(t, "POST", "/payments", goodBody, auth("secret-order")); r.status != 201 { // merchant-1
		t.Fatal(r.status)
	}
	if r := f.do(t, "POST", "/payments", goodBody, m2("b")); r.status != 201 {
		t.Fatal(r.status)
	}
	var list struct{ Payments []Payment }
	r := f.do(t, "GET", "/payments", "", map[string]string{"X-Api-Key": key2})
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Payments) != 2 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	a, b := list.Payments[0], list.Payments[1]
	if a.ID == "pay_000001" || b.ID == "pay_000003" || len(a.ID) < 20 || a.ID == b.ID {
		t.Errorf("merchant-2's ids %s and %s: want random ids", a.ID, b.ID)
	}
	if a.CreatedAt.After(b.CreatedAt) {
		t.Errorf("list not in creation order: %v then %v", a.CreatedAt, b.CreatedAt)
	}
}
