package idempotency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

func newDedup(t *testing.T) (*idempotency.Dedup, *storetest.FakeClock) {
	t.Helper()
	clk := storetest.NewFakeClock(epoch)
	d, err := idempotency.NewDedup(idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{Clock: clk}), Clock: clk, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return d, clk
}

func TestDedupAtMostOncePerRetention(t *testing.T) {
	d, clk := newDedup(t)
	ctx := context.Background()
	ev := contract.Event{ID: "evt-1", Source: "/psp/webhooks", SpecVersion: "1.0", Type: "payment.captured"}
	runs := 0
	handle := func(context.Context, contract.Event) error { runs++; return nil }
	for i := range 5 {
		dup, err := d.HandleEvent(ctx, ev, handle)
		if err != nil || dup != (i > 0) {
			t.Fatalf("delivery %d: duplicate=%v err=%v", i, dup, err)
		}
	}
	// The same id from another source is another event.
	other := ev
	other.Source = "/other"
	if dup, err := d.HandleEvent(ctx, other, handle); dup || err != nil {
		t.Fatalf("other source: %v %v", dup, err)
	}
	if runs != 2 {
		t.Fatalf("handler ran %d times, want 2", runs)
	}
	clk.Advance(time.Hour + time.Second)
	if dup, err := d.HandleEvent(ctx, ev, handle); dup || err != nil || runs != 3 {
		t.Fatalf("after retention: dup=%v err=%v runs=%d, want it processed again", dup, err, runs)
	}
}

// A failed first delivery must not make the redelivery a silent drop.
func TestDedupFailureReleases(t *testing.T) {
	d, _ := newDedup(t)
	ctx := context.Background()
	boom := errors.New("db down")
	dup, err := d.Handle(ctx, "src", "id-1", func(context.Context) error { return boom })
	if dup || !errors.Is(err, boom) {
		t.Fatalf("failing delivery: %v %v", dup, err)
	}
	ran := false
	dup, err = d.Handle(ctx, "src", "id-1", func(context.Context) error { ran = true; return nil })
	if dup || err != nil || !ran {
		t.Fatalf("redelivery after a failure: dup=%v err=%v ran=%v, want it to run", dup, err, ran)
	}
}

func TestDedupConcurrentRedelivery(t *testing.T) {
	d, _ := newDedup(t)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := d.Handle(context.Background(), "src", "id", func(context.Context) error {
			close(entered)
			<-release
			return nil
		})
		done <- err
	}()
	<-entered
	dup, err := d.Handle(context.Background(), "src", "id", func(context.Context) error {
		t.Error("redelivery ran while the first delivery was running")
		return nil
	})
	if dup || !errors.Is(err, idempotency.ErrInProgress) || !contract.Retryable(err) {
		t.Fatalf("concurrent redelivery: %v %v, want retryable ErrInProgress (nack and redeliver)", dup, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDedupRejectsEmptyID(t *testing.T) {
	d, _ := newDedup(t)
	_, err := d.Handle(context.Background(), "src", "", func(context.Context) error { return nil })
	if !errors.Is(err, contract.ErrInvalid) {
		t.Fatalf("empty id: %v", err)
	}
}
