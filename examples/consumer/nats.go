package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

// RunNATS plays the workload through NATS JetStream: it creates the stream
// o.Stream (refusing one that exists), publishes the deliveries in their
// shuffled order — originals with jetstream.Publish (Nats-Msg-Id set),
// half of the duplicates the same way (JetStream drops them), the other
// half as a producer without the header would (the consumer drops them),
// malformed ones raw — and consumes them with a jetstream.Adapter over a
// durable pull consumer until every message is settled or o.Timeout
// passes. The stream is deleted afterwards.
//
// JetStream's redeliveries are real: NAK with delay for gaps and injected
// failures, ack wait expiry for events held too long.
func RunNATS(ctx context.Context, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	w, err := Produce(o.Events, o.Subjects, o.DupRate, o.RepublishRate, o.Seed)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(o.NATSURL, nats.Name("sadpath-examples-consumer"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, contract.Wrap(contract.KindUnavailable, "examples/consumer.nats", hideCredentials(err, o.NATSURL))
	}
	defer nc.Close()
	j, err := js.New(nc)
	if err != nil {
		return nil, contract.Wrap(contract.KindUnavailable, "examples/consumer.nats", err)
	}

	setup, cancelSetup := context.WithTimeout(ctx, 10*time.Second)
	defer cancelSetup()
	if _, err := j.Stream(setup, o.Stream); err == nil {
		return nil, contract.New(contract.KindConflict, "examples/consumer.nats",
			fmt.Sprintf("stream %s already exists: delete it (nats stream rm %s) or choose another -stream", o.Stream, o.Stream)).WithCode("stream.exists")
	} else if !errors.Is(err, js.ErrStreamNotFound) {
		return nil, contract.Wrap(contract.KindUnavailable, "examples/consumer.nats", err)
	}
	subjectPrefix := o.Stream + ".payments."
	if _, err := j.CreateStream(setup, js.StreamConfig{
		Name:     o.Stream,
		Subjects: []string{subjectPrefix + ">"},
		Storage:  js.MemoryStorage,
		MaxAge:   time.Hour, // a crashed run leaves nothing for long
	}); err != nil {
		return nil, contract.Wrap(contract.KindUnavailable, "examples/consumer.nats", err)
	}
	defer func() {
		del, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = j.DeleteStream(del, o.Stream)
	}()
	pull, err := j.CreateConsumer(setup, o.Stream, js.ConsumerConfig{
		Durable:    "payment-projection",
		AckPolicy:  js.AckExplicitPolicy,
		AckWait:    5 * time.Second,
		MaxDeliver: -1, // the consumer decides when to give up (MaxAttempts)
		// Held and NAKed gap messages stay unacknowledged: the limit must
		// exceed the Guard's MaxHeld plus a fetch batch (jetstream.New checks).
		MaxAckPending: max(10_000, o.MaxHeld+1_000),
	})
	if err != nil {
		return nil, contract.Wrap(contract.KindUnavailable, "examples/consumer.nats", err)
	}

	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		return nil, err
	}
	state, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		return nil, err
	}
	tap := newDecisionTap(o.Logger)
	a, err := newApp(o, appConfig{
		store: store, state: state,
		holdTimeout: 2 * time.Second, retryAfter: 100 * time.Millisecond,
		minBackoff: 50 * time.Millisecond, maxBackoff: time.Second,
		logger: slog.New(tap),
	})
	if err != nil {
		return nil, err
	}
	counted := &countingPull{Consumer: pull}
	adapter, err := jetstream.New(jetstream.Config{Pull: counted, Consumer: a.c, MaxWait: 200 * time.Millisecond, Logger: o.Logger})
	if err != nil {
		return nil, err
	}

	r := &Report{Mode: "nats", Options: o, JoinedDerived: true}
	r.Produced.Events, r.Produced.Duplicates, r.Produced.Republished, r.Produced.Malformed, r.Produced.Deliveries =
		len(w.Events), w.Duplicates, w.Republished, w.Malformed, len(w.Items)

	runCtx, stop := context.WithTimeout(ctx, o.Timeout)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- adapter.Run(runCtx) }()

	stored, serverDeduped, err := publish(runCtx, j, subjectPrefix, w)
	if err != nil {
		stop()
		<-runErr
		return nil, err
	}

	// Wait until every event is applied, every malformed one
	// dead-lettered, and the consumer has nothing left to deliver or
	// waiting for an acknowledgement.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var left string
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case err := <-runErr:
			// Run returns early only when the consumer is gone (or
			// runCtx ended, which the next iteration reports).
			if err != nil {
				return nil, err
			}
			runErr <- nil // for the wait below
			<-runCtx.Done()
			done = true
		case <-tick.C:
			left = a.outstanding(len(w.Events), w.Malformed)
			if left == "" {
				info, err := pull.Info(runCtx)
				if err != nil {
					left = "consumer info: " + err.Error()
				} else if info.NumPending+uint64(info.NumAckPending)+uint64(info.NumRedelivered) > 0 {
					left = fmt.Sprintf("%d messages not delivered, %d not acknowledged", info.NumPending, info.NumAckPending)
				}
			}
			done = left == ""
		}
	}
	timedOut := runCtx.Err() != nil && ctx.Err() == nil
	stop()
	if err := <-runErr; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	r.Counts = tap.counts()
	r.Counts.Held = r.Counts.GapsHeld
	counted.fill(&r.Counts)
	r.Counts.ServerDeduped = serverDeduped
	r.Counts.Applied = a.proj.Applications()
	r.Stored = stored
	if err := verify(r, w, a); err != nil {
		return nil, err
	}
	if timedOut {
		r.Problems = append(r.Problems, fmt.Sprintf("timed out after %s: %s", o.Timeout, left))
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

// hideCredentials returns err with the credentials of the -nats URL list
// (user and password, or a token in the user's place) replaced by
// [REDACTED] in its text. nats.Connect's error for a URL that does not
// parse (a bad port, say) quotes the whole URL, and the command prints it:
// a password typed on the command line would land in the CI log. The
// user info is everything before the last '@' of a URL: a password with
// an unescaped '/', '?' or '#' (common in generated ones) is what makes
// the URL fail to parse, and the error then quotes only part of it (nats
// drops what follows '#'; the port is read from the password). When a
// part of a password is still in the text once the whole is replaced,
// the text is not used at all. The returned error keeps the text only
// (the cause is not needed further).
func hideCredentials(err error, list string) error {
	msg := err.Error()
	hidden := msg
	var pieces []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if i := strings.Index(p, "://"); i >= 0 {
			p = p[i+len("://"):]
		}
		// Not cut at the first '/', '?' or '#': an unescaped one may be
		// inside the password, and over-hiding an error text is harmless.
		at := strings.LastIndex(p, "@")
		if at <= 0 {
			continue
		}
		user := p[:at]
		quoted := strconv.Quote(user) // as url.Error prints it, inside %q
		for _, s := range []string{user, quoted[1 : len(quoted)-1]} {
			hidden = strings.ReplaceAll(hidden, s, "[REDACTED]")
		}
		pieces = append(pieces, strings.FieldsFunc(user, func(r rune) bool { return strings.ContainsRune(":/?#", r) })...)
	}
	for _, s := range pieces {
		if len(s) >= 3 && strings.Contains(hidden, s) {
			return errors.New("cannot connect to " + redactURLs(list) + " (error text hidden: it would show the credentials)")
		}
	}
	if hidden == msg {
		return err
	}
	return errors.New(hidden)
}

