package idempotency

import (
	"context"
	"net/http"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Key identifies one idempotent operation: the caller Scope (tenant,
// account or user, not a credential that rotates: one scope can never see
// another's records) and the caller's Key.
// Stores must treat both as opaque bytes: any byte may appear in either.
// Do, Dedup and pgstore.DoTx refuse an empty Key (ErrKeyInvalid, or for
// Dedup the code idempotency.message_id_missing); Scope may be empty.
type Key struct {
	Scope string
	Key   string
}

// ClaimRequest asks a Store to claim a key.
type ClaimRequest struct {
	Key         Key
	Fingerprint string        // digest of the payload; a different one on the same key is a mismatch
	Lease       time.Duration // how long the claim is held without renewal; > 0
	Retention   time.Duration // how long the record (and the completed result) is kept; >= Lease
}

// ClaimStatus is the outcome of a claim.
type ClaimStatus uint8

const (
	// Claimed: the caller won the key and holds the lease with Claim.Token.
	Claimed ClaimStatus = iota + 1
	// InProgress: another owner holds an unexpired lease; Claim.LeaseRemaining says for how long.
	InProgress
	// Completed: the operation already completed; Claim.Result is the stored result.
	Completed
	// Mismatch: the key exists with another fingerprint (in progress or completed).
	Mismatch
)

// String returns the status name.
func (s ClaimStatus) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case InProgress:
		return "in_progress"
	case Completed:
		return "completed"
	case Mismatch:
		return "mismatch"
	}
	return "unknown"
}

// Claim is what a Store answers to a claim.
type Claim struct {
	Status         ClaimStatus
	Token          uint64        // fencing token: the caller's when Claimed, the current owner's otherwise
	LeaseRemaining time.Duration // InProgress: time until the owner's lease expires
	Result         *Result       // Completed: the stored result
}

// Result is a stored outcome: an HTTP response (StatusCode, Header, Body) or
// an opaque encoded value (Body only, StatusCode 0). StatusCode is in
// [0, 999]: every Store refuses another with KindInvalid in Complete.
type Result struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// RecordState is the state of a stored record.
type RecordState uint8

const (
	StateInProgress RecordState = iota + 1 // claimed, lease running
	StateCompleted                         // result stored
	StateReleased                          // released after a failure; claimable again, token kept
)

// Record is a stored record as returned by Store.Get.
type Record struct {
	Key            Key
	Fingerprint    string
	State          RecordState
	Token          uint64
	LeaseRemaining time.Duration // StateInProgress only; <= 0 when the lease expired
	Result         *Result       // StateCompleted only
}

// Store keeps idempotency records. Implementations must be safe for
// concurrent use by many goroutines and, for shared stores, by many
// processes. The semantics every Store must honour (idempotency/storetest
// checks them):
//
//   - Claim: if no live record exists (none, released, or in progress with an
//     expired lease) the caller wins, the record becomes in progress with the
//     request's fingerprint and lease, and Token is strictly greater than any
//     token issued before for that key, even when the record that carried
//     it has since expired, been evicted or been deleted: an owner stalled
//     past its record's lifetime must still be fenced off. (MemoryStore
//     keeps a counter per shard; the Redis and PostgreSQL stores start a
//     key's tokens from the server's clock in microseconds, which holds
//     unless that clock steps back by more than the record's lifetime.)
//     Exactly one of many concurrent claimers wins. Otherwise the answer is
//     Mismatch when the fingerprints differ, else InProgress or Completed.
//   - Complete stores the result and keeps it for the claim's Retention, only
//     if token is the current owner's and its lease has not expired;
//     otherwise it returns an error matching ErrLeaseLost and changes nothing.
//   - Release makes the key claimable again (keeping the token counter), with
//     the same owner check.
//   - Renew extends the owner's lease by lease from now, with the same owner check.
//   - Get returns the record, or an error matching ErrNotFound.
//   - Failures of the store itself are *contract.Error of KindUnavailable or
//     KindTimeout (retryable); a canceled context returns promptly with an
//     error matching context.Canceled or KindCanceled.
type Store interface {
	Claim(ctx context.Context, req ClaimRequest) (Claim, error)
	Complete(ctx context.Context, key Key, token uint64, result Result) error
	Release(ctx context.Context, key Key, token uint64) error
	Renew(ctx context.Context, key Key, token uint64, lease time.Duration) error
	Get(ctx context.Context, key Key) (Record, error)
}

// StoreIdentifier is an optional interface of a Store: StoreIdentity names
// the records the store reads and writes, so that two store values with
// the same non-empty identity — two pgstore.Stores on one table, built one
// per handler or on two pools, two redisstore.Stores with one prefix on one
// server and database — are taken as the same store when a call nested in
// an operation is checked for holding that operation's key (ErrNestedCall).
// Two stores on the same records must return the same identity, and two
// stores on different records different ones: a false match refuses a
// legitimate nested call, a missed one makes it meet its own claim (under
// Wait, wait for itself until its context ends). A store without it, or
// returning "", is the same store only as itself (==). It is asked once,
// when an executor (or a consumer) is built, so it must not change.
type StoreIdentifier interface {
	StoreIdentity() string
}

// Errors with identity. They are *contract.Error values: match them with
// errors.Is, which compares Kind and Code.
var (
	// ErrLeaseLost: the caller's token is no longer the current owner's, or its lease expired.
	ErrLeaseLost error = &contract.Error{Kind: contract.KindConflict, Code: "idempotency.lease_lost", Detail: "lease lost"}
	// ErrNotFound: no record for the key.
	ErrNotFound error = &contract.Error{Kind: contract.KindNotFound, Code: "idempotency.not_found", Detail: "no record"}
)
