package idempotency_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

type quote struct {
	ID   string  `json:"id"`
	Rate float64 `json:"rate"`
}

// fn ran (a charge was made) but its value cannot be encoded (a NaN from
// absurd upstream data): a retry must not run fn a second time.
func TestDoUnencodableValueIsNotRunAgain(t *testing.T) {
	for _, store := range []string{"memory", "other"} {
		t.Run(store, func(t *testing.T) {
			env := newExec(t, func(c *idempotency.Config) {
				if store == "memory" {
					c.Store = bareMemory(t, c)
				}
			})
			runs := 0
			fn := func(context.Context) (quote, error) { runs++; return quote{ID: "q1", Rate: math.NaN()}, nil }
			ctx := context.Background()
			v, err := idempotency.Do(ctx, env.ex, k1, "fp", fn)
			if v.ID != "q1" || !errors.Is(err, contract.ErrInternal) {
				t.Fatalf("first call: %+v, %v; want fn's value and the encoding error", v, err)
			}
			for range 2 {
				_, err := idempotency.Do(ctx, env.ex, k1, "fp", fn)
				var ce *contract.Error
				if !errors.As(err, &ce) || ce.Kind != contract.KindConflict || ce.Code != "idempotency.result_not_stored" || contract.Retryable(err) {
					t.Fatalf("duplicate: %v, want a permanent conflict idempotency.result_not_stored", err)
				}
			}
			if runs != 1 {
				t.Fatalf("fn ran %d times, want once", runs)
			}
		})
	}
}

// bareMemory returns a MemoryStore not wrapped in a faultyStore, so the
// executor takes its copy-free path.
func bareMemory(t *testing.T, c *idempotency.Config) idempotency.Store {
	t.Helper()
	return newMemory(t, idempotency.MemoryConfig{Clock: c.Clock})
}

type explosive struct{ ID string }

func (explosive) MarshalJSON() ([]byte, error) { panic("marshal bug") }

// A Codec (here a MarshalJSON) that panics after fn ran: the panic
// continues, but the key is not released for a second run.
func TestDoCodecPanicAfterRunIsNotRunAgain(t *testing.T) {
	env := newExec(t, nil)
	runs := 0
	fn := func(context.Context) (explosive, error) { runs++; return explosive{ID: "x"}, nil }
	call := func() (panicked any, err error) {
		defer func() { panicked = recover() }()
		_, err = idempotency.Do(context.Background(), env.ex, k1, "fp", fn)
		return nil, err
	}
	if p, _ := call(); p != "marshal bug" {
		t.Fatalf("first call: recovered %#v, want the codec's panic to continue", p)
	}
	p, err := call()
	var ce *contract.Error
	if p != nil || !errors.As(err, &ce) || ce.Code != "idempotency.result_not_stored" || runs != 1 {
		t.Fatalf("duplicate: %v (panic %v) after %d runs, want one run and the permanent conflict idempotency.result_not_stored", err, p, runs)
	}
}
