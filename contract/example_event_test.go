package contract_test

import (
	"encoding/json"
	"fmt"

	"github.com/sadpath/sadpath/contract"
)

// DecodeEvent reads the CloudEvents JSON format strictly and validates it;
// (source, id) is the identity for deduplication, sequence the per-subject
// order.
func ExampleDecodeEvent() {
	in := []byte(`{
		"specversion": "1.0",
		"id": "evt_81",
		"source": "/psp/acme",
		"type": "com.example.payment.captured.v1",
		"subject": "payment/pay_1",
		"time": "2026-11-25T06:00:00Z",
		"sequence": 3,
		"region": "eu1",
		"data": {"amount_minor": 1250, "currency": "EUR"}
	}`)
	ev, err := contract.DecodeEvent(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.DedupKey(), ev.Subject, ev.Sequence)
	fmt.Println(ev.DataContentType, ev.Extensions["region"], string(ev.Data))

	out, _ := json.Marshal(ev)
	fmt.Println(string(out))
	// Output:
	// "/psp/acme"/"evt_81" payment/pay_1 3
	// application/json eu1 {"amount_minor": 1250, "currency": "EUR"}
	// {"specversion":"1.0","id":"evt_81","source":"/psp/acme","type":"com.example.payment.captured.v1","subject":"payment/pay_1","time":"2026-11-25T06:00:00Z","datacontenttype":"application/json","sequence":3,"region":"eu1","data":{"amount_minor":1250,"currency":"EUR"}}
}

// Every problem of an event is reported at once.
func ExampleDecodeEvent_invalid() {
	_, err := contract.DecodeEvent([]byte(`{"specversion":"0.3","id":"","source":"/psp","type":"t"}`))
	e := contract.As(err)
	fmt.Println(e.Kind, e.Code, e.Detail)
	for _, f := range e.Fields {
		fmt.Println(f.Name, f.Reason)
	}

	_, err = contract.DecodeEvent([]byte(`{"specversion":"1.0","id":"1","source":"/psp","type":"t","sequence":-1,"traceId":"x"}`))
	e = contract.As(err)
	fmt.Println(e.Kind, e.Code)
	for _, f := range e.Fields {
		fmt.Println(f.Name, f.Reason)
	}
	// Output:
	// invalid event.invalid event is invalid: 2 fields are invalid
	// id is required
	// specversion must be "1.0"
	// malformed event.malformed
	// sequence must be an unsigned integer
	// traceId is not a valid attribute name: [a-z0-9]{1,20}
}

// Validate checks an event built in code before it is published.
func ExampleEvent_Validate() {
	ev := contract.Event{
		ID: "evt_1", Source: "/payments", SpecVersion: contract.SpecVersion,
		Type:       "com.example.payment.created.v1",
		Extensions: map[string]any{"Tenant": "acme"},
	}
	fmt.Println(ev.Validate())
	// Output:
	// invalid (event.invalid): event is invalid: 1 field is invalid
}

// DecodeData reads an event's payload as a consumer should: a field the
// consumer does not know yet is ignored (its producer was upgraded first),
// a repeated one is refused (which value is meant depends on the reader).
func ExampleEvent_DecodeData() {
	type captured struct {
		AmountMinor int64  `json:"amount_minor"`
		Currency    string `json:"currency"`
	}
	ev := contract.Event{Data: []byte(`{"amount_minor":1250,"currency":"EUR","captured_by":"ops"}`)}
	var c captured
	fmt.Println(ev.DecodeData(&c), c.AmountMinor, c.Currency)

	ev.Data = []byte(`{"amount_minor":1,"currency":"EUR","amount_minor":900}`)
	e := contract.As(ev.DecodeData(&c))
	fmt.Println(e.Kind, e.Code, contract.Retryable(e))
	// Output:
	// <nil> 1250 EUR
	// malformed json.duplicate_field false
}
