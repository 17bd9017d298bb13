package pgstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// Beginner starts transactions: *pgxpool.Pool and *pgx.Conn both are.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Config configures a State.
type Config struct {
	// DB opens the transactions. Required. Use a pool (*pgxpool.Pool) when
	// several goroutines advance subjects at once: a *pgx.Conn runs one
	// transaction at a time. A nil pointer (a nil *pgxpool.Pool) is
	// refused.
	DB Beginner

	// Table is the table holding one row per subject, optionally
	// schema-qualified ("ordering.sequences"). Names are lower-case
	// identifiers: [a-z_][a-z0-9_]*, of 57 bytes at most: the table of
	// redeliveries beside it (see RedeliveryState) is named after it with
	// "_retry" appended ("ordering.sequences_retry"): do not give another
	// State that name as its Table. Zero means "sadpath_ordering".
	Table string
}

// State is an ordering.State in PostgreSQL: one row per subject with the
// last applied sequence. Advance runs its function inside the transaction
// that locks (SELECT … FOR UPDATE) and updates the subject's row, and offers
// that transaction to the function through Tx, so the caller's writes and
// the new sequence commit together or not at all. Rows of one subject are
// locked for the length of the function: processes sharing the table apply
// a subject's events one at a time and never twice.
//
// A State is safe for concurrent use. Sequences above math.MaxInt64 are
// refused (the column is a bigint): State is an ordering.BoundedState, so
// a Guard refuses such events up front instead of applying or holding them.
// Create one with New; the zero value is not usable.
type State struct {
	db    Beginner
	table string // sanitized, ready to splice into SQL
	retry string // the table of redeliveries, sanitized
	q     queries
}

type queries struct {
	last, lock, insert, update, forget string
	// AdvanceRedelivery and Redelivering
	lockSavepoint, release, savepoint, rollbackTo, touch, updateForget, record, recordUnlocked, due string
}

var (
	_ ordering.BoundedState    = (*State)(nil)
	_ ordering.RedeliveryState = (*State)(nil)
)

// retrySuffix names the table of redeliveries after Config.Table.
const retrySuffix = "_retry"

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// New returns a State configured by cfg, or an error of KindInvalid (code
// "config.invalid") naming the first bad field. It does not touch the
// database: call Migrate to create the table.
func New(cfg Config) (*State, error) {
	bad := func(field, format string, args ...any) error { // named in Detail and in Fields
		return contract.ConfigError("pgstate", field, fmt.Sprintf(format, args...))
	}
	if cfg.DB == nil {
		return nil, bad("Config.DB", "required")
	}
	if v := reflect.ValueOf(cfg.DB); v.Kind() == reflect.Pointer && v.IsNil() {
		// A nil *pgxpool.Pool (pgxpool.New's result when its error was
		// ignored) or *pgx.Conn would panic at the first Advance.
		return nil, bad("Config.DB", "nil %T", cfg.DB)
	}
	name := cfg.Table
	if name == "" {
		name = "sadpath_ordering"
	}
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, bad("Config.Table", "want table or schema.table, got %q", cfg.Table)
	}
	for _, p := range parts {
		if !identRE.MatchString(p) {
			return nil, bad("Config.Table", "%q is not a lower-case identifier [a-z_][a-z0-9_]*", p)
		}
	}
	if n := len(parts[len(parts)-1]); n+len(retrySuffix) > 63 {
		// PostgreSQL would cut the redelivery table's name to 63 bytes:
		// two long names could then share one.
		return nil, bad("Config.Table", "%q is %d bytes long, more than 57: the redelivery table beside it (%q appended) would exceed PostgreSQL's 63",
			parts[len(parts)-1], n, retrySuffix)
	}
	t := pgx.Identifier(parts).Sanitize()
	rparts := append([]string(nil), parts...)
	rparts[len(rparts)-1] += retrySuffix
	r := pgx.Identifier(rparts).Sanitize()
	return &State{db: cfg.DB, table: t, retry: r, q: queries{
		last:   `SELECT last FROM ` + t + ` WHERE subject = $1`,
		lock:   `SELECT last FROM ` + t + ` WHERE subject = $1 FOR UPDATE`,
		insert: `INSERT INTO ` + t + ` (subject, last) VALUES ($1, 0) ON CONFLICT (subject) DO NOTHING`,
		update: `UPDATE ` + t + ` SET last = $2, updated_at = now() WHERE subject = $1`,
		forget: `DELETE FROM ` + t + ` WHERE subject = $1 AND last = 0`,

		// Sent with the simple protocol: two statements, one round trip.
		// The lock names the table of redeliveries (a subquery the
		// planner never runs): a missing one, after an upgrade without
		// Migrate, fails the call here, before fn runs, as a missing
		// table of sequences does, rather than at the update after fn
		// has applied the event, whose caller would take the State's
		// error for fn's.
		lockSavepoint: `SELECT last FROM ` + t + ` WHERE subject = $1 AND NOT EXISTS (SELECT FROM ` + r + ` WHERE false) FOR UPDATE; SAVEPOINT sadpath_ordering_fn`,
		release:       `RELEASE SAVEPOINT sadpath_ordering_fn`,
		savepoint:     `SAVEPOINT sadpath_ordering_fn`,
		rollbackTo:    `ROLLBACK TO SAVEPOINT sadpath_ordering_fn`,
		touch:         `UPDATE ` + t + ` SET updated_at = now() WHERE subject = $1`,
		updateForget: `WITH gone AS (DELETE FROM ` + r + ` WHERE subject = $1 AND seq <= $2)
UPDATE ` + t + ` SET last = $2, updated_at = now() WHERE subject = $1`,
		record: `INSERT INTO ` + r + ` (subject, seq, due) VALUES ($1, $2, $3)
ON CONFLICT (subject, seq) DO UPDATE SET due = GREATEST(` + r + `.due, excluded.due)`,
		recordUnlocked: `INSERT INTO ` + r + ` (subject, seq, due)
SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM ` + t + ` WHERE subject = $1 AND last >= $2)
ON CONFLICT (subject, seq) DO UPDATE SET due = GREATEST(` + r + `.due, excluded.due)`,
		due: `SELECT max(due) FROM ` + r + ` WHERE subject = $1 AND seq > $2 AND seq <= $3`,
	}}, nil
}

