package contract_test

import (
	"testing"

	"github.com/sadpath/sadpath/contract"
)

// Event.DecodeData is DecodeJSON but for unknown fields, which a consumer
// must tolerate (a producer upgraded before it adds them).
func TestEventDecodeData(t *testing.T) {
	type payload struct {
		Amount int64  `json:"amount"`
		Note   string `json:"note"`
	}
	for _, tc := range []struct {
		name, data string
		code       string // "" for success
		want       payload
	}{
		{"known fields", `{"amount":5,"note":"x"}`, "", payload{Amount: 5, Note: "x"}},
		{"unknown field ignored", `{"amount":5,"added_later":{"a":[1,2]}}`, "", payload{Amount: 5}},
		{"repeated field", `{"amount":5,"amount":500}`, "json.duplicate_field", payload{}},
		{"repeated field in case", `{"amount":5,"AMOUNT":500}`, "json.duplicate_field", payload{}},
		{"repeated in an unknown field", `{"amount":5,"x":{"a":1,"a":2}}`, "json.duplicate_field", payload{}},
		{"wrong type", `{"amount":"5"}`, "json.type", payload{}},
		{"trailing data", `{"amount":5} {}`, "json.trailing_data", payload{}},
		{"not UTF-8", "{\"note\":\"\xff\"}", "json.utf8", payload{}},
		{"no data", ``, "json.empty", payload{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := contract.Event{Data: []byte(tc.data)}
			var got payload
			err := ev.DecodeData(&got)
			if tc.code == "" {
				if err != nil || got != tc.want {
					t.Fatalf("DecodeData = %v, %+v; want nil, %+v", err, got, tc.want)
				}
				return
			}
			e := contract.As(err)
			if e == nil || e.Kind != contract.KindMalformed || e.Code != tc.code || contract.Retryable(err) {
				t.Fatalf("DecodeData = %v; want a permanent KindMalformed error with code %s", err, tc.code)
			}
		})
	}
}
