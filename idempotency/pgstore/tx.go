package pgstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/internal/owner"
	"github.com/sadpath/sadpath/logctx"
)

// cleanupTimeout bounds the rollback and release DoTx runs after a failure,
// on a context detached from the caller's (which may be the reason for the
// failure).
const cleanupTimeout = 5 * time.Second

// DoTx runs fn at most once per key with exactly-once effects in PostgreSQL:
// fn's writes through tx and the completed idempotency record commit in one
// transaction.
//
// key.Key must not be empty, as for idempotency.Do: DoTx returns an error
// matching idempotency.ErrKeyInvalid (not retryable) without calling fn or
// the database.
//
// A DoTx given the context of a running operation holding the same key in
// s — called from inside that operation's function: a Do on an executor
// with Store s, or another DoTx — returns an error matching
// idempotency.ErrNestedCall (not retryable) at once, without calling fn or
// the database: its claim could only find that operation in progress. So
// does an idempotency.Do with the same key and store called inside fn
// (fn's context carries the claim). Calls that are not nested pay two
// ctx.Value lookups for this and for the pool check below.
//
// A DoTx called inside fn with another key runs on another connection and
// commits on its own, before fn's transaction: see "Nesting" in the package
// documentation. When the DoTx calls it is made from hold every
// connection of the pool, it fails at once with ErrNestedPoolExhausted.
//
//  1. DoTx claims key with fingerprint (Config.TxLease, Config.TxRetention),
//     in its own statement. A completed key returns the stored value without
//     calling fn (a replay); a key in progress returns an error matching
//     idempotency.ErrInProgress with the remaining lease as RetryAfter; a
//     key used with another fingerprint returns idempotency.ErrMismatch.
//  2. Having won the claim, DoTx begins a transaction (Config.TxOptions) and
//     calls fn with it.
//  3. In the same transaction it stores fn's value (encoded with
//     encoding/json) as the completed record — a conditional UPDATE that
//     matches only while DoTx's token owns an unexpired lease — and commits.
//
// Whatever stops the work — fn's error, a panic, a canceled context, a
// terminated connection, a statement timeout, the process dying — before
// the commit leaves nothing of fn's writes, and the key becomes claimable
// again (at once when DoTx can release it, else when the lease expires).
// After the commit the key replays fn's value. A stale owner (its lease
// expired and another caller claimed the key) cannot commit: its UPDATE
// matches no row, DoTx rolls back and returns idempotency.ErrLeaseLost.
// Under REPEATABLE READ or SERIALIZABLE (Config.TxOptions) the UPDATE of a
// record claimed again after the transaction's snapshot fails with a
// serialization failure (40001) instead; DoTx then reads the record outside
// the failed transaction and returns idempotency.ErrLeaseLost too when the
// record is gone, belongs to another token or its lease has expired. A
// 40001 on a record still DoTx's own, and every 40001 from fn's statements
// (a conflict on the caller's tables), stays a retryable serialization
// failure.
//
// fn's error is returned after the rollback and release: unchanged when it is
// a *contract.Error or not a database failure ("card declined"), and mapped
// to a contract error like the store's own failures when it is one (a
// statement timeout, a serialization failure, a lost connection, a canceled
// context), still wrapping the pgx error. A panic in fn is re-raised after
// the rollback and release. Failures of the database are contract
// errors as described in the package documentation.
//
// When COMMIT itself fails (the connection is lost, the context canceled)
// the server may or may not have committed. DoTx then reads the record on
// another connection, waiting (up to 5 seconds) for the transaction to end
// on the server: if it committed, DoTx returns fn's value and no error; if
// it did not, the key is released and DoTx returns the mapped failure
// (retryable unless canceled): nothing was done. When it cannot tell (the
// server still holds the transaction open, as behind a network partition,
// or the read fails) it returns a retryable KindTimeout error with code
// "pgstore.commit_unknown" ("it may have succeeded"), wrapping the
// connection error. Retrying is safe in every case because the record
// commits atomically with fn's writes through tx: the retry replays fn's
// value if they committed, answers ErrInProgress while the server still
// holds the transaction (and its lease lasts), and runs fn once otherwise.
// That guarantee covers only fn's writes through tx: an effect of fn
// outside the transaction (a call to a payment gateway, a message sent)
// may have happened whatever DoTx returns.
//
// fn's context carries the claim's fencing token: idempotency.Token returns
// it, DoTx's own also when DoTx runs inside a Do with another key, for fn's
// effects outside tx to pass downstream.
//
// fn must do its writes through tx only, and must not commit or roll it back.
func DoTx[T any](ctx context.Context, s *Store, key idempotency.Key, fingerprint string, fn func(ctx context.Context, tx pgx.Tx) (T, error)) (T, error) {
	const op = "pgstore.dotx"
	var zero T
	if ctx == nil {
		ctx = context.Background() // as idempotency.Do: not a panic
	}
	if key.Key == "" {
		// Claimed, it would be one record shared by every call made
		// without a key: each would replay the first one's value.
		e := *(idempotency.ErrKeyInvalid.(*contract.Error))
		e.Op, e.Detail = op, "the idempotency key is empty (Key.Key)"
		return zero, &e
	}
	if o, ok := ctx.Value(owner.Key{}).(owner.Op); ok && owner.Nested(o, s.id, key.Scope, key.Key) {
		// Its claim could only find that operation in progress: under an
		// enclosing Do's Wait policy, or a retry, it would wait for itself.
		if s.log != nil {
			if level, k := s.logs.Occur(pNested, s.clock.Now(), slog.LevelError); s.log.Enabled(ctx, level) {
				logctx.Decision(ctx, s.log, level, "refused a nested call", "called inside the running operation holding the same key: failing rather than waiting for itself", lograte.Suppressed([]slog.Attr{
					slog.String(logctx.KeyDependency, "postgresql"), slog.String("store_op", op), slog.String("key_hash", keyHash(recordID(key))),
					slog.String(idempotency.KeyHash, shortHash(recordID(key)))}, k)...)
			}
		}
		e := *(idempotency.ErrNestedCall.(*contract.Error))
		e.Op = op
		return zero, &e
	}
	c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: fingerprint, Lease: s.txLease, Retention: s.txRetention})
	if err != nil {
		return zero, err
	}
	switch c.Status {
	case idempotency.Completed:
		var v T
		if err := (idempotency.JSONCodec{}).Unmarshal(c.Result.Body, &v); err != nil {
			return zero, contract.Wrap(contract.KindInternal, op, err).WithCode("pgstore.decode")
		}
		logctx.Decision(ctx, s.log, slog.LevelInfo, "replayed stored result", "key already completed",
			slog.String(logctx.KeyDependency, "postgresql"), slog.String("store_op", op), slog.String("key_hash", keyHash(recordID(key))),
			slog.String(idempotency.KeyHash, shortHash(recordID(key))))
		return v, nil
	case idempotency.InProgress:
		// Retryable, as the executor answers it: the owner may finish or
		// release, or its lease expire. A lease about to end still hints a
		// wait (0 would mean no hint).
		e := *(idempotency.ErrInProgress.(*contract.Error))
		e.Op = op
		return zero, (&e).WithRetryAfter(max(c.LeaseRemaining, time.Millisecond)).WithRetryable(true)
	case idempotency.Mismatch:
		e := *(idempotency.ErrMismatch.(*contract.Error))
		e.Op = op
		return zero, &e
	}
	return runTx(ctx, s, key, c.Token, fn)
}

