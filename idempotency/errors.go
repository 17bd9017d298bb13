package idempotency

import "github.com/sadpath/sadpath/contract"

// Errors of the executor, the middleware and Dedup. They are *contract.Error
// values: match them with errors.Is (which compares Kind and Code) and read
// the retry-after hint with contract.RetryAfter.
var (
	// ErrInProgress: another owner holds the key's lease. KindConflict,
	// retryable; the returned error carries RetryAfter = the remaining lease.
	ErrInProgress error = &contract.Error{Kind: contract.KindConflict, Code: "idempotency.in_progress", Detail: "a request with this idempotency key is still in progress"}
	// ErrMismatch: the key was used before with another payload
	// (fingerprint). KindPreconditionFailed, never retryable; the middleware
	// answers it with 422 as the IETF draft requires.
	ErrMismatch error = &contract.Error{Kind: contract.KindPreconditionFailed, Code: "idempotency.key_reused", Detail: "this idempotency key was already used with a different request payload"}
	// ErrStoreUnavailable: the store failed and the executor failed closed:
	// the operation did not run. KindUnavailable, retryable.
	ErrStoreUnavailable error = &contract.Error{Kind: contract.KindUnavailable, Code: "idempotency.store_unavailable", Detail: "idempotency store unavailable"}
	// ErrKeyMissing: the request needs an Idempotency-Key header (HTTP 400).
	ErrKeyMissing error = &contract.Error{Kind: contract.KindInvalid, Code: "idempotency.key_missing", Detail: "this request requires an Idempotency-Key header"}
	// ErrKeyInvalid: the Idempotency-Key header is malformed, too long or
	// repeated (HTTP 400), or Do (or pgstore.DoTx) was given a Key whose Key
	// is empty.
	ErrKeyInvalid error = &contract.Error{Kind: contract.KindInvalid, Code: "idempotency.key_invalid", Detail: "the Idempotency-Key header is not a valid key"}
	// ErrNestedCall: Do (or the Middleware, Dedup, pgstore.DoTx, a
	// consumer.Consumer's Handle) was called with the
	// key of an operation that is still running and whose context it was
	// given — from inside that operation's function (or a consumer.Consumer's
	// Handler, under its claim of the event), on the same store —
	// e.g. a handler calling a helper wrapped with the same key. That call
	// could only meet its own claim in progress: under Wait it would wait
	// for itself until its context ended. It fails at once instead, without
	// a store call. KindInternal, never retryable: the calling code is
	// wrong, and every retry would meet the same claim (HTTP 500).
	ErrNestedCall error = &contract.Error{Kind: contract.KindInternal, Code: "idempotency.nested_call", Detail: "called with the idempotency key of the running operation it is part of"}
)

// errFrom returns a fresh copy of a sentinel (so callers may change it)
// with op, retry-after and cause set.
func errFrom(sentinel error, op string, cause error) *contract.Error {
	s := sentinel.(*contract.Error)
	return &contract.Error{Kind: s.Kind, Code: s.Code, Detail: s.Detail, Op: op, Cause: cause}
}
