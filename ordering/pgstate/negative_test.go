package pgstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// TestNegativeStoredSequenceRefused: a table pgstate did not create
// (Migrate keeps an existing one: a schema managed by another migration
// tool, without the CHECK (last >= 0)) can hold a negative sequence, written
// by hand or by another program ("set last = -1 to reset the subject").
// Read as a uint64 it was about 2^64: Last reported it, and the Guard
// dropped every later event of the subject as stale, acknowledged without a
// trace. Last and Advance now refuse such a row with a KindInternal error
// naming it, which a consumer retries and then dead-letters, never drops;
// so does AdvanceRedelivery, which a Guard under GapHold with TimeoutSkip
// calls instead of Advance (it did not, written beside that fix: every
// event was dropped as stale there).
func TestNegativeStoredSequenceRefused(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, name := table(t, p)
	if _, err := p.Exec(ctx, "ALTER TABLE "+name+" DROP CONSTRAINT "+name+"_last_check"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{-1, -9223372036854775808} {
		if _, err := p.Exec(ctx, "INSERT INTO "+name+" (subject, last) VALUES ('acct'::bytea, $1) ON CONFLICT (subject) DO UPDATE SET last = $1", v); err != nil {
			t.Fatal(err)
		}
		last, err := st.Last(ctx, "acct")
		if !errors.Is(err, contract.ErrInternal) {
			t.Errorf("stored %d: Last = %d, %v; want a KindInternal error", v, last, err)
		}
		ran := false
		err = st.Advance(ctx, "acct", func(context.Context, uint64) (uint64, error) { ran = true; return 1, nil })
		if !errors.Is(err, contract.ErrInternal) || ran {
			t.Errorf("stored %d: Advance = %v (fn ran: %v); want a KindInternal error before fn", v, err, ran)
		}
		ran = false
		err = st.AdvanceRedelivery(ctx, "acct", func(context.Context, uint64, func(context.Context, uint64) (time.Time, error)) (uint64, ordering.Redelivery, error) {
			ran = true
			return 1, ordering.Redelivery{}, nil
		})
		if !errors.Is(err, contract.ErrInternal) || ran {
			t.Errorf("stored %d: AdvanceRedelivery = %v (fn ran: %v); want a KindInternal error before fn", v, err, ran)
		}
		// Both Guards: GapHold with TimeoutSkip calls AdvanceRedelivery.
		for _, cfg := range []ordering.Config{{State: st}, {State: st, Gap: ordering.GapHold, OnTimeout: ordering.TimeoutSkip}} {
			g, err := ordering.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			applied := false
			o, err := g.Process(ctx, &contract.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", Subject: "acct", Sequence: 1},
				func(context.Context, *contract.Event) error { applied = true; return nil }, nil)
			if err == nil || applied {
				t.Errorf("stored %d, gap policy %v: Process = %+v, %v (applied %v); want a State error, the event neither applied nor dropped", v, cfg.Gap, o, err, applied)
			}
		}
	}
}
