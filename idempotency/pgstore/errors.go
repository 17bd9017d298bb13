package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sadpath/sadpath/contract"
)

// ErrNestedPoolExhausted: a DoTx, or a Store.Claim (the claim of an
// idempotency.Do or a consumer.Consumer on the Store), was given the
// context of running DoTx calls on the same pool — it was called from
// inside their fn — whose transactions hold every connection of the pool
// (its MaxConns: one each, until their fn returns). It could only wait for
// a connection until its context ended, since they release theirs only
// once it returns; it fails at once instead, without a statement.
// KindInternal, never retryable: every retry from the same place meets the
// same pool. Do the work through the transaction DoTx gives fn; or, when a
// nested DoTx must commit on its own, size the pool for it (see "Nesting"
// in the package documentation).
var ErrNestedPoolExhausted error = &contract.Error{Kind: contract.KindInternal, Code: "pgstore.nested_pool_exhausted",
	Detail: "every connection of the pool is held by the DoTx transactions this call was made from"}

// mapError classifies an error from pgx as a contract error:
//
//   - context canceled: KindCanceled (a statement the server canceled on
//     the context's behalf, 57014, too: see canceledBy);
//   - context deadline, a network timeout, statement_timeout (57014),
//     lock_timeout (55P03) and transaction_timeout (25P04): KindTimeout,
//     retryable — the statement may have run;
//   - serialization failure (40001) and deadlock (40P01): KindUnavailable,
//     retryable — the transaction was rolled back and can run again;
//   - connection loss and server shutdown (class 08, 57P01 as sent by
//     pg_terminate_backend, 57P02, 57P03), lack of resources (class 53),
//     idle-session timeouts (25P03, 57P05) and every I/O error: KindUnavailable;
//   - a write refused by a read-only server (25006
//     read_only_sql_transaction: a standby, or a primary demoted by a
//     failover, that the pool still reaches): KindUnavailable, retryable —
//     the same write succeeds once the pool reaches the new primary;
//   - any other server error (a missing table, a constraint): KindInternal.
//
// The cause stays wrapped: errors.As(err, new(*pgconn.PgError)) still works.
// The caller's context is not known here: see canceledBy.
func mapError(op string, err error) *contract.Error {
	kind, code := contract.KindUnavailable, "pgstore.unavailable"
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		kind, code = contract.KindCanceled, "pgstore.canceled"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err), errors.As(err, &ne) && ne.Timeout():
		kind, code = contract.KindTimeout, "pgstore.timeout"
	case errors.As(err, &pe):
		kind, code = classifyPg(pe.Code)
	case errors.Is(err, errCorrupt):
		kind, code = contract.KindInternal, "pgstore.corrupt"
	}
	return contract.Wrap(kind, op, err).WithCode(code)
}

func classifyPg(code string) (contract.Kind, string) {
	switch code {
	case "57014":
		return contract.KindTimeout, "pgstore.statement_timeout"
	case "55P03":
		return contract.KindTimeout, "pgstore.lock_timeout"
	case "25P04": // PostgreSQL 17's transaction_timeout: the session ended, the transaction rolled back
		return contract.KindTimeout, "pgstore.transaction_timeout"
	case "40001":
		return contract.KindUnavailable, "pgstore.serialization_failure"
	case "40P01":
		return contract.KindUnavailable, "pgstore.deadlock"
	case "57P01", "57P02", "57P03", "57P05", "25P03":
		return contract.KindUnavailable, "pgstore.connection_lost"
	case "25006":
		return contract.KindUnavailable, "pgstore.read_only"
	}
	switch {
	case strings.HasPrefix(code, "08"):
		return contract.KindUnavailable, "pgstore.connection_lost"
	case strings.HasPrefix(code, "53"):
		return contract.KindUnavailable, "pgstore.insufficient_resources"
	}
	return contract.KindInternal, "pgstore.server_error"
}

// canceledBy marks err as the cancellation of ctx when ctx was canceled and
// the server canceled the statement (57014). A pool whose connections
// answer a canceled context with a cancel request to the server
// (pgconn.CancelRequestContextWatcherHandler) gets the server's error
// instead of ctx.Err(), which mapError alone would take for a statement
// timeout.
func canceledBy(ctx context.Context, err error) error {
	var pe *pgconn.PgError
	if errors.Is(ctx.Err(), context.Canceled) && errors.As(err, &pe) && pe.Code == "57014" {
		return fmt.Errorf("%w: %w", context.Canceled, err)
	}
	return err
}
