package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
	"github.com/sadpath/sadpath/ordering"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkReport asserts what every correct run shows.
func checkReport(t *testing.T, r *Report, o Options) {
	t.Helper()
	if !r.OK() {
		t.Fatalf("run not OK:\n%s", strings.Join(r.Problems, "\n"))
	}
	c := r.Counts
	if c.Applied != o.Events {
		t.Errorf("applied %d, want %d", c.Applied, o.Events)
	}
	if c.DeadLettered != 3 || len(r.DeadLetters) != 3 {
		t.Errorf("dead-lettered %d (%v), want the 3 malformed", c.DeadLettered, r.DeadLetters)
	}
	if len(r.Payments) != o.Subjects {
		t.Errorf("%d payments in the projection, want %d", len(r.Payments), o.Subjects)
	}
	for s, p := range r.Payments {
		if p.Version != uint64(o.Events/o.Subjects) && p.Version != uint64(o.Events/o.Subjects+1) {
			t.Errorf("%s: version %d, want about %d events per payment", s, p.Version, o.Events/o.Subjects)
		}
		if p.BalanceMinor() < 0 || p.CapturedMinor > p.AuthorizedMinor {
			t.Errorf("%s: inconsistent payment %v", s, p)
		}
	}
	// Every copy the broker carried was dropped somewhere, or joined a
	// held delivery and was acknowledged with it. In memory mode each term
	// is counted on its own (JoinedHeld from the Hold and Settle results),
	// so the sum can fail; through NATS JoinedHeld is the remainder, which
	// must at least be a possible number of held copies.
	dropped := c.DupByID + c.DupBySeq + c.Stale
	switch {
	case !r.JoinedDerived && c.Acked != c.Applied+dropped+c.JoinedHeld:
		t.Errorf("acked %d != applied %d + dropped %d + joined a held copy %d", c.Acked, c.Applied, dropped, c.JoinedHeld)
	case r.JoinedDerived && (c.JoinedHeld < 0 || c.JoinedHeld > c.GapsHeld):
		t.Errorf("acked %d - applied %d - dropped %d = %d, not a number of the %d held deliveries", c.Acked, c.Applied, dropped, c.JoinedHeld, c.GapsHeld)
	}
	if r.JoinedDerived != (r.Mode == "nats") {
		t.Errorf("%s mode: JoinedDerived %v", r.Mode, r.JoinedDerived)
	}
	if c.Deliveries < r.Stored {
		t.Errorf("%d deliveries for %d stored messages", c.Deliveries, r.Stored)
	}
}

// The in-memory mode ends with the in-order projection for every seed,
// under duplicates, republished copies, full shuffles and injected
// transient failures, with a roomy and with a tiny hold buffer.
func TestMemoryModeSeeds(t *testing.T) {
	cases := []Options{
		{Events: 1000, Subjects: 20, DupRate: 0.2, RepublishRate: 0.02, FailRate: 0.05},
		{Events: 600, Subjects: 7, DupRate: 0.5, RepublishRate: 0.1, FailRate: 0.2},
		{Events: 300, Subjects: 30, DupRate: 1, RepublishRate: 0, FailRate: 0, MaxHeld: 8},
		{Events: 50, Subjects: 1, DupRate: 0, RepublishRate: 0.5, FailRate: 0.3, MaxHeld: 4},
	}
	for i, o := range cases {
		for seed := uint64(1); seed <= 4; seed++ {
			o.Seed = seed*7919 + uint64(i)
			t.Run(fmt.Sprintf("case%d/seed%d", i, o.Seed), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				r, err := RunMemory(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				checkReport(t, r, o)
				c := r.Counts
				if o.DupRate == 1 && c.DupByID+c.DupBySeq+c.JoinedHeld+c.Stale < o.Events {
					t.Errorf("every event was delivered twice, only %d copies dropped", c.DupByID+c.DupBySeq+c.JoinedHeld+c.Stale)
				}
				if o.FailRate > 0 && c.TransientFailures == 0 {
					t.Error("no transient failure retried with fail-rate > 0")
				}
				if c.Acked+c.DeadLettered != r.Stored {
					t.Errorf("acked %d + dead %d, want each of %d messages settled once", c.Acked, c.DeadLettered, r.Stored)
				}
				if o.MaxHeld != 0 && o.MaxHeld < 10 && c.GapsRejected == 0 {
					t.Errorf("hold buffer of %d never full", o.MaxHeld)
				}
			})
		}
	}
}