// Migrate creates the table, and the table of redeliveries beside it (see
// RedeliveryState), when they do not exist. Subjects are stored as bytea:
// any bytes, NUL included, are a valid subject. It is safe to run
// concurrently from many instances (an advisory lock serializes it) and on
// every start; run it after upgrading from a version without the table of
// redeliveries, which it adds.
func (s *State) Migrate(ctx context.Context) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return pgError(ctx, "pgstate.migrate", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	// CREATE TABLE IF NOT EXISTS is not safe against a concurrent CREATE of
	// the same name: one of two replicas starting together would fail on
	// the catalog's unique index.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sadpath.pgstate.migrate'))`); err != nil {
		return pgError(ctx, "pgstate.migrate", err)
	}
	_, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
	subject    bytea       PRIMARY KEY,
	last       bigint      NOT NULL CHECK (last >= 0),
	updated_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return pgError(ctx, "pgstate.migrate", err)
	}
	_, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.retry+` (
	subject bytea       NOT NULL,
	seq     bigint      NOT NULL CHECK (seq > 0),
	due     timestamptz NOT NULL,
	PRIMARY KEY (subject, seq)
)`)
	if err != nil {
		return pgError(ctx, "pgstate.migrate", err)
	}
	return pgError(ctx, "pgstate.migrate", tx.Commit(ctx))
}

// Last returns the last applied sequence of subject, or 0.
func (s *State) Last(ctx context.Context, subject string) (uint64, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, pgError(ctx, "pgstate.last", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	var last int64
	err = tx.QueryRow(ctx, s.q.last, []byte(subject)).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, pgError(ctx, "pgstate.last", err)
	}
	if last < 0 {
		return 0, negativeLast("pgstate.last", last)
	}
	return uint64(last), nil
}

// negativeLast is the error for a subject's row holding a negative
// sequence: written outside pgstate, in a table without Migrate's CHECK
// (last >= 0). Read as a uint64 it would be near 2^64, and every later event
// of the subject dropped as stale; refused instead, as a failure of the
// State (KindInternal), which a consumer retries and then dead-letters.
func negativeLast(op string, last int64) error {
	return &contract.Error{Kind: contract.KindInternal, Code: "ordering.state_internal", Op: op,
		Detail: fmt.Sprintf("the subject's stored sequence is negative (%d): the row was written outside pgstate", last)}
}

// MaxSequence implements ordering.BoundedState: math.MaxInt64, the largest
// bigint. Advance refuses a greater sequence with an error of KindInvalid
// (code "ordering.sequence_range").
func (s *State) MaxSequence() uint64 { return math.MaxInt64 }

type txKey struct{}

// Tx returns the transaction of the Advance call whose function received
// ctx. Write the effect of an event through it to commit the effect and
// the sequence atomically. It reports false outside such a function.
func Tx(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}

