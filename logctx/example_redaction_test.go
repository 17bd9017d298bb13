package logctx_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"

	"github.com/sadpath/sadpath/logctx"
)

// Card holds a card number; its LogValue keeps the number out of logs
// even where the Handler is not used. With the Handler, it is resolved
// only when the record is enabled, then redacted like any other value.
type Card struct {
	Holder string
	Number string
}

func (c Card) LogValue() slog.Value {
	return slog.GroupValue(slog.String("holder", c.Holder), slog.String("number", c.Number))
}

// Secrets never reach the output, whichever handler is wrapped:
// secret keys are replaced, card numbers are masked wherever they appear,
// headers are redacted key by key, and a raw JSON body (an event's data)
// has the members under its secret keys replaced.
func ExampleHandler_redaction() {
	h, _ := logctx.NewHandler(logctx.HandlerConfig{
		Next:       slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: withoutTime}),
		RedactKeys: []string{"x-tenant-key"},
	})
	log := slog.New(h)

	log.InfoContext(context.Background(), "charge 4111 1111 1111 1111 declined",
		slog.String("Authorization", "Bearer eyJhbGciOi"),
		slog.String("db_password", "hunter2"),
		slog.String("X-Tenant-Key", "tk_live_1"),
		slog.Any("card", Card{Holder: "Ann", Number: "4111111111111111"}),
		slog.Any("headers", http.Header{"Cookie": {"sid=abc"}}),
		slog.Any("err", errors.New("acquirer rejected 5555555555554444")),
		slog.Any("data", json.RawMessage(`{"payer":"acct_1","payment":{"api_token":"tok_live_1"}}`)),
	)
	// Output:
	// {"level":"INFO","msg":"charge **** **** **** 1111 declined","Authorization":"[REDACTED]","db_password":"[REDACTED]","X-Tenant-Key":"[REDACTED]","card":{"holder":"Ann","number":"************1111"},"headers":{"Cookie":["[REDACTED]"]},"err":"acquirer rejected ************4444","data":{"payer":"acct_1","payment":{"api_token":"[REDACTED]"}}}
}