// A seed always produces the same run.
func TestMemoryModeDeterministic(t *testing.T) {
	o := Options{Events: 400, Subjects: 9, DupRate: 0.3, RepublishRate: 0.05, FailRate: 0.1, Seed: 42}
	a, err := RunMemory(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RunMemory(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Counts != b.Counts || a.SimulatedTime != b.SimulatedTime {
		t.Errorf("same seed, different runs:\n%+v %s\n%+v %s", a.Counts, a.SimulatedTime, b.Counts, b.SimulatedTime)
	}
	o.Seed = 43
	c, err := RunMemory(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Counts == c.Counts {
		t.Error("another seed gave exactly the same run")
	}
}

// The verdict is not a formality: applying the broker's deliveries as they
// come, without the consumer wiring, fails it.
func TestVerifyCatchesABareConsumer(t *testing.T) {
	w, err := Produce(500, 10, 0.2, 0.05, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, err := InOrder(w.Events)
	if err != nil {
		t.Fatal(err)
	}
	if p := want.Verify(want); len(p) != 0 {
		t.Fatalf("the in-order application differs from itself: %v", p)
	}
	bare := NewProjection()
	for _, it := range w.Items {
		if it.Event != nil {
			_ = bare.Apply(it.Event)
		}
	}
	problems := bare.Verify(want)
	if len(problems) == 0 {
		t.Fatal("a bare consumer passed the verdict")
	}
	if !containsAny(problems, "want exactly once") {
		t.Errorf("want double applications reported, got %v", problems)
	}
	// Without copies, the disorder alone is caught.
	w2, err := Produce(500, 10, 0, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	shuffled := NewProjection()
	for _, it := range w2.Items {
		if it.Event != nil {
			_ = shuffled.Apply(it.Event)
		}
	}
	if p := shuffled.Verify(want); !containsAny(p, "applied after") || containsAny(p, "want exactly once") {
		t.Errorf("want only out-of-order applications reported, got %v", p)
	}
	// One event missing is caught too.
	partial, err := InOrder(w.Events[1:])
	if err != nil {
		t.Fatal(err)
	}
	if len(partial.Verify(want)) == 0 {
		t.Error("a projection missing an event passed the verdict")
	}
}

// paymentEvent is an event of subject pay_1 with the given data.
func paymentEvent(t *testing.T, seq uint64, typ string, amount int64, currency string) *contract.Event {
	t.Helper()
	d, err := json.Marshal(PaymentData{AmountMinor: amount, Currency: currency})
	if err != nil {
		t.Fatal(err)
	}
	return &contract.Event{ID: fmt.Sprintf("evt_%d", seq), Source: Source, Type: typ, Subject: "pay_1", Sequence: seq, Data: d}
}

// Bad data is a permanent error (KindInvalid, dead-lettered by the
// consumer), refused before anything changes: the payment, the
// applications counted and the violations are as before the event.
func TestProjectionRejectsBadData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history [][2]int64 // in-order captures (type 0) and refunds (type 1) after an authorization of 1000 EUR
		bad     func(seq uint64) *contract.Event
	}{
		{"negative capture", nil, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeCaptured, -500, "EUR") }},
		{"negative refund", [][2]int64{{0, 500}}, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeRefunded, -1, "EUR") }},
		{"capture in another currency", nil, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeCaptured, 500, "JPY") }},
		{"capture in no currency", nil, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeCaptured, 500, "") }},
		{"capture in an unknown currency", nil, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeCaptured, 500, "XXQ") }},
		{"capture over the amount bound", [][2]int64{{0, 1}}, func(s uint64) *contract.Event {
			return paymentEvent(t, s, TypeCaptured, math.MaxInt64, "EUR")
		}},
		{"capture over authorized", [][2]int64{{0, 600}}, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeCaptured, 401, "EUR") }},
		{"refund over captured", [][2]int64{{0, 600}, {1, 100}}, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeRefunded, 501, "EUR") }},
		{"authorization under captured", [][2]int64{{0, 600}}, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeAuthorized, 599, "EUR") }},
		{"authorization of 0", nil, func(s uint64) *contract.Event { return paymentEvent(t, s, TypeAuthorized, 0, "EUR") }},
		{"unknown type", nil, func(s uint64) *contract.Event { return paymentEvent(t, s, "dev.sadpath.payment.voided.v1", 0, "EUR") }},
		{"not PaymentData", nil, func(s uint64) *contract.Event {
			ev := paymentEvent(t, s, TypeCaptured, 1, "EUR")
			ev.Data = []byte(`{"amount_minor":"1"}`)
			return ev
		}},
		{"repeated field", nil, func(s uint64) *contract.Event {
			// json.Unmarshal would capture 900 where a reader keeping the
			// first value (an audit trail in another language) sees 1.
			ev := paymentEvent(t, s, TypeCaptured, 1, "EUR")
			ev.Data = []byte(`{"amount_minor":1,"currency":"EUR","amount_minor":900}`)
			return ev
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewProjection()
			if err := p.Apply(paymentEvent(t, 1, TypeAuthorized, 1000, "EUR")); err != nil {
				t.Fatal(err)
			}
			seq := uint64(1)
			for _, h := range tc.history {
				seq++
				typ := map[int64]string{0: TypeCaptured, 1: TypeRefunded}[h[0]]
				if err := p.Apply(paymentEvent(t, seq, typ, h[1], "EUR")); err != nil {
					t.Fatalf("history: %v", err)
				}
			}
			before, applied := p.Payments(), p.Applications()
			err := p.Apply(tc.bad(seq + 1))
			if err == nil || contract.KindOf(err) != contract.KindInvalid {
				t.Fatalf("Apply = %v, want a KindInvalid error; payment now %+v", err, p.Payments()["pay_1"])
			}
			if after := p.Payments(); after["pay_1"] != before["pay_1"] || len(after) != len(before) {
				t.Errorf("the rejected event changed the payment: %+v, was %+v", after["pay_1"], before["pay_1"])
			}
			if p.Applications() != applied {
				t.Errorf("the rejected event was counted as applied")
			}
			if _, v := p.evidence(); len(v) != 0 {
				t.Errorf("violations recorded: %v", v)
			}
		})
	}
	// A capture or refund of 0 is a status update, not bad data.
	p := NewProjection()
	for _, ev := range []*contract.Event{
		paymentEvent(t, 1, TypeAuthorized, 1000, "EUR"),
		paymentEvent(t, 2, TypeCaptured, 1000, "EUR"),
		paymentEvent(t, 3, TypeCaptured, 0, "EUR"),
		paymentEvent(t, 4, TypeRefunded, 1000, "EUR"),
		paymentEvent(t, 5, TypeRefunded, 0, "EUR"),
	} {
		if err := p.Apply(ev); err != nil {
			t.Fatalf("sequence %d: %v", ev.Sequence, err)
		}
	}
	if got, want := p.Payments()["pay_1"], (Payment{Status: "refunded", Currency: "EUR", AuthorizedMinor: 1000, CapturedMinor: 1000, RefundedMinor: 1000, Version: 5}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// Out of order the amount rules are only recorded (the state is not the
// in-order one), but a total never overflows: the event that would
// overflow it is refused.
func TestProjectionOutOfOrderNeverOverflows(t *testing.T) {
	p := NewProjection()
	if err := p.Apply(paymentEvent(t, 1, TypeAuthorized, 1000, "EUR")); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for range 1100 { // the same capture delivered again and again, out of order
		err := p.Apply(paymentEvent(t, 5, TypeCaptured, MaxAmountMinor, "EUR"))
		if err != nil {
			if contract.KindOf(err) != contract.KindInvalid {
				t.Fatalf("Apply = %v, want KindInvalid", err)
			}
			refused++
		}
		if c := p.Payments()["pay_1"].CapturedMinor; c < 0 {
			t.Fatalf("captured total overflowed: %d", c)
		}
	}
	if applied := p.Applications() - 1; refused == 0 || applied != 1024 {
		t.Errorf("%d applied, %d refused: want the 1025th to be refused", applied, refused)
	}
	if _, v := p.evidence(); !containsAny(v, "applied after") || !containsAny(v, "over authorized") {
		t.Errorf("want the disorder and the over-capture recorded, got %v", v)
	}
}

// money prints every int64, the most negative included.
func TestMoney(t *testing.T) {
	for in, want := range map[int64]string{
		0: "0.00", 5: "0.05", -5: "-0.05", 123456: "1234.56", -123456: "-1234.56",
		math.MaxInt64: "92233720368547758.07", math.MinInt64: "-92233720368547758.08",
	} {
		if got := money(in); got != want {
			t.Errorf("money(%d) = %q, want %q", in, got, want)
		}
	}
}

// The producer keeps its promises: per-subject sequences from 1, payments
// consistent in order, the counts it reports.
func TestProduce(t *testing.T) {
	w, err := Produce(103, 10, 0.3, 0.1, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Events) != 103 {
		t.Fatalf("%d events, want 103", len(w.Events))
	}
	next := map[string]uint64{}
	for _, ev := range w.Events {
		next[ev.Subject]++
		if ev.Sequence != next[ev.Subject] {
			t.Fatalf("%s: sequence %d, want %d", ev.Subject, ev.Sequence, next[ev.Subject])
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("invalid event: %v", err)
		}
	}
	if len(next) != 10 {
		t.Errorf("%d subjects, want 10", len(next))
	}
	kinds := map[Kind]int{}
	undecodable := 0
	for _, it := range w.Items {
		kinds[it.Kind]++
		_, err := contract.DecodeEvent(it.Data)
		if err != nil && it.Kind != Malformed {
			t.Errorf("kind %d: decode error %v", it.Kind, err)
		}
		if err != nil {
			undecodable++
		}
	}
	if undecodable != 2 { // the third malformed one decodes but has no sequence
		t.Errorf("%d undecodable items, want 2", undecodable)
	}
	if kinds[Original] != 103 || kinds[Duplicate] != w.Duplicates || kinds[Republished] != w.Republished || kinds[Malformed] != 3 {
		t.Errorf("kinds %v, workload says %d dup, %d republished", kinds, w.Duplicates, w.Republished)
	}
	if _, err := InOrder(w.Events); err != nil {
		t.Fatal(err)
	}
	again, _ := Produce(103, 10, 0.3, 0.1, 9)
	for i := range w.Items {
		if !bytes.Equal(w.Items[i].Data, again.Items[i].Data) {
			t.Fatal("same seed, different workload")
		}
	}
}

// Bad options are errors naming the flag, matching contract.ErrInvalid.
func TestOptionsInvalid(t *testing.T) {
	cases := map[string]Options{
		"-events":         {Events: -1},
		"-subjects":       {Events: 10, Subjects: 11},
		"-dup-rate":       {DupRate: 1.5},
		"-republish-rate": {RepublishRate: -0.1},
		"-fail-rate":      {FailRate: 0.9},
		"-stream":         {Stream: "bad.stream"},
		"-timeout":        {Timeout: -time.Second},
		"-max-held":       {MaxHeld: -3},
	}
	for flag, o := range cases {
		_, err := RunMemory(context.Background(), o)
		if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(err.Error(), flag+":") {
			t.Errorf("%s: got %v, want a KindInvalid error naming the flag", flag, err)
		}
		if ce := contract.As(err); ce == nil || ce.Code != "config.invalid" {
			t.Errorf("%s: code of %v, want config.invalid", flag, err)
		}
	}
	huge := Options{Events: maxEvents + 1}
	if _, err := huge.withDefaults(); !errors.Is(err, contract.ErrInvalid) {
		t.Errorf("events over the limit: %v", err)
	}
}

// The command prints the summary, exits 0 on a correct run and 2 on bad
// flags, and logs JSON decisions with coordinates and without event ids.
func TestRunCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-events", "200", "-subjects", "5", "-seed", "11", "-dup-rate", "0.3"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr (tail): %s", code, stdout.String(), tail(stderr.String()))
	}
	for _, want := range []string{"memory broker", "applied       200", "dead-lettered", "OK: the projection equals the in-order application"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	sc := bufio.NewScanner(&stderr)
	sc.Buffer(nil, 1<<20)
	lines, withCorrelation, deadLetters := 0, 0, 0
	for sc.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if rec["decision"] == nil || rec["reason"] == nil {
			t.Errorf("log line without decision and reason: %s", sc.Text())
		}
		if id, _ := rec["correlation_id"].(string); strings.HasPrefix(id, "corr-") {
			withCorrelation++
		}
		if rec["decision"] == "event dead-lettered" {
			deadLetters++
		}
		if strings.Contains(sc.Text(), "evt_") || strings.Contains(sc.Text(), "amount_minor") {
			t.Errorf("log line carries an event id or payload: %s", sc.Text())
		}
	}
	if lines == 0 || withCorrelation == 0 || deadLetters != 3 {
		t.Errorf("%d log lines, %d with the event's correlation id, %d dead-letters (want 3)", lines, withCorrelation, deadLetters)
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"-events", "0x"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag syntax: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"-dup-rate", "3"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-dup-rate") {
		t.Errorf("bad flag value: exit %d, stderr %q", code, tail(stderr.String()))
	}
	if code := run(context.Background(), []string{"extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("stray argument: exit %d, want 2", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code := run(ctx, nil, &stdout, &stderr); code != 2 {
		t.Errorf("canceled run: exit %d, want 2", code)
	}
}