// Advance implements ordering.State: in one transaction it locks subject's
// row (creating it at 0), calls fn with the last applied sequence and a
// context carrying the transaction (see Tx), records the sequence fn
// returns when it is greater, and commits. A row it created is not kept
// when nothing was recorded in it (fn returned 0: a gap decided on a new
// subject), so subjects never applied leave no row. When fn fails,
// everything is rolled back, fn's writes included, and fn's error is
// returned unchanged.
//
// When the commit itself fails the outcome is unknown to the caller only in
// the usual PostgreSQL sense (a connection lost during COMMIT); the error is
// KindUnavailable and a redelivery finds either both the effect and the
// sequence, or neither.
func (s *State) Advance(ctx context.Context, subject string, fn func(ctx context.Context, last uint64) (uint64, error)) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return pgError(ctx, "pgstate.advance", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	key := []byte(subject)
	var last int64
	inserted := false // this transaction created the subject's row
	err = tx.QueryRow(ctx, s.q.lock, key).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		tag, ierr := tx.Exec(ctx, s.q.insert, key)
		if ierr != nil {
			return pgError(ctx, "pgstate.advance", ierr)
		}
		inserted = tag.RowsAffected() == 1
		err = tx.QueryRow(ctx, s.q.lock, key).Scan(&last)
	}
	if err != nil {
		return pgError(ctx, "pgstate.advance", err)
	}
	if last < 0 {
		return negativeLast("pgstate.advance", last)
	}
	next, err := fn(context.WithValue(ctx, txKey{}, tx), uint64(last))
	if err != nil {
		return err
	}
	if next > uint64(last) {
		if next > math.MaxInt64 {
			return &contract.Error{Kind: contract.KindInvalid, Code: "ordering.sequence_range", Op: "pgstate.advance",
				Detail: fmt.Sprintf("sequence %d is above the stored range (max %d)", next, int64(math.MaxInt64))}
		}
		if _, err := tx.Exec(ctx, s.q.update, key, int64(next)); err != nil {
			return pgError(ctx, "pgstate.advance", err)
		}
	} else if inserted && last == 0 {
		// Nothing recorded for a subject the table did not know (a gap
		// decided, say): its row would read 0, as no row does. Dropped, so
		// that subjects never applied (a producer inventing them) do not
		// grow the table; fn's own writes through Tx still commit.
		if _, err := tx.Exec(ctx, s.q.forget, key); err != nil {
			return pgError(ctx, "pgstate.advance", err)
		}
	}
	return pgError(ctx, "pgstate.advance", tx.Commit(ctx))
}