func runTx[T any](ctx context.Context, s *Store, key idempotency.Key, token uint64, fn func(context.Context, pgx.Tx) (T, error)) (v T, err error) {
	const op = "pgstore.dotx"
	var zero T
	// fn's context: a call made inside fn with the same key and store
	// (idempotency.Do, DoTx) is refused as nested. It also holds the
	// record id, so it costs no allocation of its own.
	oc := &txCtx{Context: ctx, s: s, key: key, token: token}
	defer oc.ended.Store(true) // also on panic
	id := recordIDTo(oc.id[:0], key)
	committed := false
	var tx pgx.Tx
	// Whatever happens before the commit: roll back and release, on a
	// context the caller's cancellation cannot cut short. Release is a
	// conditional update, so it is harmless when the commit did happen.
	defer func() {
		if committed {
			return
		}
		p := recover()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if tx != nil {
			_ = tx.Rollback(cctx)
		}
		if rerr := s.Release(cctx, key, token); rerr != nil && p == nil && err == nil {
			err = rerr
		}
		if p != nil {
			panic(p)
		}
	}()
	tx, err = s.pool.BeginTx(ctx, s.txOptions)
	if err != nil {
		tx = nil
		return zero, s.fail(ctx, op, id, err)
	}
	v, err = fn(oc, tx)
	if err != nil {
		return zero, fnError(ctx, op, err, tx)
	}
	body, err := (idempotency.JSONCodec{}).Marshal(v)
	if err != nil {
		return zero, contract.Wrap(contract.KindInvalid, op, err).WithCode("pgstore.encode")
	}
	enc := encodeResult(idempotency.Result{Body: body})
	if len(enc) > s.maxBytes {
		return zero, contract.New(contract.KindTooLarge, op, "encoded value over Config.MaxResultBytes")
	}
	tag, err := tx.Exec(ctx, s.sqlComplete, id, int64(token), enc)
	if err != nil {
		if serializationFailure(err) && s.lostLease(ctx, key, token) {
			// REPEATABLE READ or SERIALIZABLE: the record changed after
			// the snapshot, and it is no longer ours. A stale owner, as
			// under READ COMMITTED, where the UPDATE matches no row.
			return zero, s.owned(ctx, op, id, 0, nil)
		}
		return zero, s.fail(ctx, op, id, err)
	}
	if tag.RowsAffected() != 1 {
		return zero, s.owned(ctx, op, id, 0, nil)
	}
	if cerr := tx.Commit(ctx); cerr != nil {
		switch s.commitOutcome(ctx, id, token, tx) {
		case commitDone:
			committed = true
			logctx.Decision(ctx, s.log, slog.LevelInfo, "commit confirmed from the record", "connection lost during COMMIT; the record shows it committed",
				slog.String(logctx.KeyDependency, "postgresql"), slog.String("store_op", op), slog.String("key_hash", keyHash(id)),
				slog.String(idempotency.KeyHash, shortHash(id)))
			return v, nil
		case commitUnknown:
			// Nothing to release: the transaction may still commit, and
			// the release would only wait on its lock.
			committed = true
			e := contract.Wrap(contract.KindTimeout, op, cerr).WithCode("pgstore.commit_unknown")
			e.Detail = "the commit may have happened: calling again replays it if it did"
			if s.log != nil {
				s.logFailed(ctx, e.Code, []slog.Attr{slog.String(logctx.KeyDependency, "postgresql"),
					slog.String("store_op", op), slog.String("kind", e.Kind.String()), slog.String("code", e.Code),
					slog.Any("error", cerr), slog.String("key_hash", keyHash(id)), slog.String(idempotency.KeyHash, shortHash(id))})
			}
			return zero, e
		}
		return zero, s.fail(ctx, op, id, cerr)
	}
	committed = true
	s.answered(ctx)
	return v, nil
}

