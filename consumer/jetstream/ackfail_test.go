package jetstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
)

// ackFailingMsg is a js.Msg whose every acknowledgement fails, as on a
// connection lost between the pull and the ack.
type ackFailingMsg struct {
	js.Msg
	data      []byte
	streamSeq uint64
}

var errAckLost = errors.New("nats: connection lost")

func (m *ackFailingMsg) Data() []byte { return m.data }
func (m *ackFailingMsg) Metadata() (*js.MsgMetadata, error) {
	return &js.MsgMetadata{Sequence: js.SequencePair{Stream: m.streamSeq, Consumer: m.streamSeq}, NumDelivered: 1, Stream: "LEDGER", Consumer: "projection"}, nil
}
func (m *ackFailingMsg) Ack() error                       { return errAckLost }
func (m *ackFailingMsg) NakWithDelay(time.Duration) error { return errAckLost }
func (m *ackFailingMsg) Term() error                      { return errAckLost }

type fakeBatch struct{ ch chan js.Msg }

func (b fakeBatch) Messages() <-chan js.Msg { return b.ch }
func (b fakeBatch) Error() error            { return nil }

// oneBatchPull serves msgs in one pull, then stops Run.
type oneBatchPull struct {
	fakePull
	msgs   []js.Msg
	served bool
	stop   context.CancelFunc
}

func (p *oneBatchPull) Fetch(int, ...js.FetchOpt) (js.MessageBatch, error) {
	ch := make(chan js.Msg, len(p.msgs))
	if !p.served {
		p.served = true
		for _, m := range p.msgs {
			ch <- m
		}
	} else {
		p.stop()
	}
	close(ch)
	return fakeBatch{ch}, nil
}

// TestAcknowledgementFailureNamesTheMessage: an acknowledgement that fails
// leaves the message to its ack wait, and the warning is all an operator
// has to find it. It must say which message and which event: the stream
// sequence and delivery of the message, and the subject, sequence and
// correlation id of the event when it was decoded — not a bare "ack:
// connection lost" shared by every message of the stream.
func TestAcknowledgementFailureNamesTheMessage(t *testing.T) {
	var buf syncBuffer
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(consumer.Config{Handler: func(context.Context, *contract.Event) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	e := contract.Event{ID: "e-1", Source: "/ledger", SpecVersion: "1.0", Type: "posted.v1", Subject: "acct-7", Sequence: 3, CorrelationID: "corr-77"}
	data, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	pull := &oneBatchPull{stop: stop, msgs: []js.Msg{
		&ackFailingMsg{data: data, streamSeq: 41},
		&ackFailingMsg{data: []byte("not json"), streamSeq: 42},
	}}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatal(err)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["decision"] == "acknowledgement failed" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d 'acknowledgement failed' lines, want 2:\n%s", len(lines), buf.String())
	}
	ack, term := lines[0], lines[1]
	for k, want := range map[string]any{"stream_sequence": 41.0, "delivery": 1.0, "sequence": 3.0, "entity_kind": "subject", "entity_id": "acct-7", "correlation_id": "corr-77", "event_type": "posted.v1"} {
		if ack[k] != want {
			t.Errorf("ack failure line: %s = %v, want %v (%v)", k, ack[k], want, ack)
		}
	}
	if term["stream_sequence"] != 42.0 || !strings.HasPrefix(term["reason"].(string), "dead_letter: ") {
		t.Errorf("term failure line of the malformed message: %v, want its stream sequence 42", term)
	}
}
