package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// fn's own errors that merely look like a broken connection — io.EOF from
// decoding an empty document, io.ErrUnexpectedEOF from a truncated one —
// are the caller's, and come back unchanged: they were reported as a
// retryable "pgstore.unavailable" outage, so a retry ran the same doomed
// work again and an HTTP layer answered 503 for a bad request. A database
// connection that really failed is closed by pgx, which DoTx still sees.
func TestDoTxCallersEOFIsNotADatabaseFailure(t *testing.T) {
	e := newTxEnv(t, 10*time.Second)
	ctx := context.Background()
	for i, input := range []string{"", `{"amount":`} {
		k := idempotency.Key{Scope: "tx", Key: "eof-" + string(rune('a'+i))}
		var decodeErr error
		_, err := DoTx(ctx, e.s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
			if _, err := e.insert(ctx, tx, k.Key); err != nil {
				return payment{}, err
			}
			var body struct{ Amount int }
			decodeErr = json.NewDecoder(strings.NewReader(input)).Decode(&body)
			return payment{}, decodeErr
		})
		if !errors.Is(decodeErr, io.EOF) && !errors.Is(decodeErr, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: the decoder said %v; the test wants an EOF", input, decodeErr)
		}
		if err != decodeErr || contract.Retryable(err) {
			t.Errorf("%q: DoTx = %v (retryable %v); want fn's error unchanged", input, err, contract.Retryable(err))
		}
		if n := e.rows(t, k.Key); n != 0 {
			t.Errorf("%q: %d rows written", input, n)
		}
	}
}
