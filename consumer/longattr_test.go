package consumer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
)

// A hostile or buggy producer's half-megabyte type and source: the
// consumer's decision lines carry them as attributes of the line, which the
// logctx Handler does not cut, so the consumer cuts them itself
// (logctx.Short), as the Guard does an event's subject: a reader gets their
// first bytes and their length, not a megabyte per retry or dead letter.
func TestDecisionLineCutsAHugeTypeAndSource(t *testing.T) {
	var buf bytes.Buffer
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	c := mustConsumer(t, consumer.Config{
		Store:  memStore(t),
		Logger: slog.New(h),
		Handler: func(context.Context, *contract.Event) error {
			calls++
			if calls == 1 {
				return contract.New(contract.KindUnavailable, "ledger", "down") // retried
			}
			return contract.New(contract.KindInvalid, "ledger", "refused") // dead-lettered
		},
	})
	e := event("acct", 1, `{}`)
	e.Type = strings.Repeat("t", 300<<10)
	e.Source = "/" + strings.Repeat("s", 300<<10)
	data := encode(t, e)
	for attempt, want := range []consumer.Action{consumer.Retry, consumer.DeadLetter} {
		if r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: attempt + 1}); r.Action != want {
			t.Fatalf("attempt %d: %+v, want %v", attempt+1, r, want)
		}
	}
	lines := 0
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		for attr, full := range map[string]string{"event_type": e.Type, "event_source": e.Source} {
			got, ok := m[attr].(string)
			if !ok {
				continue
			}
			lines++
			if want := logctx.Short(full); got != want {
				t.Errorf("%s logged as %d bytes (%.40q…), want %d bytes", attr, len(got), got, len(want))
			}
		}
		if len(sc.Bytes()) > 8192 {
			t.Errorf("a decision line of %d bytes", len(sc.Bytes()))
		}
	}
	if lines < 4 {
		t.Fatalf("%d type/source attributes logged, want those of the retry and the dead letter", lines)
	}
}
