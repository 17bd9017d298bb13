package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sadpath/sadpath/contract"
)

// Payment is the projection of one payment: what a read model keeps.
type Payment struct {
	Status          string // authorized, captured, refunded
	AuthorizedMinor int64
	CapturedMinor   int64
	RefundedMinor   int64
	Version         uint64 // the sequence of the last applied event
}

// BalanceMinor is what the payee holds: captured minus refunded.
func (p Payment) BalanceMinor() int64 { return p.CapturedMinor - p.RefundedMinor }

// Projection applies payment events to per-payment state. It also keeps
// the evidence the example's verdict needs: how often each (subject,
// sequence) was applied, and every event applied out of order or breaking
// a payment rule. It is safe for concurrent use.
type Projection struct {
	mu         sync.Mutex
	payments   map[string]*Payment
	applied    map[string]map[uint64]int // subject -> sequence -> applications
	violations []string
}

// NewProjection returns an empty Projection.
func NewProjection() *Projection {
	return &Projection{payments: map[string]*Payment{}, applied: map[string]map[uint64]int{}}
}

// Apply applies one event. An event that is not the payment's next
// sequence is applied anyway and recorded as a violation: the consumer
// wiring is what must keep that from happening, and the verdict says
// when it did not. Bad data is a permanent error (KindInvalid).
func (p *Projection) Apply(ev *contract.Event) error {
	var d PaymentData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return contract.Wrap(contract.KindInvalid, "projection.apply", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pay := p.payments[ev.Subject]
	if pay == nil {
		pay = &Payment{}
		p.payments[ev.Subject] = pay
	}
	if ev.Sequence != pay.Version+1 {
		p.violatef("%s: sequence %d applied after %d", ev.Subject, ev.Sequence, pay.Version)
	}
	switch ev.Type {
	case TypeAuthorized:
		pay.Status, pay.AuthorizedMinor = "authorized", d.AmountMinor
	case TypeCaptured:
		pay.Status = "captured"
		pay.CapturedMinor += d.AmountMinor
		if pay.CapturedMinor > pay.AuthorizedMinor {
			p.violatef("%s: captured %d over authorized %d", ev.Subject, pay.CapturedMinor, pay.AuthorizedMinor)
		}
	case TypeRefunded:
		pay.Status = "refunded"
		pay.RefundedMinor += d.AmountMinor
		if pay.RefundedMinor > pay.CapturedMinor {
			p.violatef("%s: refunded %d over captured %d", ev.Subject, pay.RefundedMinor, pay.CapturedMinor)
		}
	default:
		return contract.New(contract.KindInvalid, "projection.apply", "unknown event type").WithCode("payment.unknown_type")
	}
	pay.Version = max(pay.Version, ev.Sequence)
	seqs := p.applied[ev.Subject]
	if seqs == nil {
		seqs = map[uint64]int{}
		p.applied[ev.Subject] = seqs
	}
	seqs[ev.Sequence]++
	return nil
}

func (p *Projection) violatef(format string, args ...any) {
	if len(p.violations) < 100 {
		p.violations = append(p.violations, fmt.Sprintf(format, args...))
	}
}

// Payments returns a copy of the per-subject state.
func (p *Projection) Payments() map[string]Payment {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Payment, len(p.payments))
	for s, pay := range p.payments {
		out[s] = *pay
	}
	return out
}

// Applications returns how many times events were applied in total.
func (p *Projection) Applications() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, seqs := range p.applied {
		for _, c := range seqs {
			n += c
		}
	}
	return n
}

// InOrder applies events one by one, in the order given, to a new
// Projection: the reference the consumer's result is compared with.
func InOrder(events []contract.Event) (*Projection, error) {
	p := NewProjection()
	for i := range events {
		if err := p.Apply(&events[i]); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Verify compares p with want, the in-order application, and returns every
// difference: a payment whose state differs, an event applied more than
// once or never, and the violations recorded while applying. No problems
// means the consumer applied every event exactly once, in order.
func (p *Projection) Verify(want *Projection) []string {
	got, exp := p.Payments(), want.Payments()
	gotApplied, violations := p.evidence()
	expApplied, _ := want.evidence()
	var problems []string
	for _, s := range slices.Sorted(maps.Keys(exp)) {
		if g, ok := got[s]; !ok {
			problems = append(problems, fmt.Sprintf("%s: missing from the projection", s))
		} else if g != exp[s] {
			problems = append(problems, fmt.Sprintf("%s: got %+v, want %+v", s, g, exp[s]))
		}
	}
	for _, s := range slices.Sorted(maps.Keys(got)) {
		if _, ok := exp[s]; !ok {
			problems = append(problems, fmt.Sprintf("%s: unexpected payment in the projection", s))
		}
	}
	for _, s := range slices.Sorted(maps.Keys(expApplied)) {
		for _, seq := range slices.Sorted(maps.Keys(expApplied[s])) {
			if n := gotApplied[s][seq]; n != 1 {
				problems = append(problems, fmt.Sprintf("%s: sequence %d applied %d times, want exactly once", s, seq, n))
			}
		}
	}
	problems = append(problems, violations...)
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
	}
	return problems
}

// evidence returns copies of the application counts and violations.
func (p *Projection) evidence() (map[string]map[uint64]int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	applied := make(map[string]map[uint64]int, len(p.applied))
	for s, seqs := range p.applied {
		applied[s] = maps.Clone(seqs)
	}
	return applied, slices.Clone(p.violations)
}

// String renders a few payments for the summary.
func (p Payment) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "v%-3d %-10s authorized %8s  captured %8s  refunded %8s  balance %8s",
		p.Version, p.Status, money(p.AuthorizedMinor), money(p.CapturedMinor), money(p.RefundedMinor), money(p.BalanceMinor()))
	return b.String()
}

func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}