// When the wiring cannot keep its promise — a hold buffer of one and half
// the handler calls failing exhaust Config.MaxAttempts, so events are
// dead-lettered — the verdict says so and the exit status is 1.
func TestRunCommandFailsTheVerdict(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-events", "50", "-subjects", "1", "-dup-rate", "0", "-republish-rate", "0.5",
		"-fail-rate", "0.5", "-max-held", "1", "-seed", "7922", "-log-level", "error"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stdout.String())
	}
	for _, want := range []string{"FAIL: the projection differs", "applied 0 times, want exactly once", "ordering.gap"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// newTestApp wires the example's consumer on in-memory state.
func newTestApp(t testing.TB, o Options) *app {
	t.Helper()
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	state, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(o, appConfig{store: store, state: state, holdTimeout: time.Minute, retryAfter: time.Second, minBackoff: time.Second, maxBackoff: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Whatever bytes arrive, the wired consumer answers with a decision and
// never panics; what it applies passes the projection's checks.
func FuzzDelivery(f *testing.F) {
	w, err := Produce(20, 2, 0, 0, 1)
	if err != nil {
		f.Fatal(err)
	}
	for _, it := range w.Items[:5] {
		f.Add(it.Data)
	}
	for _, b := range malformed() {
		f.Add(b)
	}
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/p","type":"dev.sadpath.payment.captured.v1","subject":"pay_1","sequence":1,"data":{"amount_minor":"NaN"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/p","type":"t","subject":"s","sequence":1,"data":[1,2]}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newTestApp(t, Options{FailRate: 0})
		r := a.c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: 1})
		switch r.Action {
		case consumer.Ack, consumer.Retry, consumer.DeadLetter:
		default:
			t.Fatalf("action %v without Settle", r.Action)
		}
		if r.Action == consumer.DeadLetter && r.Err == nil {
			t.Fatal("dead-lettered without a reason")
		}
		if n := a.proj.Applications(); n > 1 || (n == 1) != (r.Action == consumer.Ack && r.Reason == "applied") {
			t.Fatalf("%d applications for %+v", n, r)
		}
	})
}