// publish publishes the workload's items in their order and returns how
// many messages the stream stored and how many publications JetStream
// dropped as duplicates.
func publish(ctx context.Context, j js.JetStream, prefix string, w *Workload) (stored, deduped int, err error) {
	dups := 0
	for _, it := range w.Items {
		subject := prefix + "invalid"
		if it.Event != nil {
			subject = prefix + it.Event.Subject
		}
		var ack *js.PubAck
		switch {
		case it.Kind == Malformed:
			ack, err = j.Publish(ctx, subject, it.Data)
		case it.Kind == Duplicate && dups%2 == 1:
			// A producer that does not set Nats-Msg-Id: JetStream stores
			// the copy, the consumer's (source, id) deduplication drops it.
			dups++
			ack, err = j.Publish(ctx, subject, it.Data)
		default:
			if it.Kind == Duplicate {
				dups++
			}
			ack, err = jetstream.Publish(ctx, j, subject, it.Event)
		}
		if err != nil {
			return stored, deduped, contract.Wrap(contract.KindUnavailable, "examples/consumer.publish", err)
		}
		if ack.Duplicate {
			deduped++
		} else {
			stored++
		}
	}
	return stored, deduped, nil
}

// countingPull wraps the pull consumer the Adapter reads from, counting
// what the Adapter does with every message: deliveries, acks, NAKs and
// terminations. The decisions' reasons come from the decision logs
// (decisionTap): the Adapter does not expose its Results.
type countingPull struct {
	js.Consumer

	mu                       sync.Mutex
	deliveries, redeliveries int
	acks, naks, terms        int
}