// AdvanceRedelivery implements ordering.RedeliveryState: Advance (same
// transaction, row lock, Tx on fn's context, errors) with a savepoint set
// right after the row lock, in the same round trip, and the table of
// redeliveries beside the subjects' (Config.Table with "_retry" appended).
// When fn fails and returns a Redelivery above the last applied sequence,
// the transaction rolls back to the savepoint — fn's writes are undone,
// the row stays locked — records the Redelivery, touches the row and
// commits: a process waiting for the row (a timeout skip) finds the
// Redelivery when it gets it. Recording is best effort: when it fails too
// (the connection lost with fn's failure), fn's error is returned all the
// same, and the transaction is rolled back. A subject's redeliveries at or
// below the sequence it stores are deleted with that update; due reads the
// table of redeliveries in the transaction. A subject the table did not
// know keeps its row, at 0, when fn fails and a Redelivery is recorded.
//
// The Guard calls it, instead of Advance, only under GapHold with
// TimeoutSkip: the savepoint is a subtransaction, whose cost the other
// configurations do not pay. A missing table of redeliveries (Migrate not
// run since the upgrade that added it) fails it with the row lock, before
// fn runs.
func (s *State) AdvanceRedelivery(ctx context.Context, subject string, fn ordering.RedeliveryFunc) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return pgError(ctx, "pgstate.advance", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	key := []byte(subject)
	var last int64
	inserted := false // this transaction created the subject's row
	err = tx.QueryRow(ctx, s.q.lockSavepoint, pgx.QueryExecModeSimpleProtocol, key).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		// Created outside the savepoint (released, then set again after
		// the row): rolling back to it must keep the row and its lock,
		// which a process waiting to create the row waits for.
		last, inserted, err = s.createSavepoint(ctx, tx, key)
	}
	if err != nil {
		return pgError(ctx, "pgstate.advance", err)
	}
	if last < 0 {
		return negativeLast("pgstate.advance", last)
	}
	due := func(ctx context.Context, to uint64) (time.Time, error) {
		var at *time.Time
		if err := tx.QueryRow(ctx, s.q.due, key, last, int64(min(to, math.MaxInt64))).Scan(&at); err != nil {
			return time.Time{}, pgError(ctx, "pgstate.due", err)
		}
		if at == nil {
			return time.Time{}, nil
		}
		return *at, nil
	}
	next, r, err := fn(context.WithValue(ctx, txKey{}, tx), uint64(last), due)
	if err != nil {
		if r.Sequence > uint64(last) && r.Sequence <= math.MaxInt64 {
			// Recorded even when ctx ended (the apply may have failed
			// for that): the event is redelivered all the same.
			// The rollback alone first: fn may have left the transaction
			// aborted, where nothing else can even be prepared.
			wctx := context.WithoutCancel(ctx)
			if _, rerr := tx.Exec(wctx, s.q.rollbackTo); rerr != nil {
				return err
			}
			b := &pgx.Batch{}
			b.Queue(s.q.record, key, int64(r.Sequence), ceilMicro(r.At))
			// Touched so that a process waiting for the row in a
			// REPEATABLE READ transaction, whose snapshot cannot see the
			// Redelivery, fails to serialize rather than skip it.
			b.Queue(s.q.touch, key)
			if tx.SendBatch(wctx, b).Close() == nil {
				_ = tx.Commit(wctx) // best effort: fn's error is the answer
			}
		}
		return err
	}
	stored := uint64(last)
	if next > stored {
		if next > math.MaxInt64 {
			return &contract.Error{Kind: contract.KindInvalid, Code: "ordering.sequence_range", Op: "pgstate.advance",
				Detail: fmt.Sprintf("sequence %d is above the stored range (max %d)", next, int64(math.MaxInt64))}
		}
		if _, err := tx.Exec(ctx, s.q.updateForget, key, int64(next)); err != nil {
			return pgError(ctx, "pgstate.advance", err)
		}
		stored = next
	} else if inserted && last == 0 && r.Sequence == 0 {
		// As Advance: subjects never applied leave no row.
		if _, err := tx.Exec(ctx, s.q.forget, key); err != nil {
			return pgError(ctx, "pgstate.advance", err)
		}
	}
	if r.Sequence > stored && r.Sequence <= math.MaxInt64 {
		if _, err := tx.Exec(ctx, s.q.record, key, int64(r.Sequence), ceilMicro(r.At)); err != nil {
			return pgError(ctx, "pgstate.advance", err)
		}
	}
	return pgError(ctx, "pgstate.advance", tx.Commit(ctx))
}

// createSavepoint creates key's row when it does not exist, outside the
// savepoint set by lockSavepoint (released first), locks it and sets the
// savepoint again, in one round trip. inserted reports that it created the
// row.
func (s *State) createSavepoint(ctx context.Context, tx pgx.Tx, key []byte) (last int64, inserted bool, err error) {
	b := &pgx.Batch{}
	b.Queue(s.q.release)
	b.Queue(s.q.insert, key)
	b.Queue(s.q.lock, key)
	b.Queue(s.q.savepoint)
	br := tx.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err = br.Exec(); err != nil {
		return 0, false, err
	}
	var tag pgconn.CommandTag
	if tag, err = br.Exec(); err != nil {
		return 0, false, err
	}
	if err = br.QueryRow().Scan(&last); err != nil {
		return 0, false, err // no row: inserted and locked in this transaction, it cannot be
	}
	_, err = br.Exec()
	return last, tag.RowsAffected() == 1, err
}