// uniqueStream names a stream no other test run uses.
func uniqueStream(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "SADPATH_CONSUMEREX_" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// The same workload through a real NATS JetStream server: real
// publications (with and without Nats-Msg-Id), real NAKs and
// redeliveries, and the same verdict. The stream is removed afterwards.
func TestNATSMode(t *testing.T) {
	url := testenv.NATSURL(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	j, err := js.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueStream(t)
	t.Cleanup(func() { _ = j.DeleteStream(context.Background(), name) })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o := Options{Events: 400, Subjects: 8, DupRate: 0.3, RepublishRate: 0.05, FailRate: 0.1, Seed: 5,
		NATSURL: url, Stream: name, Timeout: 75 * time.Second}
	r, err := RunNATS(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, o)
	c := r.Counts
	if c.ServerDeduped == 0 {
		t.Error("JetStream dropped no duplicate publication (Nats-Msg-Id)")
	}
	if c.DupByID == 0 && c.JoinedHeld == 0 {
		t.Error("no duplicate reached the consumer: the copies published without Nats-Msg-Id were lost?")
	}
	if c.Retried == 0 || c.Redeliveries == 0 {
		t.Errorf("no NAK (%d) or redelivery (%d) with fail-rate 0.1", c.Retried, c.Redeliveries)
	}
	if r.Stored+c.ServerDeduped != r.Produced.Deliveries {
		t.Errorf("stored %d + deduped %d != published %d", r.Stored, c.ServerDeduped, r.Produced.Deliveries)
	}
	if _, err := j.Stream(ctx, name); !errors.Is(err, js.ErrStreamNotFound) {
		t.Errorf("stream %s left behind: %v", name, err)
	}

	// A stream that exists is never reused or deleted.
	if _, err := j.CreateStream(ctx, js.StreamConfig{Name: name, Subjects: []string{name + ".other.>"}, Storage: js.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	_, err = RunNATS(ctx, Options{Events: 10, Subjects: 2, NATSURL: url, Stream: name})
	if !errors.Is(err, contract.ErrConflict) {
		t.Errorf("existing stream: got %v, want a conflict", err)
	}
	if _, err := j.Stream(ctx, name); err != nil {
		t.Errorf("the existing stream was deleted: %v", err)
	}
}

// An unreachable server is a KindUnavailable error, quickly.
func TestNATSModeUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := RunNATS(ctx, Options{Events: 10, Subjects: 1, NATSURL: "nats://127.0.0.1:1"})
	if !errors.Is(err, contract.ErrUnavailable) {
		t.Errorf("got %v, want unavailable", err)
	}
}

// The summary names the NATS server, never its credentials: a URL with a
// user and password (or a token as user) is printed without them.
func TestReportHidesNATSCredentials(t *testing.T) {
	for _, u := range []string{
		"nats://alice:s3cret@127.0.0.1:4222",
		"nats://s3cret@127.0.0.1:4222",
		"nats://127.0.0.1:4222,tls://bob:s3cret@nats.internal:4222",
		"alice:s3cret@127.0.0.1:4222",
		"127.0.0.1:4222",
	} {
		r := &Report{Mode: "nats", Options: Options{NATSURL: u, Stream: DefaultStream}}
		var b bytes.Buffer
		r.Write(&b)
		out := b.String()
		if strings.Contains(out, "s3cret") {
			t.Errorf("-nats %s: the summary prints the credentials:\n%s", u, out)
		}
		if !strings.Contains(out, "127.0.0.1:4222") {
			t.Errorf("-nats %s: the summary no longer names the server:\n%s", u, out)
		}
	}
}

// A -nats URL that does not parse is refused without printing its
// credentials: nats.Connect's error quotes the whole URL.
func TestRunHidesNATSCredentialsInErrors(t *testing.T) {
	for _, u := range []string{
		"nats://alice:s3cret@127.0.0.1:bad",
		"nats://s3cret@127.0.0.1:bad",
		"alice:s3cret@127.0.0.1:bad",
		"nats://127.0.0.1:4222, nats://bob:s3cret@nats.internal:bad",
		"nats://alice:s3\"cret@127.0.0.1:bad",
		// A generated password with '#', '/' or '?' left unescaped: the
		// URL does not parse, and the authority seems to end inside it.
		"nats://alice:s3cret#1@127.0.0.1:4222",
		"nats://alice:s3cret/1@127.0.0.1:4222",
		"nats://alice:s3cret?1@127.0.0.1:4222",
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"-nats", u, "-events", "10", "-subjects", "1"}, &stdout, &stderr)
		if code != 2 {
			t.Errorf("-nats %s: exit %d, want 2; stderr:\n%s", u, code, stderr.String())
		}
		out := stdout.String() + stderr.String()
		if strings.Contains(out, "s3cret") || strings.Contains(out, `s3\"cret`) {
			t.Errorf("-nats %s: the error prints the credentials:\n%s", u, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("-nats %s: the error does not say what it hid:\n%s", u, out)
		}
	}
}
