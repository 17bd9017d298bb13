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
	// identifiers: [a-z_][a-z0-9_]*. Zero means "sadpath_ordering".
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
	q     queries
}

type queries struct {
	last, lock, insert, update, forget string
}

var _ ordering.BoundedState = (*State)(nil)

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
	t := pgx.Identifier(parts).Sanitize()
	return &State{db: cfg.DB, table: t, q: queries{
		last:   `SELECT last FROM ` + t + ` WHERE subject = $1`,
		lock:   `SELECT last FROM ` + t + ` WHERE subject = $1 FOR UPDATE`,
		insert: `INSERT INTO ` + t + ` (subject, last) VALUES ($1, 0) ON CONFLICT (subject) DO NOTHING`,
		update: `UPDATE ` + t + ` SET last = $2, updated_at = now() WHERE subject = $1`,
		forget: `DELETE FROM ` + t + ` WHERE subject = $1 AND last = 0`,
	}}, nil
}

// Migrate creates the table when it does not exist. Subjects are stored as
// bytea: any bytes, NUL included, are a valid subject. It is safe to run
// concurrently from many instances (an advisory lock serializes it) and on
// every start.
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
