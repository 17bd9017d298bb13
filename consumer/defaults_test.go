package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
)

// TestDefaultsFollowTheFieldsSet: a MinBackoff above the default MaxBackoff
// (1m), or a Lease above the default Retention (24h), set alone was
// refused with an error blaming the field left at zero ("Config.MaxBackoff:
// must be >= MinBackoff (2m0s), got 1m0s": a value the caller never gave).
// A zero MaxBackoff or Retention now means its default or, when longer,
// the MinBackoff or Lease it must not be below; both set and inconsistent
// is still refused.
func TestDefaultsFollowTheFieldsSet(t *testing.T) {
	h := func(context.Context, *contract.Event) error {
		return contract.New(contract.KindUnavailable, "h", "down")
	}
	ev := []byte(`{"id":"1","source":"/s","specversion":"1.0","type":"t"}`)
	for _, tc := range []struct {
		cfg  consumer.Config
		want time.Duration // delay of the first retry
	}{
		{consumer.Config{Handler: h, MinBackoff: 2 * time.Minute}, 2 * time.Minute},
		{consumer.Config{Handler: h, MinBackoff: 30 * time.Second}, 30 * time.Second},
		{consumer.Config{Handler: h, Lease: 48 * time.Hour, MinBackoff: time.Second}, time.Second},
		{consumer.Config{Handler: h, Lease: 48 * time.Hour, MinBackoff: 3 * time.Hour}, 3 * time.Hour},
	} {
		c, err := consumer.New(tc.cfg)
		if err != nil {
			t.Errorf("New(MinBackoff %v, Lease %v): %v, want accepted", tc.cfg.MinBackoff, tc.cfg.Lease, err)
			continue
		}
		r := c.Handle(context.Background(), consumer.Delivery{Data: ev, Attempt: 1})
		if r.Action != consumer.Retry || r.Delay != tc.want {
			t.Errorf("New(MinBackoff %v): %v after %v, want a retry after %v", tc.cfg.MinBackoff, r.Action, r.Delay, tc.want)
		}
	}
}
