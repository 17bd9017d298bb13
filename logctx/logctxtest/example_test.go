package logctxtest_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/logctx/logctxtest"
)

// A test asserts on the decision the code under test logged, with its
// coordinates, without parsing log lines.
func ExampleNewLogger() {
	log, rec := logctxtest.NewLogger()

	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	logctx.Decision(ctx, log, slog.LevelInfo, "replayed stored response", "key already completed")

	d := rec.Decisions()[0]
	fmt.Println(d.Message, "|", d.String(logctx.KeyReason), "|", d.String(logctx.KeyCorrelationID))
	// Output:
	// replayed stored response | key already completed | req-1
}