// Redelivering implements ordering.RedeliveryState: it records r in the
// table of redeliveries, in a transaction of its own that does not lock
// the subject's row, unless the subject's last applied sequence (read
// without waiting for its lock) is r.Sequence or more. A sequence above
// math.MaxInt64 is refused with KindInvalid (code
// "ordering.sequence_range"); a zero one records nothing.
func (s *State) Redelivering(ctx context.Context, subject string, r ordering.Redelivery) error {
	if r.Sequence == 0 {
		return nil
	}
	if r.Sequence > math.MaxInt64 {
		return &contract.Error{Kind: contract.KindInvalid, Code: "ordering.sequence_range", Op: "pgstate.redelivering",
			Detail: fmt.Sprintf("sequence %d is above the stored range (max %d)", r.Sequence, int64(math.MaxInt64))}
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return pgError(ctx, "pgstate.redelivering", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if _, err := tx.Exec(ctx, s.q.recordUnlocked, []byte(subject), int64(r.Sequence), ceilMicro(r.At)); err != nil {
		return pgError(ctx, "pgstate.redelivering", err)
	}
	return pgError(ctx, "pgstate.redelivering", tx.Commit(ctx))
}

// ceilMicro rounds t up to the microsecond, timestamptz's precision: a
// redelivery is never recorded as due earlier than it is.
func ceilMicro(t time.Time) time.Time {
	if c := t.Truncate(time.Microsecond); !c.Equal(t) {
		return c.Add(time.Microsecond)
	}
	return t
}

// pgError turns a driver error into a contract error: context errors keep
// their kind; a failed connection attempt is KindUnavailable, whatever the
// server answered (nothing ran), and so is a closed pool's refusal
// (puddle.ErrClosedPool, which pgxpool returns unwrapped); server errors
// are classified by SQLSTATE
// (pgKind); other connection failures are KindUnavailable; anything else
// is KindInternal. The cause stays wrapped. A statement the server canceled
// (57014) once ctx is canceled is the context's cancellation, KindCanceled
// matching context.Canceled: a pool whose connections answer a canceled
// context with a cancel request to the server
// (pgconn.CancelRequestContextWatcherHandler) gets the server's error
// instead of ctx.Err(), which is no statement timeout.
func pgError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *contract.Error
	if errors.As(err, &ce) {
		return err
	}
	var pe *pgconn.PgError
	if errors.Is(ctx.Err(), context.Canceled) && errors.As(err, &pe) && pe.Code == "57014" {
		err = fmt.Errorf("%w: %w", context.Canceled, err)
	}
	kind := contract.KindOf(err) // timeout / canceled from the context
	if kind == contract.KindInternal {
		switch {
		case errors.As(err, new(*pgconn.ConnectError)):
			// Checked before the PgError a refusal wraps (FATAL 53300 too
			// many connections, 57P03 starting up, 28P01 a password
			// rotated under us…): no transaction began and the event is
			// not at fault, so the caller retries it rather than give it
			// up while the database is unreachable.
			kind = contract.KindUnavailable
		case errors.Is(err, puddle.ErrClosedPool):
			// A *pgxpool.Pool closed under a running consumer (a shutdown
			// closing the database first) refuses every transaction: nothing
			// ran and the event is not at fault; another instance, or this
			// one restarted, handles its redelivery.
			kind = contract.KindUnavailable
		case errors.As(err, &pe) && pe.Code == "54000":
			// program_limit_exceeded: the only value of unbounded size
			// pgstate stores is the subject, too long for the primary
			// key's index (about 2.7 kB). No redelivery can record it: the
			// event's fault, refused as ordering.ErrInvalidEvent (which a
			// consumer dead-letters at once, not after MaxAttempts).
			return &contract.Error{Kind: contract.KindInvalid, Code: "ordering.invalid_event", Op: op,
				Detail: "the subject is too long for the table's index", Cause: err}
		case errors.As(err, &pe):
			kind = pgKind(pe.Code)
		case pgconn.SafeToRetry(err), isConnErr(err):
			kind = contract.KindUnavailable
		}
	}
	return &contract.Error{Kind: kind, Code: "ordering.state_" + kind.String(), Op: op, Cause: err}
}

// pgKind classifies a server error by SQLSTATE. The list mirrors
// classifyPg in idempotency/pgstore (errors.go), which pgstate does not
// import: keep the two in step. One decision differs: lock_timeout (55P03)
// is KindUnavailable here, not KindTimeout, because the only lock pgstate
// waits for is the subject's row, taken before the ApplyFunc runs, so
// nothing ran.
func pgKind(code string) contract.Kind {
	switch code {
	case "57014", // query_canceled: statement_timeout
		"25P04": // transaction_timeout (PostgreSQL 17): the session ended, the transaction rolled back
		return contract.KindTimeout
	case "55P03", // lock_not_available: lock_timeout on the subject's row
		"40001", // serialization_failure
		"40P01", // deadlock_detected
		"57P01", // admin_shutdown (also pg_terminate_backend)
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: starting up, shutting down, recovering
		"57P05", // idle_session_timeout
		"25P03", // idle_in_transaction_session_timeout
		"25006": // read_only_sql_transaction: a standby, or a primary demoted by a failover
		return contract.KindUnavailable
	}
	switch {
	case strings.HasPrefix(code, "08"): // connection exception
		return contract.KindUnavailable
	case strings.HasPrefix(code, "53"): // insufficient resources: too many connections, out of memory, disk full
		return contract.KindUnavailable
	}
	return contract.KindInternal
}

// isConnErr reports a connection lost on the way; as in pgstore, every I/O
// error counts. The transaction is gone: rolled back, or, when COMMIT was
// under way, committed or not, which a redelivery finds out (see Advance).
func isConnErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgx.ErrTxClosed) || strings.Contains(err.Error(), "conn closed")
}
