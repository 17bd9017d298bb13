package idempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// These tests run Do on a bare MemoryStore (no wrapper), the set-up in which
// replays memoize their decoded value next to the record.

func memoExec(t *testing.T, mod func(*idempotency.Config)) *idempotency.Executor {
	t.Helper()
	cfg := idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{})}
	if mod != nil {
		mod(&cfg)
	}
	ex, err := idempotency.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestDoReplayPlainValue(t *testing.T) {
	ex := memoExec(t, nil)
	ctx := context.Background()
	want := payment{ID: "pay_1", Amount: 1250}
	runs := 0
	fn := func(context.Context) (payment, error) { runs++; return want, nil }
	for i := range 4 {
		got, err := idempotency.Do(ctx, ex, k1, "fp", fn)
		if err != nil || got != want {
			t.Fatalf("call %d: %+v %v, want %+v", i, got, err, want)
		}
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times", runs)
	}
}

type nested struct {
	Items []string          `json:"items"`
	Meta  map[string]int    `json:"meta"`
	Ptr   *int              `json:"ptr"`
	Any   any               `json:"any"`
	Arr   [2][]byte         `json:"arr"`
	Inner struct{ S []int } `json:"inner"`
}

// A replayed value holding references is decoded afresh for every caller:
// one caller changing its copy cannot change what the next one gets.
func TestDoReplayValuesWithReferencesAreNotShared(t *testing.T) {
	ex := memoExec(t, nil)
	ctx := context.Background()
	one := 1
	fn := func(context.Context) (nested, error) {
		v := nested{Items: []string{"a", "b"}, Meta: map[string]int{"k": 1}, Ptr: &one, Any: []any{"x"}, Arr: [2][]byte{[]byte("p"), nil}}
		v.Inner.S = []int{7}
		return v, nil
	}
	if _, err := idempotency.Do(ctx, ex, k1, "fp", fn); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		got, err := idempotency.Do(ctx, ex, k1, "fp", fn)
		if err != nil {
			t.Fatal(err)
		}
		if got.Items[0] != "a" || got.Meta["k"] != 1 || *got.Ptr != 1 || got.Any.([]any)[0] != "x" || string(got.Arr[0]) != "p" || got.Inner.S[0] != 7 {
			t.Fatalf("replay %d saw an earlier caller's changes: %+v", i, got)
		}
		got.Items[0], got.Meta["k"], *got.Ptr, got.Any.([]any)[0], got.Arr[0][0], got.Inner.S[0] = "changed", 2, 2, "changed", 'q', 8
	}
}

// Several types decoded from the same record each get their own decoding.
func TestDoReplaySameRecordDifferentTypes(t *testing.T) {
	ex := memoExec(t, nil)
	ctx := context.Background()
	if _, err := idempotency.Do(ctx, ex, k1, "fp", func(context.Context) (payment, error) {
		return payment{ID: "pay_1", Amount: 1250}, nil
	}); err != nil {
		t.Fatal(err)
	}
	type idOnly struct {
		ID string `json:"id"`
	}
	for range 2 {
		p, err := idempotency.Do(ctx, ex, k1, "fp", func(context.Context) (payment, error) { panic("ran") })
		if err != nil || p != (payment{ID: "pay_1", Amount: 1250}) {
			t.Fatalf("payment: %+v %v", p, err)
		}
		o, err := idempotency.Do(ctx, ex, k1, "fp", func(context.Context) (idOnly, error) { panic("ran") })
		if err != nil || o.ID != "pay_1" {
			t.Fatalf("idOnly: %+v %v", o, err)
		}
		m, err := idempotency.Do(ctx, ex, k1, "fp", func(context.Context) (map[string]any, error) { panic("ran") })
		if err != nil || m["id"] != "pay_1" || m["amount"] != float64(1250) {
			t.Fatalf("map: %+v %v", m, err)
		}
		m["id"] = "changed"
	}
}

var selfDecodes atomic.Int32

// selfDecoding decodes itself; its method need not be a pure function of
// the bytes, so its replays are never memoized.
type selfDecoding struct{ N int }

