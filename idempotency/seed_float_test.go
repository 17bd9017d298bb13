package idempotency_test

import (
	"encoding/json"
	"math"
	"testing"
)

type withNegZero struct {
	ID      string  `json:"id"`
	Balance float64 `json:"balance,omitempty"`
}

// encoding/json's omitempty drops -0.0 (it is == 0), so a decoding store
// replays +0; the seeded MemoryStore replay must too.
func TestSeededReplayNegativeZeroOmitempty(t *testing.T) {
	v := withNegZero{ID: "acct", Balance: math.Copysign(0, -1)}
	want := roundTrip(t, v)
	if math.Signbit(want.Balance) {
		t.Fatal("premise: round trip keeps the sign")
	}
	_, replays := replaysOf(t, v)
	for i, got := range replays {
		if math.Signbit(got.Balance) != math.Signbit(want.Balance) {
			t.Fatalf("replay %d: Balance %v (signbit %v), a decoding store replays %v", i+1, got.Balance, math.Signbit(got.Balance), want.Balance)
		}
	}
}

// A json tag name encoding/json rejects as invalid ('€' is neither letter,
// digit nor allowed punctuation) makes it use the Go field name, which here
// collides with a sibling's tag, and the tagged sibling wins.
type withInvalidTag struct {
	Total  int64 `json:"total€"`
	Amount int64 `json:"Total"`
}

func TestSeededReplayInvalidTagName(t *testing.T) {
	v := withInvalidTag{Total: 1, Amount: 2}
	want := roundTrip(t, v)
	_, replays := replaysOf(t, v)
	for i, got := range replays {
		if got != want {
			t.Fatalf("replay %d = %+v, a decoding store replays %+v", i+1, got, want)
		}
	}
}

type withNumber struct {
	ID  string      `json:"id"`
	Fee json.Number `json:"fee"`
}

// encoding/json writes an empty json.Number as 0, so a decoding store
// replays "0"; the seeded MemoryStore replay must too.
func TestSeededReplayEmptyJSONNumber(t *testing.T) {
	v := withNumber{ID: "pay"}
	want := roundTrip(t, v)
	if want.Fee != "0" {
		t.Fatalf("premise: round trip of an empty json.Number gives %q", want.Fee)
	}
	_, replays := replaysOf(t, v)
	for i, got := range replays {
		if got != want {
			t.Fatalf("replay %d = %+v, a decoding store replays %+v", i+1, got, want)
		}
	}
}