// Fetch counts the deliveries of the batch and wraps each message so the
// Adapter's action on it is counted.
func (p *countingPull) Fetch(batch int, opts ...js.FetchOpt) (js.MessageBatch, error) {
	mb, err := p.Consumer.Fetch(batch, opts...)
	if err != nil {
		return nil, err
	}
	out := make(chan js.Msg)
	go func() {
		// Ends when the batch does: the Adapter always reads it to the end.
		defer close(out)
		for m := range mb.Messages() {
			p.delivered(m)
			out <- &countedMsg{Msg: m, p: p}
		}
	}()
	return &countedBatch{mb: mb, msgs: out}, nil
}

func (p *countingPull) delivered(m js.Msg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deliveries++
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
		p.redeliveries++
	}
}

func (p *countingPull) fill(c *Counts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.Deliveries, c.Redeliveries = p.deliveries, p.redeliveries
	c.Acked, c.Retried, c.DeadLettered = p.acks, p.naks, p.terms
}

type countedBatch struct {
	mb   js.MessageBatch
	msgs chan js.Msg
}

func (b *countedBatch) Messages() <-chan js.Msg { return b.msgs }
func (b *countedBatch) Error() error            { return b.mb.Error() }

// countedMsg counts the Adapter's action on one delivery.
type countedMsg struct {
	js.Msg
	p *countingPull
}

func (m *countedMsg) act(count *int, err error) error {
	if err == nil {
		m.p.mu.Lock()
		*count++
		m.p.mu.Unlock()
	}
	return err
}

func (m *countedMsg) Ack() error { return m.act(&m.p.acks, m.Msg.Ack()) }
func (m *countedMsg) DoubleAck(ctx context.Context) error {
	return m.act(&m.p.acks, m.Msg.DoubleAck(ctx))
}
func (m *countedMsg) Nak() error { return m.act(&m.p.naks, m.Msg.Nak()) }
func (m *countedMsg) NakWithDelay(d time.Duration) error {
	return m.act(&m.p.naks, m.Msg.NakWithDelay(d))
}
func (m *countedMsg) Term() error { return m.act(&m.p.terms, m.Msg.Term()) }
func (m *countedMsg) TermWithReason(reason string) error {
	return m.act(&m.p.terms, m.Msg.TermWithReason(reason))
}

// decisionTap is a slog.Handler in front of the example's logger that
// counts the consumer's and the Guard's decision records by decision and
// reason, whatever the log level lets through.
type decisionTap struct {
	next slog.Handler // nil: count only
	c    *tapCounts
}

type tapCounts struct {
	mu sync.Mutex
	Counts
}

func newDecisionTap(l *slog.Logger) *decisionTap {
	t := &decisionTap{c: &tapCounts{}}
	if l != nil {
		t.next = l.Handler()
	}
	return t
}

func (t *decisionTap) Enabled(context.Context, slog.Level) bool { return true }

func (t *decisionTap) Handle(ctx context.Context, r slog.Record) error {
	var decision, reason string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case logctx.KeyDecision:
			decision = a.Value.String()
		case logctx.KeyReason:
			reason = a.Value.String()
		}
		return true
	})
	t.c.mu.Lock()
	c := &t.c.Counts
	switch decision {
	case "duplicate event dropped":
		if reason == "(source, id) already processed" {
			c.DupByID++
		} else {
			c.DupBySeq++
		}
	case "stale event dropped":
		c.Stale++
	case "gap: event held":
		c.GapsHeld++
	case "gap: event rejected", "gap: held event rejected":
		c.GapsRejected++
	case "event retry scheduled":
		if reason == "handler failed, transient" {
			c.TransientFailures++
		}
	}
	t.c.mu.Unlock()
	if t.next == nil || !t.next.Enabled(ctx, r.Level) {
		return nil
	}
	return t.next.Handle(ctx, r)
}

func (t *decisionTap) WithAttrs(as []slog.Attr) slog.Handler {
	n := *t
	if t.next != nil {
		n.next = t.next.WithAttrs(as)
	}
	return &n
}

func (t *decisionTap) WithGroup(name string) slog.Handler {
	n := *t
	if t.next != nil {
		n.next = t.next.WithGroup(name)
	}
	return &n
}

func (t *decisionTap) counts() Counts {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.Counts
}