func (s *selfDecoding) UnmarshalJSON(b []byte) error {
	selfDecodes.Add(1)
	var v struct{ N int }
	err := json.Unmarshal(b, &v)
	s.N = v.N
	return err
}

type holdsSelfDecoding struct {
	Plain string
	Inner [1]selfDecoding
}

func TestDoReplayCustomUnmarshalerRunsEveryTime(t *testing.T) {
	ex := memoExec(t, nil)
	ctx := context.Background()
	fn := func(context.Context) (holdsSelfDecoding, error) {
		return holdsSelfDecoding{Plain: "p", Inner: [1]selfDecoding{{N: 3}}}, nil
	}
	if _, err := idempotency.Do(ctx, ex, k1, "fp", fn); err != nil {
		t.Fatal(err)
	}
	selfDecodes.Store(0)
	for range 3 {
		got, err := idempotency.Do(ctx, ex, k1, "fp", fn)
		if err != nil || got.Inner[0].N != 3 {
			t.Fatalf("%+v %v", got, err)
		}
	}
	if n := selfDecodes.Load(); n != 3 {
		t.Fatalf("UnmarshalJSON ran %d times for 3 replays, want 3", n)
	}
}

type countingCodec struct {
	idempotency.JSONCodec
	decodes *atomic.Int32
}

func (c countingCodec) Unmarshal(b []byte, v any) error {
	c.decodes.Add(1)
	return c.JSONCodec.Unmarshal(b, v)
}

// Only the JSON codec is memoized: another codec decodes every replay.
func TestDoReplayOtherCodecDecodesEveryTime(t *testing.T) {
	var decodes atomic.Int32
	ex := memoExec(t, func(c *idempotency.Config) { c.Codec = countingCodec{decodes: &decodes} })
	ctx := context.Background()
	fn := func(context.Context) (payment, error) { return payment{ID: "pay_1"}, nil }
	for range 4 {
		if got, err := idempotency.Do(ctx, ex, k1, "fp", fn); err != nil || got.ID != "pay_1" {
			t.Fatalf("%+v %v", got, err)
		}
	}
	if n := decodes.Load(); n != 3 {
		t.Fatalf("codec decoded %d times for 3 replays, want 3", n)
	}
}

// A stored error is replayed as a new *contract.Error every time.
func TestDoReplayStoredErrorIsNotShared(t *testing.T) {
	ex := memoExec(t, func(c *idempotency.Config) { c.StoreError = func(error) bool { return true } })
	ctx := context.Background()
	declined := contract.New(contract.KindInvalid, "pay", "card declined").WithCode("pay.declined")
	fn := func(context.Context) (payment, error) { return payment{}, declined }
	if _, err := idempotency.Do(ctx, ex, k1, "fp", fn); !errors.Is(err, declined) {
		t.Fatalf("first: %v", err)
	}
	var prev *contract.Error
	for i := range 3 {
		_, err := idempotency.Do(ctx, ex, k1, "fp", fn)
		ce := contract.As(err)
		if ce == nil || ce.Kind != contract.KindInvalid || ce.Code != "pay.declined" || ce.Detail != "card declined" {
			t.Fatalf("replay %d: %#v", i, err)
		}
		if ce == prev {
			t.Fatal("two replays returned the same *contract.Error")
		}
		ce.Detail, ce.Code = "changed", "changed"
		prev = ce
	}
}

// Concurrent replays fill and read the memo at once (run under -race).
func TestDoReplayConcurrentMemo(t *testing.T) {
	ex := memoExec(t, nil)
	ctx := context.Background()
	want := payment{ID: "pay_1", Amount: 1250}
	fn := func(context.Context) (payment, error) { return want, nil }
	if _, err := idempotency.Do(ctx, ex, k1, "fp", fn); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				got, err := idempotency.Do(ctx, ex, k1, "fp", fn)
				if err != nil || got != want {
					t.Errorf("%+v %v", got, err)
					return
				}
				n, err := idempotency.Do(ctx, ex, k1, "fp", func(context.Context) (nested, error) { return nested{}, nil })
				if err != nil || n.Items != nil {
					t.Errorf("%+v %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
