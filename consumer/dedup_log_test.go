package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

// recordFailingStore claims, but never stores a completion or a release.
type recordFailingStore struct{ idempotency.Store }

func (recordFailingStore) Complete(context.Context, idempotency.Key, uint64, idempotency.Result) error {
	return contract.New(contract.KindUnavailable, "store", "down")
}

func (recordFailingStore) Release(context.Context, idempotency.Key, uint64) error {
	return contract.New(contract.KindUnavailable, "store", "down")
}

// TestDedupRecordFailureLogsTheEvent: when the deduplication record of an
// event cannot be stored (or its claim released), a redelivery runs it
// through the Guard again, or waits out the lease: the warning must say
// which event, with the coordinates every other decision line carries
// (sequence, type, source), not only the subject a dozen events share.
func TestDedupRecordFailureLogsTheEvent(t *testing.T) {
	var buf bytes.Buffer
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	c := mustConsumer(t, consumer.Config{
		Store:  recordFailingStore{memStore(t)},
		Guard:  mustGuard(t, ordering.Config{}),
		Logger: slog.New(h),
		Handler: func(_ context.Context, e *contract.Event) error {
			if e.Sequence == 2 {
				return contract.New(contract.KindUnavailable, "ledger", "down")
			}
			return nil
		},
	})
	for _, seq := range []uint64{1, 2} {
		c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("a", seq, `{}`))})
	}
	want := map[string]float64{"dedup record not stored": 1, "dedup claim not released": 2}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		d, _ := m["decision"].(string)
		seq, ok := want[d]
		if !ok {
			continue
		}
		delete(want, d)
		if m["sequence"] != seq || m["event_type"] != "com.example.posted.v1" || m["event_source"] != "/ledger" || m["entity_id"] != "a" {
			t.Errorf("%q line lacks the event's coordinates: %v", d, m)
		}
	}
	if len(want) != 0 {
		t.Fatalf("missing lines %v:\n%s", want, buf.String())
	}
}
