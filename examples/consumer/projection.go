package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/sadpath/sadpath/contract"
)

// Payment is the projection of one payment: what a read model keeps.
type Payment struct {
	Status          string // authorized, captured, refunded
	Currency        string // of the first event applied; every later one must match
	AuthorizedMinor int64
	CapturedMinor   int64
	RefundedMinor   int64
	Version         uint64 // the sequence of the last applied event
}

// MaxAmountMinor bounds the amount of one event: the largest integer every
// JSON reader keeps exact (2^53 - 1). A larger amount is bad data.
const MaxAmountMinor = 1<<53 - 1

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
	disordered map[string]bool           // subjects that had an event applied out of order
	violations []string
}

// NewProjection returns an empty Projection.
func NewProjection() *Projection {
	return &Projection{payments: map[string]*Payment{}, applied: map[string]map[uint64]int{}, disordered: map[string]bool{}}
}

// Apply applies one event, or returns a permanent error (KindInvalid,
// which the consumer dead-letters) for bad data, before changing anything:
// data that is not PaymentData JSON, an unknown event type, an amount out
// of range (an authorization 1 to MaxAmountMinor; a capture or refund 0 to
// MaxAmountMinor, 0 being a status update), a currency that is not an
// active ISO 4217 code or differs from the payment's, a total that would
// overflow; and, for the payment's next sequence, a capture or refund of a
// payment not authorized, a capture over the authorized amount, a refund
// over the captured amount, an authorization below the captured amount.
//
// An event that is not the payment's next sequence is applied anyway and
// recorded as a violation: the consumer wiring is what must keep that from
// happening, and the verdict says when it did not. From then on the
// payment's state is not the in-order one, so the amount rules that depend
// on the events before (captured within authorized…) are only recorded as
// violations for it too, never refused.
func (p *Projection) Apply(ev *contract.Event) error {
	// A repeated field ({"amount_minor":1,"amount_minor":9000}, which
	// json.Unmarshal reads as 9000 where another reader sees 1) or a wrong
	// type is an invalid event, dead-lettered, never applied; a field the
	// projection does not know yet is ignored (a producer upgraded first).
	var d PaymentData
	if err := ev.DecodeData(&d); err != nil {
		return contract.Wrap(contract.KindInvalid, "projection.apply", err)
	}
	switch ev.Type {
	case TypeAuthorized, TypeCaptured, TypeRefunded:
	default:
		return contract.New(contract.KindInvalid, "projection.apply", "unknown event type").WithCode("payment.unknown_type")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var pay Payment
	if cur := p.payments[ev.Subject]; cur != nil {
		pay = *cur
	}
	inOrder := ev.Sequence == pay.Version+1
	next, broken, err := pay.next(ev.Type, d, inOrder && !p.disordered[ev.Subject])
	if err != nil {
		return err
	}
	if !inOrder {
		p.disordered[ev.Subject] = true
		p.violatef("%s: sequence %d applied after %d", ev.Subject, ev.Sequence, pay.Version)
	}
	if broken != "" {
		p.violatef("%s: %s", ev.Subject, broken)
	}
	next.Version = max(pay.Version, ev.Sequence)
	p.payments[ev.Subject] = &next
	seqs := p.applied[ev.Subject]
	if seqs == nil {
		seqs = map[uint64]int{}
		p.applied[ev.Subject] = seqs
	}
	seqs[ev.Sequence]++
	return nil
}

// next returns the payment after an event of type typ with data d, or a
// KindInvalid error when the event is bad data. The amount rules that
// depend on the events before (captured within authorized, refunded within
// captured) make the event bad data only when pay is the in-order state
// (inOrder); otherwise broken describes the rule it breaks, and the event
// is applied.
func (pay Payment) next(typ string, d PaymentData, inOrder bool) (Payment, string, error) {
	v := contract.NewValidator()
	minAmount := int64(0) // a capture or refund of 0 is a status update
	if typ == TypeAuthorized {
		minAmount = 1
	}
	v.Range("data.amount_minor", d.AmountMinor, minAmount, MaxAmountMinor)
	if v.Currency("data.currency", d.Currency) && pay.Currency != "" {
		v.Check(d.Currency == pay.Currency, "data.currency", "must be the payment's currency, "+pay.Currency)
	}
	if err := v.Err(); err != nil {
		return pay, "", invalid(err)
	}
	next, broken := pay, ""
	next.Currency = d.Currency
	switch typ {
	case TypeAuthorized:
		next.Status, next.AuthorizedMinor = "authorized", d.AmountMinor
		if next.AuthorizedMinor < next.CapturedMinor {
			broken = fmt.Sprintf("authorized %d under captured %d", next.AuthorizedMinor, next.CapturedMinor)
		}
	case TypeCaptured:
		if pay.CapturedMinor > math.MaxInt64-d.AmountMinor {
			v.Add("data.amount_minor", "overflows the captured total")
			break
		}
		next.Status, next.CapturedMinor = "captured", pay.CapturedMinor+d.AmountMinor
		if pay.Status == "" {
			broken = "captured before it was authorized"
		} else if next.CapturedMinor > next.AuthorizedMinor {
			broken = fmt.Sprintf("captured %d over authorized %d", next.CapturedMinor, next.AuthorizedMinor)
		}
	case TypeRefunded:
		if pay.RefundedMinor > math.MaxInt64-d.AmountMinor {
			v.Add("data.amount_minor", "overflows the refunded total")
			break
		}
		next.Status, next.RefundedMinor = "refunded", pay.RefundedMinor+d.AmountMinor
		if pay.Status == "" {
			broken = "refunded before it was authorized"
		} else if next.RefundedMinor > next.CapturedMinor {
			broken = fmt.Sprintf("refunded %d over captured %d", next.RefundedMinor, next.CapturedMinor)
		}
	}
	if inOrder && broken != "" {
		v.Add("data.amount_minor", broken)
	}
	if err := v.Err(); err != nil {
		return pay, "", invalid(err)
	}
	return next, broken, nil
}

// invalid names the projection as the operation of a validation error.
func invalid(err error) error {
	e := contract.As(err)
	e.Op = "projection.apply"
	return e
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

// money formats an amount in minor units with two decimals. The magnitude
// is computed as a uint64, so math.MinInt64 (whose negation does not fit
// an int64) prints right too.
func money(minor int64) string {
	sign, mag := "", uint64(minor)
	if minor < 0 {
		sign, mag = "-", -mag // two's complement: the magnitude of minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, mag/100, mag%100)
}
