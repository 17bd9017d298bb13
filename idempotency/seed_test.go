package idempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// With the JSON codec and a bare MemoryStore, Do records the value of the
// first call as the replay value at completion when decoding its JSON is
// known to give the same value back. These tests check that a replay —
// the first one included — returns exactly what a decoding store (Redis,
// PostgreSQL) would: json.Unmarshal(json.Marshal(v)), never something else.

type exactAmount struct {
	ID       string  `json:"id"`
	Amount   int64   `json:"amount,omitempty"`
	Rate     float64 `json:"rate"`
	Captured bool
	Parts    [2]uint16 `json:"parts"`
}

type withUnexported struct {
	ID     string `json:"id"`
	secret string
}

type withDropped struct {
	ID  string `json:"id"`
	Tmp string `json:"-"`
}

type withStringOpt struct {
	N int64 `json:"n,string"`
}

type withCaseTwins struct {
	ID string `json:"id"`
	Id string `json:"ID"` //nolint:revive // two names that differ only in case, on purpose
}

// money is zero, to encoding/json's omitzero, whenever its amount is,
// whatever its currency: a ",omitzero" field of it drops a currency.
type money struct {
	Amount   int64
	Currency string
}

func (m money) IsZero() bool { return m.Amount == 0 }

type withOmitZero struct {
	ID  string `json:"id"`
	Fee money  `json:"fee,omitzero"`
	N   int64  `json:"n,omitzero"` // no IsZero of its own: exact
}

type inner struct{ A string }

type withEmbedded struct {
	inner
	B string
}

type upper string

func (u upper) MarshalJSON() ([]byte, error) { return json.Marshal(strings.ToUpper(string(u))) }

type withMarshaler struct{ U upper }

// roundTrip is what a decoding store replays.
func roundTrip[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// replaysOf runs fn once under a fresh key, then replays it twice, and
// returns the first call's value and both replays.
func replaysOf[T any](t *testing.T, v T) (first T, replays [2]T) {
	t.Helper()
	ex := memoExec(t, nil)
	ctx := context.Background()
	runs := 0
	fn := func(context.Context) (T, error) { runs++; return v, nil }
	first, err := idempotency.Do(ctx, ex, k1, "fp", fn)
	if err != nil {
		t.Fatal(err)
	}
	for i := range replays {
		if replays[i], err = idempotency.Do(ctx, ex, k1, "fp", fn); err != nil {
			t.Fatal(err)
		}
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times", runs)
	}
	return first, replays
}

func checkReplays[T any](t *testing.T, v T) {
	t.Helper()
	want := roundTrip(t, v)
	_, replays := replaysOf(t, v)
	for i, got := range replays {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("replay %d = %#v, want the JSON round trip %#v", i+1, got, want)
		}
	}
}

func TestSeededReplayEqualsRoundTrip(t *testing.T) {
	t.Run("exact type", func(t *testing.T) {
		checkReplays(t, exactAmount{ID: "pay_1", Amount: 1250, Rate: 0.1 + 0.2, Captured: true, Parts: [2]uint16{1, 2}})
	})
	t.Run("exact type, zero omitted field", func(t *testing.T) { checkReplays(t, exactAmount{ID: "pay_2"}) })
	t.Run("scalar", func(t *testing.T) { checkReplays(t, 42.5) })
	// Strings with invalid UTF-8 are replaced by the encoder: the replay
	// must be the replaced string a decoding store would return.
	t.Run("invalid UTF-8", func(t *testing.T) {
		v := exactAmount{ID: "pay\xff_3"}
		want := roundTrip(t, v)
		if want.ID == v.ID {
			t.Fatal("test premise: encoding/json no longer replaces invalid UTF-8")
		}
		checkReplays(t, v)
	})
	// Types whose JSON loses or transforms something are decoded, so the
	// replay is the round trip and not the original value.
	t.Run("unexported field", func(t *testing.T) { checkReplays(t, withUnexported{ID: "a", secret: "s"}) })
	t.Run("dropped field", func(t *testing.T) { checkReplays(t, withDropped{ID: "a", Tmp: "t"}) })
	t.Run("string option", func(t *testing.T) { checkReplays(t, withStringOpt{N: 7}) })
	t.Run("names differing in case", func(t *testing.T) { checkReplays(t, withCaseTwins{ID: "a", Id: "b"}) })
	t.Run("embedded struct", func(t *testing.T) { checkReplays(t, withEmbedded{inner: inner{A: "a"}, B: "b"}) })
	t.Run("custom marshaler", func(t *testing.T) { checkReplays(t, withMarshaler{U: "abc"}) })
	t.Run("omitzero with the type's own IsZero", func(t *testing.T) {
		checkReplays(t, withOmitZero{ID: "a", Fee: money{Currency: "EUR"}})
	})
	t.Run("omitzero, zero values", func(t *testing.T) { checkReplays(t, withOmitZero{ID: "a"}) })
}

// The losing types above really differ from their round trip, so the
// checks would catch a replay returning the original value.
func TestSeedTestPremises(t *testing.T) {
	for _, c := range []struct {
		name  string
		v, rt any
	}{
		{"unexported", withUnexported{ID: "a", secret: "s"}, roundTrip(t, withUnexported{ID: "a", secret: "s"})},
		{"dropped", withDropped{ID: "a", Tmp: "t"}, roundTrip(t, withDropped{ID: "a", Tmp: "t"})},
		{"marshaler", withMarshaler{U: "abc"}, roundTrip(t, withMarshaler{U: "abc"})},
		{"omitzero", withOmitZero{Fee: money{Currency: "EUR"}}, roundTrip(t, withOmitZero{Fee: money{Currency: "EUR"}})},
	} {
		if reflect.DeepEqual(c.v, c.rt) {
			t.Errorf("%s: the round trip equals the value; the test proves nothing", c.name)
		}
	}
}

// A replayed stored error is a new *contract.Error each time, equal to the
// first call's kind, code and detail, from the very first replay.
func TestSeededStoredErrorReplays(t *testing.T) {
	ex := memoExec(t, func(c *idempotency.Config) {
		c.StoreError = func(err error) bool { return contract.KindOf(err) == contract.KindInvalid }
	})
	ctx := context.Background()
	runs := 0
	fn := func(context.Context) (int, error) {
		runs++
		return 0, contract.New(contract.KindInvalid, "pay", "amount must be positive").WithCode("amount.range")
	}
	if _, err := idempotency.Do(ctx, ex, k1, "fp", fn); !errors.Is(err, contract.ErrInvalid) {
		t.Fatalf("first call: %v", err)
	}
	var prev *contract.Error
	for i := range 3 {
		_, err := idempotency.Do(ctx, ex, k1, "fp", fn)
		var ce *contract.Error
		if !errors.As(err, &ce) || ce.Kind != contract.KindInvalid || ce.Code != "amount.range" || ce.Detail != "amount must be positive" {
			t.Fatalf("replay %d: %#v", i+1, err)
		}
		if ce == prev {
			t.Fatalf("replay %d returned the same *contract.Error as the one before", i+1)
		}
		prev = ce
		ce.Detail = "changed by a caller"
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times", runs)
	}
}