type commitResult int

const (
	commitNotDone commitResult = iota
	commitDone
	commitUnknown
)

// commitOutcome settles a failed COMMIT (lost connection, canceled
// context) from the record, on a fresh connection. The complete UPDATE
// left the record row locked by DoTx's transaction until it ends, so a
// locking read (sqlSettle: SELECT … FOR SHARE) returns only once that
// transaction has committed or rolled back, and then returns the row's
// latest version: completed under token means it committed, anything else
// that it did not (and now never will). A transaction the server still
// holds open (it has not noticed the client is gone) keeps the read
// waiting: after cleanupTimeout the outcome is unknown.
func (s *Store) commitOutcome(ctx context.Context, id []byte, token uint64, tx pgx.Tx) commitResult {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = tx.Rollback(cctx) // pgx has closed the connection already unless the transaction ended
	for attempt := 1; ; attempt++ {
		var state int16
		var tok int64
		err := s.pool.QueryRow(cctx, s.sqlSettle, id).Scan(&state, &tok)
		switch {
		case attempt < maxClaimAttempts && serializationFailure(err):
			continue
		case errors.Is(err, pgx.ErrNoRows):
			// Deleted: a committed record would live for its retention.
			return commitNotDone
		case err != nil:
			return commitUnknown
		case state == 2 && uint64(tok) == token:
			return commitDone
		}
		return commitNotDone
	}
}

// fnError maps the database failures among fn's errors to contract errors
// (see DoTx) and leaves the caller's own errors alone.
//
// A bare io.EOF or io.ErrUnexpectedEOF is not taken for one: fn's own code
// returns them for an empty or truncated document (encoding/json, a
// reader), a permanent error that must not turn into a retryable outage.
// When pgx meets an EOF on the connection it closes it, which
// tx.Conn().IsClosed() sees.
func fnError(ctx context.Context, op string, err error, tx pgx.Tx) error {
	var ce *contract.Error
	if errors.As(err, &ce) {
		return err
	}
	var pe *pgconn.PgError
	var ne net.Error
	if errors.As(err, &pe) || errors.As(err, &ne) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || tx.Conn().IsClosed() {
		return mapError(op, canceledBy(ctx, err))
	}
	return err
}

// lostLease reports whether token no longer owns an unexpired lease on key,
// read outside DoTx's transaction (on the latest committed version, which
// its snapshot cannot see): the record is gone, another owner claimed it,
// or the lease expired. When it cannot tell (the read failed) it reports
// false, and the caller keeps its original error.
func (s *Store) lostLease(ctx context.Context, key idempotency.Key, token uint64) bool {
	rec, err := s.Get(ctx, key)
	if errors.Is(err, idempotency.ErrNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	return rec.Token != token || rec.State != idempotency.StateInProgress || rec.LeaseRemaining <= 0
}

// txCtx is the context of DoTx's fn (an owner.Op): it holds key in s's
// table until DoTx returns, under the claim's fencing token
// (idempotency.Token).
type txCtx struct {
	context.Context
	s     *Store
	key   idempotency.Key
	token uint64
	ended atomic.Bool
	id    [sha256.Size]byte // the record's id (recordIDTo)
}

func (c *txCtx) Value(key any) any {
	if _, ok := key.(owner.Key); ok {
		return c
	}
	return c.Context.Value(key)
}

func (c *txCtx) Parent() context.Context { return c.Context }

func (c *txCtx) Token() (uint64, bool) { return c.token, true }

// Holds reports whether DoTx has not returned and holds (scope, key) in
// store, an owner.StoreID: that of any Store on the same table (see
// StoreIdentity) matches c.s's.
func (c *txCtx) Holds(store any, scope, key string) bool {
	return store == c.s.id && c.key.Scope == scope && c.key.Key == key && !c.ended.Load()
}
