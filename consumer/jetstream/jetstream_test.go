package jetstream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
	"github.com/sadpath/sadpath/ordering"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stream creates a memory stream with a unique name and subject space for
// one test, deleted when it ends.
func stream(t testing.TB) (js.JetStream, string, string) {
	t.Helper()
	nc, err := nats.Connect(testenv.NATSURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	j, err := js.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	name, subj := "SADPATH_ORDERING_"+strings.ToUpper(id), "sadpath.ordering."+id
	ctx := context.Background()
	if _, err := j.CreateStream(ctx, js.StreamConfig{
		Name: name, Subjects: []string{subj + ".>"}, Storage: js.MemoryStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.DeleteStream(context.Background(), name) })
	return j, name, subj
}

func pullConsumer(t testing.TB, j js.JetStream, streamName string, ackWait time.Duration) js.Consumer {
	t.Helper()
	c, err := j.CreateOrUpdateConsumer(context.Background(), streamName, js.ConsumerConfig{
		Durable: "projection", AckPolicy: js.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1,
		MaxAckPending: 20000, // room for a hold of 10000 and a batch (see jetstream.New)
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type fold map[string]uint64

func (f fold) apply(e *contract.Event) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%d|%s", f[e.Subject], e.Sequence, e.Data)
	f[e.Subject] = h.Sum64()
}

func TestProjectionUnderRedeliveryAndDisorder(t *testing.T) {
	for _, hold := range []bool{false, true} {
		t.Run(fmt.Sprintf("hold=%v", hold), func(t *testing.T) { projection(t, hold) })
	}
}

func projection(t *testing.T, hold bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	j, streamName, subj := stream(t)
	r := mrand.New(mrand.NewPCG(11, 13))

	// History: 10 subjects × 20 events, folded in order for the expectation.
	const subjects, perSubject = 10, 20
	var hist []contract.Event
	want := fold{}
	for s := 0; s < subjects; s++ {
		for q := 1; q <= perSubject; q++ {
			e := contract.Event{
				ID: fmt.Sprintf("evt-%d-%d", s, q), Source: "/ledger", SpecVersion: "1.0", Type: "com.example.posted.v1",
				Subject: fmt.Sprintf("acct_%d", s), Sequence: uint64(q), CorrelationID: fmt.Sprintf("req-%d-%d", s, q),
				Data: json.RawMessage(fmt.Sprintf(`{"amount":%d}`, r.IntN(10000))),
			}
			hist = append(hist, e)
			want.apply(&e)
		}
	}

	// Out-of-order publication, with republications: with the same
	// Nats-Msg-Id (JetStream drops them) and without one (it cannot).
	// The first 5 events of acct_0 go first and in order, so the crashed
	// worker below applies them before it dies; the rest is shuffled.
	order := []int{0, 1, 2, 3, 4}
	for _, i := range r.Perm(len(hist) - 5) {
		order = append(order, i+5)
	}
	for _, i := range order {
		if _, err := jetstream.Publish(ctx, j, subj+".events", &hist[i]); err != nil {
			t.Fatal(err)
		}
	}
	dropped, raw := 0, 0
	for _, i := range order[:40] {
		ack, err := jetstream.Publish(ctx, j, subj+".events", &hist[i])
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate {
			t.Fatalf("republication of %s with the same Nats-Msg-Id was stored", hist[i].ID)
		}
		dropped++
	}
	for _, i := range order[40:70] {
		b, _ := json.Marshal(hist[i])
		if _, err := j.Publish(ctx, subj+".events", b); err != nil {
			t.Fatal(err)
		}
		raw++
	}

	pull := pullConsumer(t, j, streamName, time.Second)

	var mu sync.Mutex
	got := fold{}
	execs := map[string]int{}
	faults, inject := 0, false
	handler := func(_ context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if inject && execs[e.ID] == 0 && r.IntN(10) == 0 {
			faults++ // transient failure: NAK with delay, redelivered
			return contract.New(contract.KindUnavailable, "projection", "injected fault")
		}
		got.apply(e)
		execs[e.ID]++
		return nil
	}
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	policy := ordering.GapReject
	if hold {
		policy = ordering.GapHold
	}
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	guard, err := ordering.New(ordering.Config{Gap: policy, HoldTimeout: time.Hour, RetryAfter: 20 * time.Millisecond, MaxHeld: 10000, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var dead []error
	c, err := consumer.New(consumer.Config{
		Name: "projection", Store: store, Guard: guard, Handler: handler, Logger: log,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxAttempts: 1 << 20,
		DeadLetter: func(_ context.Context, _ consumer.Delivery, _ *contract.Event, err error) { dead = append(dead, err) },
	})
	if err != nil {
		t.Fatal(err)
	}

	// A worker that crashes: it receives 15 messages, handles some of them
	// (their effect happens) and never acknowledges any. JetStream
	// redelivers them after the ack wait.
	batch, err := pull.Fetch(15, js.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	crashed := 0
	for msg := range batch.Messages() {
		c.Handle(ctx, consumer.Delivery{Data: msg.Data(), Attempt: 1})
		crashed++
	}
	mu.Lock()
	inject = true
	if len(execs) < 5 {
		t.Fatalf("crashed worker applied %d events, want the first ones of acct_0", len(execs))
	}
	mu.Unlock()
	if crashed != 15 {
		t.Fatalf("crashed worker received %d messages, want 15", crashed)
	}

	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, Batch: 50, MaxWait: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Run(runCtx) }()

	// Wait until every event is applied and every message acknowledged.
	for {
		info, err := pull.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(execs)
		mu.Unlock()
		if n == len(hist) && info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out: %d/%d applied, ack pending %d, pending %d, held %d", n, len(hist), info.NumAckPending, info.NumPending, guard.Held())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for id, n := range execs {
		if n != 1 {
			t.Fatalf("event %s applied %d times, want exactly once", id, n)
		}
	}
	for s, d := range want {
		if got[s] != d {
			t.Fatalf("subject %s: projection differs from applying every event once, in order", s)
		}
	}
	if len(dead) != 0 {
		t.Fatalf("%d dead letters: %v", len(dead), dead[0])
	}
	if faults == 0 {
		t.Fatal("no fault injected: no NAK-with-delay redelivery was exercised")
	}
	out := logs.String()
	dups := strings.Count(out, `"reason":"(source, id) already processed"`)
	// The 5 events the crashed worker applied are redelivered after the ack
	// wait and dropped by (source, id). Without hold, so is one copy of each
	// raw republication; with hold, a copy arriving while the other is held
	// joins it instead (exactly-once is asserted above either way).
	wantDups := 5
	if !hold {
		wantDups += raw
	}
	if dups < wantDups {
		t.Fatalf("%d duplicates dropped by (source, id), want at least %d", dups, wantDups)
	}
	t.Logf("hold=%v: %d events, %d republications dropped by JetStream, %d deliveries dropped by (source, id), %d injected faults, %d messages abandoned by a crashed worker",
		hold, len(hist), dropped, dups, faults, crashed)
}

func TestPublishRejectsInvalidEvent(t *testing.T) {
	j, _, subj := stream(t)
	_, err := jetstream.Publish(context.Background(), j, subj+".x", &contract.Event{ID: "1"})
	if !errors.Is(err, contract.ErrInvalid) {
		t.Fatalf("Publish(invalid) = %v, want KindInvalid", err)
	}
}

// TestPublishRefusesBadInputPermanently: a nil event panicked, and a
// subject NATS refuses (empty, with spaces or a line break: nats.ErrBadSubject,
// refused by the client before sending) was KindUnavailable, retryable, so a
// caller retrying retryable errors spun on it forever. Both are KindInvalid
// now, permanent, the subject's refusal still matching nats.ErrBadSubject.
// So are subjects the client sends but NATS gives no meaning as a message's
// subject (a wildcard or empty token): the server stored one, where no
// consumer filtering on concrete subjects would ever see it.
func TestPublishRefusesBadInputPermanently(t *testing.T) {
	j, _, subj := stream(t)
	ev := &contract.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t"}
	for _, tc := range []struct {
		name    string
		subject string
		ev      *contract.Event
		bad     error // wrapped, when not nil
	}{
		{"nil event", subj + ".x", nil, nil},
		{"empty subject", "", ev, nats.ErrBadSubject},
		{"space", subj + ". x", ev, nats.ErrBadSubject},
		{"line break", subj + ".a\r\nb", ev, nats.ErrBadSubject},
		{"tab", subj + ".a\tb", ev, nats.ErrBadSubject},
		{"wildcard token", subj + ".*", ev, nats.ErrBadSubject},
		{"full wildcard token", subj + ".>", ev, nats.ErrBadSubject},
		{"empty token", subj + "..x", ev, nats.ErrBadSubject},
		{"trailing dot", subj + ".x.", ev, nats.ErrBadSubject},
	} {
		_, err := jetstream.Publish(context.Background(), j, tc.subject, tc.ev)
		if !errors.Is(err, contract.ErrInvalid) || contract.Retryable(err) || (tc.bad != nil && !errors.Is(err, tc.bad)) {
			t.Errorf("%s: Publish = %v (kind %s, retryable %v), want a permanent KindInvalid", tc.name, err, contract.KindOf(err), contract.Retryable(err))
		}
	}
	// A valid publication still goes through.
	if _, err := jetstream.Publish(context.Background(), j, subj+".x", ev); err != nil {
		t.Fatal(err)
	}
}

// TestPublishOversizedIsNotRetryable: an event larger than the server's
// max_payload or the stream's MaxMsgSize can never be published. Publish
// says so with KindTooLarge: a caller retrying retryable errors would spin
// on it forever.
func TestPublishOversizedIsNotRetryable(t *testing.T) {
	ctx := context.Background()
	j, name, subj := stream(t)
	oversized := func(size int) *contract.Event {
		data, err := json.Marshal(strings.Repeat("x", size))
		if err != nil {
			t.Fatal(err)
		}
		return &contract.Event{ID: "big", Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: "acct", Sequence: 1, Data: data}
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, contract.ErrTooLarge) || contract.Retryable(err) {
			t.Fatalf("Publish of an event above %s: %v (kind %s, retryable %v), want a permanent KindTooLarge",
				what, err, contract.KindOf(err), contract.Retryable(err))
		}
	}

	_, err := jetstream.Publish(ctx, j, subj+".events", oversized(int(j.Conn().MaxPayload())))
	check("the server's max_payload", err)
	if !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("%v: want nats.ErrMaxPayload wrapped", err)
	}

	s, err := j.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = 1024
	if _, err := j.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, err = jetstream.Publish(ctx, j, subj+".events", oversized(2048))
	check("the stream's MaxMsgSize", err)

	// An event that fits is published; the connection is still usable.
	if _, err := jetstream.Publish(ctx, j, subj+".events", oversized(10)); err != nil {
		t.Fatalf("Publish of a small event after the refusals: %v", err)
	}
}

func TestMalformedMessageIsTerminated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, streamName, subj := stream(t)
	if _, err := j.Publish(ctx, subj+".bad", []byte(`{"not":"an event"`)); err != nil {
		t.Fatal(err)
	}
	pull := pullConsumer(t, j, streamName, time.Second)
	deadc := make(chan error, 1)
	c, err := consumer.New(consumer.Config{
		Handler: func(context.Context, *contract.Event) error {
			t.Error("handler ran for a malformed message")
			return nil
		},
		DeadLetter: func(_ context.Context, _ consumer.Delivery, _ *contract.Event, err error) { deadc <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Run(runCtx) }()
	select {
	case err := <-deadc:
		if !errors.Is(err, contract.ErrMalformed) {
			t.Fatalf("dead letter error %v, want malformed", err)
		}
	case <-ctx.Done():
		t.Fatal("malformed message never dead-lettered")
	}
	// Terminated: never redelivered, nothing pending.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := pull.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message still pending after Term: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-deadc:
		t.Fatalf("dead-lettered twice: %v", err)
	default:
	}
}

// noopConsumer is a Consumer whose handler accepts every event.
func noopConsumer(t *testing.T) *consumer.Consumer {
	t.Helper()
	c, err := consumer.New(consumer.Config{Handler: func(context.Context, *contract.Event) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expectNew checks jetstream.New(cfg): accepted when want is "", else
// refused with a config.invalid error whose detail is want.
func expectNew(t *testing.T, what string, cfg jetstream.Config, want string) {
	t.Helper()
	_, err := jetstream.New(cfg)
	if want == "" {
		if err != nil {
			t.Fatalf("%s: New: %v, want accepted", what, err)
		}
		return
	}
	if ce := contract.As(err); !errors.Is(err, contract.ErrInvalid) || ce.Code != "config.invalid" || ce.Detail != want {
		t.Fatalf("%s: New: %v, want %q", what, err, want)
	}
	// The field is also machine-readable, as in limit and breaker.
	if f := contract.As(err).Fields; len(f) != 1 || !strings.HasPrefix(want, f[0].Name+": ") {
		t.Fatalf("%s: New: fields %v, want the field of %q", what, f, want)
	}
}

func TestConfigInvalid(t *testing.T) {
	c := noopConsumer(t)
	var pull js.Consumer = fakePull{}
	for _, tc := range []struct {
		cfg  jetstream.Config
		want string
	}{
		{jetstream.Config{Consumer: c}, "Config.Pull: required"},
		{jetstream.Config{Pull: pull}, "Config.Consumer: required"},
		{jetstream.Config{Pull: pull, Consumer: c, Batch: -1}, "Config.Batch: must be >= 0, got -1"},
		{jetstream.Config{Pull: pull, Consumer: c, MaxWait: -1}, "Config.MaxWait: must be >= 0, got -1ns"},
		// A zero Consumer dead-lettered (terminated) every message as
		// larger than its MaxEventBytes of 0.
		{jetstream.Config{Pull: pull, Consumer: &consumer.Consumer{}}, "Config.Consumer: not created with consumer.New"},
	} {
		expectNew(t, "config", tc.cfg, tc.want)
	}
}

// TestMaxAckPendingMustExceedHold: held messages stay unacknowledged and
// count against the pull consumer's MaxAckPending. New refuses a Consumer
// whose Guard holds gaps over a pull consumer whose MaxAckPending leaves no
// room for a batch beyond a full hold buffer: JetStream would stop
// delivering, the missing event included.
func TestMaxAckPendingMustExceedHold(t *testing.T) {
	withGuard := func(cfg ordering.Config) *consumer.Consumer {
		t.Helper()
		g, err := ordering.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := consumer.New(consumer.Config{Guard: g, Handler: func(context.Context, *contract.Event) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	holding := withGuard(ordering.Config{Gap: ordering.GapHold}) // MaxHeld 1024
	rejecting := withGuard(ordering.Config{})
	huge := withGuard(ordering.Config{Gap: ordering.GapHold, MaxHeld: math.MaxInt}) // "no limit"
	if holding.MaxHeld() != 1024 || rejecting.MaxHeld() != 0 {
		t.Fatalf("MaxHeld: holding %d, rejecting %d; want 1024 and 0", holding.MaxHeld(), rejecting.MaxHeld())
	}
	pull := func(maxAckPending int) js.Consumer {
		return fakePull{info: &js.ConsumerInfo{Config: js.ConsumerConfig{AckPolicy: js.AckExplicitPolicy, MaxAckPending: maxAckPending}}}
	}
	for _, tc := range []struct {
		name string
		cfg  jetstream.Config
		want string // "" when accepted
	}{
		{"JetStream default", jetstream.Config{Pull: pull(1000), Consumer: holding},
			"Config.Pull: the consumer's MaxAckPending (1000) must be larger than the Guard's MaxHeld (1024) plus Config.Batch (100), or -1 (unlimited): held messages count against it"},
		{"no room for a batch", jetstream.Config{Pull: pull(1124), Consumer: holding},
			"Config.Pull: the consumer's MaxAckPending (1124) must be larger than the Guard's MaxHeld (1024) plus Config.Batch (100), or -1 (unlimited): held messages count against it"},
		{"smaller batch", jetstream.Config{Pull: pull(1100), Consumer: holding, Batch: 10}, ""},
		{"room for a batch", jetstream.Config{Pull: pull(1125), Consumer: holding}, ""},
		{"unlimited", jetstream.Config{Pull: pull(-1), Consumer: holding}, ""},
		// MaxHeld + Batch overflowed int and looked smaller than any
		// MaxAckPending: the starvation the check prevents was accepted.
		{"huge hold", jetstream.Config{Pull: pull(1000), Consumer: huge},
			fmt.Sprintf("Config.Pull: the consumer's MaxAckPending (1000) must be larger than the Guard's MaxHeld (%d) plus Config.Batch (100), or -1 (unlimited): held messages count against it", math.MaxInt)},
		{"huge batch", jetstream.Config{Pull: pull(4096), Consumer: holding, Batch: math.MaxInt},
			fmt.Sprintf("Config.Pull: the consumer's MaxAckPending (4096) must be larger than the Guard's MaxHeld (1024) plus Config.Batch (%d), or -1 (unlimited): held messages count against it", math.MaxInt)},
		{"huge hold, unlimited", jetstream.Config{Pull: pull(-1), Consumer: huge}, ""},
		{"gaps rejected", jetstream.Config{Pull: pull(1000), Consumer: rejecting}, ""},
		{"no info", jetstream.Config{Pull: fakePull{}, Consumer: rejecting}, ""},
	} {
		expectNew(t, tc.name, tc.cfg, tc.want)
	}
}

// TestHeldMessagesDoNotStarveTheMissingEvent: 1000 events of a subject are
// in the stream before its first one, the README's wiring holds gaps with
// the Guard's defaults (MaxHeld 1024, TimeoutSkip). On a pull consumer with
// JetStream's default MaxAckPending (1000) the held messages would fill it
// and the first event would never be delivered — the hold would time out
// and skip it: New refuses that. With room for the hold and a batch, every
// event is applied, in order.
func TestHeldMessagesDoNotStarveTheMissingEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	j, streamName, subj := stream(t)
	const n = 1001
	publish := func(seq uint64) {
		t.Helper()
		e := contract.Event{ID: fmt.Sprint("e", seq), Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: "acct", Sequence: seq}
		if _, err := jetstream.Publish(ctx, j, subj+".events", &e); err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint64(2); seq <= n; seq++ {
		publish(seq)
	}
	publish(1)

	guard, err := ordering.New(ordering.Config{Gap: ordering.GapHold}) // HoldTimeout 30s
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var applied []uint64
	c, err := consumer.New(consumer.Config{Guard: guard, Handler: func(_ context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, e.Sequence)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}

	cfg := js.ConsumerConfig{Durable: "projection", AckPolicy: js.AckExplicitPolicy}
	pull, err := j.CreateOrUpdateConsumer(ctx, streamName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c}); !errors.Is(err, contract.ErrInvalid) ||
		!strings.Contains(contract.As(err).Detail, "MaxAckPending (1000)") {
		t.Fatalf("New over a pull consumer with JetStream's default MaxAckPending: %v, want it refused", err)
	}
	cfg.MaxAckPending = 2048
	if pull, err = j.CreateOrUpdateConsumer(ctx, streamName, cfg); err != nil {
		t.Fatal(err)
	}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Run(runCtx) }()
	for {
		info, err := pull.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := len(applied)
		mu.Unlock()
		if got == n && info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out: %d of %d applied, ack pending %d, pending %d, held %d", got, n, info.NumAckPending, info.NumPending, guard.Held())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range applied {
		if seq != uint64(i+1) {
			t.Fatalf("applied[%d] = %d: events applied out of order or skipped (first: %v)", i, seq, applied[:min(len(applied), 5)])
		}
	}
}

// fakePull is a js.Consumer that only answers CachedInfo (nil without info).
type fakePull struct {
	js.Consumer
	info *js.ConsumerInfo
}

func (f fakePull) CachedInfo() *js.ConsumerInfo { return f.info }

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGapSkippedAfterHoldTimeout publishes a subject's events with one
// missing for good: with GapHold and a short HoldTimeout the held events
// are applied after a logged "gap skipped", and every message is acked.
func TestGapSkippedAfterHoldTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, streamName, subj := stream(t)
	for _, seq := range []uint64{3, 1, 4} { // 2 never comes
		e := contract.Event{ID: fmt.Sprint("e", seq), Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: "acct", Sequence: seq}
		if _, err := jetstream.Publish(ctx, j, subj+".events", &e); err != nil {
			t.Fatal(err)
		}
	}
	pull := pullConsumer(t, j, streamName, 5*time.Second)
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	guard, err := ordering.New(ordering.Config{Gap: ordering.GapHold, HoldTimeout: 300 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var applied []uint64
	c, err := consumer.New(consumer.Config{Guard: guard, Handler: func(_ context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, e.Sequence)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Run(runCtx) }()
	for {
		info, err := pull.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(applied)
		mu.Unlock()
		if n == 3 && info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out: applied %v, ack pending %d", applied, info.NumAckPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(applied) != "[1 3 4]" {
		t.Fatalf("applied %v, want [1 3 4]", applied)
	}
	if !strings.Contains(logs.String(), `"decision":"gap skipped"`) {
		t.Fatalf("no gap skipped decision logged:\n%s", logs.String())
	}
}

// TestRunStopsHandlingOnShutdown: once Run's context is done, the rest of
// the batch in hand is not handled with the canceled context (handlers run
// after the shutdown began, Run returning a batch of handler runs late):
// it is handed back at once, and another Adapter handles it without
// waiting for the ack wait.
func TestRunStopsHandlingOnShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, streamName, subj := stream(t)
	const n = 5
	for i := 1; i <= n; i++ {
		e := contract.Event{ID: fmt.Sprint("e", i), Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: fmt.Sprint("acct-", i), Sequence: 1}
		if _, err := jetstream.Publish(ctx, j, subj+".events", &e); err != nil {
			t.Fatal(err)
		}
	}
	pull := pullConsumer(t, j, streamName, 5*time.Minute) // no redelivery by ack wait within the test
	runCtx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var seen []string
	var afterStop int
	c, err := consumer.New(consumer.Config{Handler: func(ctx context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if runCtx.Err() != nil && ctx.Err() != nil {
			afterStop++
		}
		seen = append(seen, e.ID)
		stop() // the shutdown begins while the first event is handled
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, Batch: n, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(runCtx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	first, late := len(seen), afterStop
	mu.Unlock()
	if first != 1 || late != 0 {
		t.Fatalf("handled %d events (%d with the canceled context) after the shutdown began, want 1 and 0", first, late)
	}

	// The rest is redelivered at once to the next Adapter.
	c2, err := consumer.New(consumer.Config{Handler: func(_ context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e.ID)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c2, Batch: n, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx2, stop2 := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a2.Run(runCtx2) }()
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n {
			break
		}
		if ctx.Err() != nil {
			stop2()
			<-done
			t.Fatalf("handled %d of %d events: the rest of the batch waits for its ack wait", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// manualClock is an ordering.Clock moved by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRunDoesNotSweepOnShutdown: once Run's context is done, Run does not
// sweep the hold on its way out: a timed-out gap would be skipped and its
// held events applied by handlers running with the canceled context, after
// the shutdown began.
func TestRunDoesNotSweepOnShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, streamName, subj := stream(t)
	for _, e := range []contract.Event{
		{ID: "a2", Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: "a", Sequence: 2}, // a/1 never comes
		{ID: "b1", Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: "b", Sequence: 1},
	} {
		if _, err := jetstream.Publish(ctx, j, subj+".events", &e); err != nil {
			t.Fatal(err)
		}
	}
	pull := pullConsumer(t, j, streamName, 5*time.Minute)
	clk := &manualClock{now: time.Unix(1_700_000_000, 0)}
	guard, err := ordering.New(ordering.Config{Gap: ordering.GapHold, HoldTimeout: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var late []string
	c, err := consumer.New(consumer.Config{Guard: guard, Handler: func(ctx context.Context, e *contract.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			late = append(late, e.ID)
		}
		if e.ID == "b1" {
			clk.add(time.Hour) // a/2 has waited its HoldTimeout
			stop()             // and the shutdown begins
		}
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(runCtx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(late) != 0 {
		t.Fatalf("handlers ran with the canceled context after the shutdown began: %v", late)
	}
	if guard.Held() != 1 {
		t.Fatalf("held %d, want a/2 still held", guard.Held())
	}
}

// TestPullLimitsMustFitTheRequests: a pull consumer with MaxRequestBatch
// below Config.Batch, or MaxRequestExpires below Config.MaxWait, answers
// every pull of Run with a 409 ("Exceeded MaxRequestBatch of 10"): Run
// would log "pull failed" and retry forever without ever handling a
// message. New refuses such a pairing.
func TestPullLimitsMustFitTheRequests(t *testing.T) {
	c := noopConsumer(t)
	pull := func(batch int, expires time.Duration) js.Consumer {
		return fakePull{info: &js.ConsumerInfo{Config: js.ConsumerConfig{AckPolicy: js.AckExplicitPolicy, MaxRequestBatch: batch, MaxRequestExpires: expires}}}
	}
	for _, tc := range []struct {
		name string
		cfg  jetstream.Config
		want string // "" when accepted
	}{
		{"batch over the limit", jetstream.Config{Pull: pull(10, 0), Consumer: c},
			"Config.Batch: 100 is above the consumer's MaxRequestBatch (10): every pull would be refused"},
		{"batch at the limit", jetstream.Config{Pull: pull(10, 0), Consumer: c, Batch: 10}, ""},
		{"wait over the limit", jetstream.Config{Pull: pull(0, 500*time.Millisecond), Consumer: c},
			"Config.MaxWait: 1s is above the consumer's MaxRequestExpires (500ms): every pull would be refused"},
		{"wait at the limit", jetstream.Config{Pull: pull(0, 500*time.Millisecond), Consumer: c, MaxWait: 500 * time.Millisecond}, ""},
		{"no limits", jetstream.Config{Pull: pull(0, 0), Consumer: c}, ""},
	} {
		expectNew(t, tc.name, tc.cfg, tc.want)
	}
}

// TestPullMustAckExplicitly: on a pull consumer with AckNone a message is
// acknowledged when delivered, so a Retry (NAK) or a held message is lost;
// with AckAll the acknowledgement of a later message acknowledges the
// earlier ones still held or waiting for their redelivery, lost at the next
// crash. New refuses both.
func TestPullMustAckExplicitly(t *testing.T) {
	c := noopConsumer(t)
	for _, tc := range []struct {
		policy js.AckPolicy
		want   string // "" when accepted
	}{
		{js.AckNonePolicy, `Config.Pull: the consumer's AckPolicy is AckNone, want explicit acknowledgements: retries and held messages would be acknowledged with others`},
		{js.AckAllPolicy, `Config.Pull: the consumer's AckPolicy is AckAll, want explicit acknowledgements: retries and held messages would be acknowledged with others`},
		{js.AckExplicitPolicy, ""},
	} {
		pull := fakePull{info: &js.ConsumerInfo{Config: js.ConsumerConfig{AckPolicy: tc.policy}}}
		expectNew(t, tc.policy.String(), jetstream.Config{Pull: pull, Consumer: c}, tc.want)
	}
}

// TestMaxDeliverMustExceedMaxAttempts: JetStream stops redelivering a
// message once MaxDeliver deliveries were made: a message NAKed for a retry
// at that point is dropped silently — never terminated, never given to the
// DeadLetter callback. The Consumer gives up at MaxAttempts (DeadLetter),
// and retries past it only when it is not the event's fault (in progress
// elsewhere, a shutdown): New refuses a MaxDeliver that does not leave it
// that room.
func TestMaxDeliverMustExceedMaxAttempts(t *testing.T) {
	c := noopConsumer(t) // MaxAttempts 10
	for _, tc := range []struct {
		maxDeliver int
		want       string // "" when accepted
	}{
		{5, "Config.Pull: the consumer's MaxDeliver (5) must be larger than the Consumer's MaxAttempts (10), or -1 (unlimited): JetStream drops a message retried at MaxDeliver, without a dead letter"},
		{10, "Config.Pull: the consumer's MaxDeliver (10) must be larger than the Consumer's MaxAttempts (10), or -1 (unlimited): JetStream drops a message retried at MaxDeliver, without a dead letter"},
		{11, ""},
		{-1, ""},
		{0, ""}, // the server's default: unlimited
	} {
		pull := fakePull{info: &js.ConsumerInfo{Config: js.ConsumerConfig{AckPolicy: js.AckExplicitPolicy, MaxDeliver: tc.maxDeliver}}}
		expectNew(t, fmt.Sprintf("MaxDeliver %d", tc.maxDeliver), jetstream.Config{Pull: pull, Consumer: c}, tc.want)
	}
}

// TestRunReturnsWhenConnectionClosed: once the NATS connection is closed for
// good (nc.Close, or its reconnect limit reached), every pull fails with
// nats.ErrConnectionClosed: Run returned only with its context, logging
// "pull failed" every MaxWait while nothing was consumed. It returns an
// error matching nats.ErrConnectionClosed instead, whether the connection
// closed before Run or while it was pulling.
func TestRunReturnsWhenConnectionClosed(t *testing.T) {
	for _, during := range []bool{false, true} {
		t.Run(fmt.Sprintf("during=%v", during), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			j, streamName, subj := stream(t)
			e := contract.Event{ID: "e1", Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: "acct", Sequence: 1}
			if _, err := jetstream.Publish(ctx, j, subj+".events", &e); err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(testenv.NATSURL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			own, err := js.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			pullConsumer(t, j, streamName, time.Minute)
			pull, err := own.Consumer(ctx, streamName, "projection")
			if err != nil {
				t.Fatal(err)
			}
			handled := make(chan struct{}, 1)
			c, err := consumer.New(consumer.Config{Handler: func(context.Context, *contract.Event) error {
				handled <- struct{}{}
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, MaxWait: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !during {
				nc.Close()
			}
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			if during {
				<-handled // Run is pulling
				nc.Close()
			}
			err = <-done
			if !errors.Is(err, nats.ErrConnectionClosed) || !errors.Is(err, contract.ErrUnavailable) || ctx.Err() != nil {
				t.Fatalf("Run over a closed connection: %v (context: %v), want an error matching nats.ErrConnectionClosed before the context ends", err, ctx.Err())
			}
		})
	}
}

// TestMaxWaitHasAMinimum: a pull whose MaxWait is a few microseconds
// expires on the server before it is served: on a stream with messages
// waiting, pulls of 1µs got none (and of 100µs about a third), so Run spun
// without handling anything. New refuses a MaxWait below 10ms, naming it.
func TestMaxWaitHasAMinimum(t *testing.T) {
	c := noopConsumer(t)
	for _, tc := range []struct {
		wait time.Duration
		want string // "" when accepted
	}{
		{time.Nanosecond, "Config.MaxWait: must be at least 10ms, got 1ns: a shorter pull expires before the server serves it"},
		{time.Microsecond, "Config.MaxWait: must be at least 10ms, got 1µs: a shorter pull expires before the server serves it"},
		{10*time.Millisecond - 1, "Config.MaxWait: must be at least 10ms, got 9.999999ms: a shorter pull expires before the server serves it"},
		{10 * time.Millisecond, ""},
		{0, ""}, // the default, 1s
	} {
		expectNew(t, fmt.Sprintf("MaxWait %s", tc.wait), jetstream.Config{Pull: fakePull{}, Consumer: c, MaxWait: tc.wait}, tc.want)
	}
}

// TestShutdownHandsBackEachMessageOnce: the rest of the batch handed back
// on shutdown is not redelivered into the same pull, still open for the
// rest of its batch, and handed back again, over and over: each time
// JetStream counts a delivery, so the event's attempt count jumped by up
// to Batch (its next transient failure dead-lettered it as past
// MaxAttempts, and a MaxDeliver drops it silently).
func TestShutdownHandsBackEachMessageOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, streamName, subj := stream(t)
	for i := 1; i <= 2; i++ {
		e := contract.Event{ID: fmt.Sprint("e", i), Source: "/ledger", SpecVersion: "1.0", Type: "t.v1", Subject: fmt.Sprint("acct-", i), Sequence: 1}
		if _, err := jetstream.Publish(ctx, j, subj+".events", &e); err != nil {
			t.Fatal(err)
		}
	}
	pull := pullConsumer(t, j, streamName, 5*time.Minute)
	runCtx, stop := context.WithCancel(ctx)
	c, err := consumer.New(consumer.Config{Handler: func(context.Context, *contract.Event) error {
		stop() // the shutdown begins while the first event is handled
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, Batch: 50, MaxWait: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(runCtx); err != nil {
		t.Fatal(err)
	}
	batch, err := pull.Fetch(1, js.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for msg := range batch.Messages() {
		n++
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.NumDelivered != 2 {
			t.Errorf("the event handed back on shutdown comes with %d deliveries, want 2", md.NumDelivered)
		}
		_ = msg.Ack()
	}
	if n != 1 {
		t.Fatalf("%d messages redelivered, want 1 (%v)", n, batch.Error())
	}
}
