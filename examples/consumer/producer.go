package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// The producer side of the example: payment events as a payment service
// emits them, then what an at-least-once broker and a careless producer do
// to them on the way to the consumer.

// Source is the CloudEvents source of every generated event.
const Source = "/payments/gateway"

// Event types, one per payment transition.
const (
	TypeAuthorized = "dev.sadpath.payment.authorized.v1"
	TypeCaptured   = "dev.sadpath.payment.captured.v1"
	TypeRefunded   = "dev.sadpath.payment.refunded.v1"
)

// PaymentData is the data of every payment event.
type PaymentData struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// Kind says how a delivery came to be in the stream.
type Kind uint8

const (
	Original    Kind = iota + 1 // the event as produced, delivered once
	Duplicate                   // the same bytes again: a broker redelivery or a producer resend
	Republished                 // the same event under a new id: a producer that retried with a fresh id
	Malformed                   // bytes that are not a valid, orderable event
)

// Item is one delivery the broker will hand to the consumer.
type Item struct {
	Kind  Kind
	Data  []byte          // the CloudEvents JSON
	Event *contract.Event // nil for Malformed
}

// Workload is what the producer generated and how the broker mangled it.
type Workload struct {
	// Events are the valid events, each subject's in sequence order: the
	// in-order application the projection must end equal to.
	Events []contract.Event
	// Items are the deliveries in broker order: shuffled, with duplicates,
	// republished copies and malformed events mixed in.
	Items []Item
	// Counts of each kind of item.
	Duplicates, Republished, Malformed int
}

// epoch is the time of the first event: fixed, so a seed always produces the
// same bytes.
var epoch = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// Produce generates events payment events over subjects payments (each
// starting with an authorization, then captures and refunds that keep the
// payment consistent when applied in order), and the broker's version of
// them: shuffled, every event delivered twice with probability dupRate,
// republished under a new id with probability republishRate, and three
// malformed deliveries (truncated JSON, a missing id, no sequence).
// The same arguments always produce the same workload.
func Produce(events, subjects int, dupRate, republishRate float64, seed uint64) (*Workload, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5ad9a7)) // #nosec G404 -- a reproducible simulation, not security
	w := &Workload{}
	perSubject := make([]int, subjects)
	for i := range events {
		perSubject[i%subjects]++
	}
	for s := range subjects {
		subject := fmt.Sprintf("pay_%04d", s+1)
		correlation := fmt.Sprintf("corr-%016x", rng.Uint64())
		var authorized, captured, refunded int64
		for seq := 1; seq <= perSubject[s]; seq++ {
			var typ string
			var amount int64
			switch {
			case seq == 1:
				typ, amount = TypeAuthorized, 1000+rng.Int64N(99_000)
				authorized = amount
			case captured-refunded > 0 && rng.IntN(6) == 0:
				typ, amount = TypeRefunded, 1+rng.Int64N((captured-refunded+1)/2)
				refunded += amount
			case captured < authorized:
				typ, amount = TypeCaptured, 1+rng.Int64N((authorized-captured+2)/3)
				captured += amount
			default:
				// Fully captured and nothing left to refund: a zero-amount
				// capture still moves the version (a status update).
				typ, amount = TypeCaptured, 0
			}
			data, err := json.Marshal(PaymentData{AmountMinor: amount, Currency: "EUR"})
			if err != nil {
				return nil, err
			}
			w.Events = append(w.Events, contract.Event{
				ID:            fmt.Sprintf("evt_%016x", rng.Uint64()),
				Source:        Source,
				SpecVersion:   contract.SpecVersion,
				Type:          typ,
				Time:          epoch.Add(time.Duration(seq) * time.Minute),
				Subject:       subject,
				Sequence:      uint64(seq),
				CorrelationID: correlation,
				Data:          data,
			})
		}
	}
	for i := range w.Events {
		ev := &w.Events[i]
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		w.Items = append(w.Items, Item{Kind: Original, Data: b, Event: ev})
		if rng.Float64() < dupRate {
			w.Items = append(w.Items, Item{Kind: Duplicate, Data: b, Event: ev})
			w.Duplicates++
		}
		if rng.Float64() < republishRate {
			again := *ev
			again.ID = fmt.Sprintf("evt_%016x", rng.Uint64())
			rb, err := json.Marshal(&again)
			if err != nil {
				return nil, err
			}
			w.Items = append(w.Items, Item{Kind: Republished, Data: rb, Event: &again})
			w.Republished++
		}
	}
	for _, b := range malformed() {
		w.Items = append(w.Items, Item{Kind: Malformed, Data: b})
		w.Malformed++
	}
	rng.Shuffle(len(w.Items), func(i, j int) { w.Items[i], w.Items[j] = w.Items[j], w.Items[i] })
	return w, nil
}

// malformed returns the deliveries no consumer can apply: they must be
// dead-lettered at once, never retried.
func malformed() [][]byte {
	return [][]byte{
		// Truncated JSON: a producer that crashed mid-write.
		[]byte(`{"specversion":"1.0","id":"evt_truncated","source":"/payments/gateway","type":"dev.sadpath.payment.captured.v1","subject":"pay_0001","sequ`),
		// Valid JSON, no id: not a CloudEvent.
		[]byte(`{"specversion":"1.0","source":"/payments/gateway","type":"dev.sadpath.payment.captured.v1","subject":"pay_0001","sequence":2,"data":{"amount_minor":100,"currency":"EUR"}}`),
		// A valid CloudEvent without a sequence: it cannot be ordered.
		[]byte(`{"specversion":"1.0","id":"evt_unordered","source":"/payments/gateway","type":"dev.sadpath.payment.captured.v1","subject":"pay_0001","data":{"amount_minor":100,"currency":"EUR"}}`),
	}
}
