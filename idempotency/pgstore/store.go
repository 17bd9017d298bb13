package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/internal/resultcodec"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/internal/owner"
	"github.com/sadpath/sadpath/logctx"
)

// Defaults applied to zero Config fields.
const (
	DefaultSchema         = "public"
	DefaultTable          = "sadpath_idempotency"
	DefaultMaxResultBytes = 16 << 20
	DefaultCleanupBatch   = 1000

	// MaxMaxResultBytes is the largest Config.MaxResultBytes: PostgreSQL
	// keeps no field over 1 GB and reads no message over 1 GB, so a larger
	// result could only fail as a database error, not as KindTooLarge (the
	// executor then cannot record that the key ran, and a duplicate runs it
	// again). A MiB is left for the statement's other parameters.
	MaxMaxResultBytes = 1<<30 - 1<<20
)

// Config configures a Store. Zero fields take the documented defaults.
type Config struct {
	// Pool is the connection pool. Required.
	Pool *pgxpool.Pool

	// Schema and Table name the table (lower-case letters, digits and
	// underscores). Defaults DefaultSchema ("public") and DefaultTable
	// ("sadpath_idempotency").
	Schema string
	Table  string

	// MaxResultBytes bounds the encoded size of a completed result;
	// Complete refuses a larger one with a KindTooLarge error. Default
	// DefaultMaxResultBytes (16 MiB); at most MaxMaxResultBytes.
	MaxResultBytes int

	// CleanupBatch is how many expired rows DeleteExpired removes at most
	// when called with limit <= 0. Default DefaultCleanupBatch (1000).
	CleanupBatch int

	// TxLease and TxRetention are the lease and retention of the claims
	// DoTx makes. The lease must outlast the longest transaction DoTx runs:
	// a transaction still running when it expires is rolled back at its end
	// with idempotency.ErrLeaseLost. Defaults idempotency.DefaultLease (30s)
	// and idempotency.DefaultRetention (24h).
	TxLease     time.Duration
	TxRetention time.Duration

	// TxOptions are the options of the transactions DoTx begins (isolation
	// level, …). The zero value is the server's default (READ COMMITTED).
	// IsoLevel must be empty or one of pgx's four levels, DeferrableMode
	// empty or one of pgx's two modes, and AccessMode empty or
	// pgx.ReadWrite: DoTx writes the completed record in the transaction,
	// so in a read-only one every DoTx would fail (with a retryable
	// pgstore.read_only error, as if the server were a standby).
	//
	// BeginQuery, when set, replaces the modes (pgx ignores them), so it
	// must not be combined with them. New refuses a BeginQuery that does
	// not start with BEGIN or START TRANSACTION (fn's writes would commit
	// one by one, outside the transaction of the completed record, and a
	// retried DoTx would repeat them), that mentions READ ONLY or a
	// *read_only setting anywhere outside comments and literals, or that
	// ends the transaction it began (a later statement starting with
	// COMMIT, END, ROLLBACK, ABORT or PREPARE TRANSACTION). CommitQuery
	// must be empty or COMMIT (or END), optionally followed by WORK or
	// TRANSACTION: a statement that does not commit would have DoTx report
	// success for writes that are rolled back when the connection returns
	// to the pool.
	TxOptions pgx.TxOptions

	// Logger receives store failures, refused stale owners and DoTx's
	// decisions; failures, stale owners and nested calls are paced (see
	// Logging in the package documentation). Nil logs nothing. Raw keys
	// are never logged: records are named by their id hash.
	Logger *slog.Logger
}

// Store is an idempotency.Store on PostgreSQL. It is safe for concurrent use
// by many goroutines, and any number of Stores (in any number of
// processes) on the same table share records.
type Store struct {
	pool        *pgxpool.Pool
	schema      string
	table       string
	qualified   string
	maxBytes    int
	batch       int
	txLease     time.Duration
	txRetention time.Duration
	txOptions   pgx.TxOptions
	log         *slog.Logger
	logs        *lograte.Set  // pacing of the failure lines: non-nil with log
	clock       lograte.Clock // times the pacing
	identity    string        // StoreIdentity
	id          any           // owner.StoreID: what nested calls compare

	sqlClaim, sqlComplete, sqlRelease, sqlRenew, sqlGet, sqlDelete, sqlSettle string
}

var (
	_ idempotency.Store           = (*Store)(nil)
	_ idempotency.StoreIdentifier = (*Store)(nil)
)

// New returns a Store configured by cfg, or a KindInvalid error (code
// "config.invalid") naming the first bad field. It does not touch the
// database: call Migrate, or apply the documented schema yourself.
func New(cfg Config) (*Store, error) {
	if cfg.Pool == nil {
		return nil, invalidConfig("Pool", "must not be nil")
	}
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if !validIdent(cfg.Schema) {
		return nil, invalidConfig("Schema", fmt.Sprintf("must be 1-48 of [a-z0-9_], not starting with a digit, got %q", cfg.Schema))
	}
	if !validIdent(cfg.Table) {
		return nil, invalidConfig("Table", fmt.Sprintf("must be 1-48 of [a-z0-9_], not starting with a digit, got %q", cfg.Table))
	}
	var err error
	if cfg.MaxResultBytes, err = positive("MaxResultBytes", cfg.MaxResultBytes, DefaultMaxResultBytes); err != nil {
		return nil, err
	}
	if cfg.MaxResultBytes > MaxMaxResultBytes {
		return nil, invalidConfig("MaxResultBytes", fmt.Sprintf("must be at most %d (PostgreSQL's 1 GB field limit), got %d", MaxMaxResultBytes, cfg.MaxResultBytes))
	}
	if cfg.CleanupBatch, err = positive("CleanupBatch", cfg.CleanupBatch, DefaultCleanupBatch); err != nil {
		return nil, err
	}
	switch {
	case cfg.TxLease == 0:
		cfg.TxLease = idempotency.DefaultLease
	case cfg.TxLease < time.Millisecond:
		return nil, invalidConfig("TxLease", fmt.Sprintf("must be >= 1ms, got %v", cfg.TxLease))
	}
	switch {
	case cfg.TxRetention == 0:
		cfg.TxRetention = max(idempotency.DefaultRetention, cfg.TxLease)
	case cfg.TxRetention < cfg.TxLease:
		return nil, invalidConfig("TxRetention", fmt.Sprintf("must be >= TxLease (%v), got %v", cfg.TxLease, cfg.TxRetention))
	}
	if err := checkTxOptions(cfg.TxOptions); err != nil {
		return nil, err
	}
	s := &Store{
		pool: cfg.Pool, schema: cfg.Schema, table: cfg.Table,
		qualified: pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize(),
		maxBytes:  cfg.MaxResultBytes, batch: cfg.CleanupBatch,
		txLease: cfg.TxLease, txRetention: cfg.TxRetention, txOptions: cfg.TxOptions,
		log: cfg.Logger, clock: lograte.System{},
	}
	if s.log != nil {
		s.logs = lograte.NewSet(numPaced)
	}
	s.identity = identity(cfg.Pool.Config().ConnConfig.Config, cfg.Schema, cfg.Table)
	s.id = owner.StoreID(s, s)
	s.prepareSQL()
	return s, nil
}

// StoreIdentity names the table s uses (idempotency.StoreIdentifier): the
// server's host and port and the database, from the pool's configuration
// (the user's name when it names no database, as the server then does),
// and the schema and table. Stores on the same table through the same
// address and database — one per handler, on one pool or on several —
// have the same identity, and are one store to the check of nested calls
// (idempotency.ErrNestedCall). Stores reaching the table by different
// addresses (a host name and its IP, a pooler and the server) are not
// recognized as one: a call nested across them is not refused and meets
// the enclosing claim as any duplicate does.
func (s *Store) StoreIdentity() string {
	if s == nil {
		return ""
	}
	return s.identity
}

// identity returns StoreIdentity for the table schema.table of the
// database cfg connects to.
func identity(cfg pgconn.Config, schema, table string) string {
	db := cfg.Database
	if db == "" {
		db = cfg.User
	}
	return fmt.Sprintf("postgresql %q port %d database %q table %s.%s", cfg.Host, cfg.Port, db, schema, table)
}

func positive(field string, v, def int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0:
		return 0, invalidConfig(field, fmt.Sprintf("must be >= 0, got %d", v))
	}
	return v, nil
}

func invalidConfig(field, why string) error {
	return contract.New(contract.KindInvalid, "pgstore.New", "Config."+field+": "+why).WithCode("config.invalid")
}

// Every statement reads the server's clock (statement_timestamp(): the
// start of the statement, also inside a long transaction), never the
// caller's. Durations travel as microseconds.
//
// A winning claim's token is the larger of the row's token + 1 and the
// server clock in microseconds since the epoch (clockUS): it grows while the
// row lives and, unlike a counter from 1, does not restart once the row is
// deleted (see the package documentation, Fencing tokens).
func (s *Store) prepareSQL() {
	t := s.qualified
	const us = ` * interval '1 microsecond'`
	const ts = `statement_timestamp()`
	const clockUS = `(extract(epoch FROM ` + ts + `) * 1000000)::bigint`
	// A fresh key is inserted; an existing claimable row (released, lease
	// expired, retention over) is updated; any other row is only read. No
	// branch locks a row it does not change, so duplicates and replays never
	// queue behind each other.
	claimable := `(r.expires_at <= ` + ts + ` OR r.state = 3 OR (r.state = 1 AND r.lease_until <= ` + ts + `))`
	s.sqlClaim = `WITH ins AS (
  INSERT INTO ` + t + ` (id, fingerprint, state, token, lease_until, retention_us, expires_at)
  VALUES ($1::bytea, $2::bytea, 1, ` + clockUS + `, ` + ts + ` + $3::bigint::float8` + us + `, $4::bigint,
          ` + ts + ` + greatest($4::bigint, 2 * $3::bigint)::float8` + us + `)
  ON CONFLICT (id) DO NOTHING
  RETURNING token
), upd AS (
  UPDATE ` + t + ` AS r SET
    fingerprint = $2::bytea, state = 1, token = greatest(r.token + 1, ` + clockUS + `),
    lease_until = ` + ts + ` + $3::bigint::float8` + us + `, retention_us = $4::bigint,
    expires_at = ` + ts + ` + greatest($4::bigint, 2 * $3::bigint)::float8` + us + `, result = NULL
  WHERE r.id = $1::bytea AND ` + claimable + `
  RETURNING r.token
)
SELECT true, token, 0::smallint, 0::bigint, NULL::bytea, NULL::bytea, false FROM ins
UNION ALL
SELECT true, token, 0::smallint, 0::bigint, NULL::bytea, NULL::bytea, false FROM upd
UNION ALL
SELECT false, r.token, r.state,
  coalesce((extract(epoch FROM r.lease_until - ` + ts + `) * 1000000)::bigint, 0),
  r.fingerprint, r.result, ` + claimable + `
FROM ` + t + ` AS r WHERE r.id = $1::bytea AND NOT EXISTS (SELECT 1 FROM ins) AND NOT EXISTS (SELECT 1 FROM upd)`
	owner := ` WHERE id = $1::bytea AND token = $2::bigint AND state = 1 AND lease_until > ` + ts
	s.sqlComplete = `UPDATE ` + t + ` SET state = 2, result = $3::bytea, lease_until = NULL, expires_at = ` + ts + ` + retention_us::float8` + us + owner
	s.sqlRelease = `UPDATE ` + t + ` SET state = 3, lease_until = NULL` + owner
	s.sqlRenew = `UPDATE ` + t + ` SET lease_until = ` + ts + ` + $3::bigint::float8` + us + `, expires_at = greatest(expires_at, ` + ts + ` + 2 * $3::bigint::float8` + us + `)` + owner
	s.sqlGet = `SELECT state, token,
  coalesce((extract(epoch FROM lease_until - ` + ts + `) * 1000000)::bigint, 0),
  fingerprint, result
FROM ` + t + ` WHERE id = $1::bytea AND expires_at > ` + ts
	s.sqlSettle = `SELECT state, token FROM ` + t + ` WHERE id = $1::bytea FOR SHARE`
	s.sqlDelete = `DELETE FROM ` + t + ` WHERE id IN (
  SELECT id FROM ` + t + ` WHERE expires_at <= ` + ts + ` LIMIT $1::bigint FOR UPDATE SKIP LOCKED
) AND expires_at <= ` + ts
}

// recordID is the SHA-256 of the length-prefixed scope and key: a fixed-size
// primary key whatever the caller sends (a B-tree row must stay under
// about 2.7 kB), scope and key can never run into each other, and the raw key
// is stored nowhere.
func recordID(k idempotency.Key) []byte {
	return recordIDTo(nil, k)
}

// recordIDTo appends k's record id (recordID) to dst.
func recordIDTo(dst []byte, k idempotency.Key) []byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k.Scope)))])
	h.Write([]byte(k.Scope))
	h.Write([]byte(k.Key))
	return h.Sum(dst)
}

// maxDuration caps Lease and Retention: a longer one is taken as 100
// years. Without a cap a duration near math.MaxInt64 would overflow when
// rounded up to microseconds (the record expired at once); with it every
// value, twice a lease included, is exact as a float8, stays far inside the
// timestamptz range when added to the clock, and converts back to a
// time.Duration without overflow.
const maxDuration = 100 * 365 * 24 * time.Hour

// micros rounds d, capped at maxDuration, up to whole microseconds.
func micros(d time.Duration) int64 {
	d = min(d, maxDuration)
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// maxClaimAttempts bounds the retries of a claim whose answer was read from
// a snapshot older than a concurrent writer's commit, and of any statement
// that failed with a serialization failure (see Claim).
const maxClaimAttempts = 16

// serializationFailure reports whether err is SQLSTATE 40001. Under
// REPEATABLE READ or SERIALIZABLE (as a database's, role's or connection's
// default_transaction_isolation) a statement that meets a row version
// committed after its snapshot fails with it instead of waiting and reading
// the latest version, as READ COMMITTED does. The Store's statements run in
// transactions of their own, so the failure rolled back nothing else and the
// statement can simply run again, on a fresh snapshot.
func serializationFailure(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40001"
}

// exec runs one statement in a transaction of its own, again (at most
// maxClaimAttempts times in all) while it fails with a serialization
// failure.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	for attempt := 1; ; attempt++ {
		tag, err := s.pool.Exec(ctx, sql, args...)
		if attempt < maxClaimAttempts && serializationFailure(err) {
			continue
		}
		return tag, err
	}
}

// Claim claims req.Key with one statement (INSERT … ON CONFLICT DO NOTHING
// RETURNING for a fresh key, a conditional UPDATE … RETURNING for a
// claimable one, and a read of the existing row otherwise); see
// idempotency.Store.
//
// Under a race the row read can come from a snapshot taken before a
// concurrent claim committed (no row, or a row that looks claimable although
// the INSERT or UPDATE, which see the latest version, found it was not);
// Claim then runs the statement again. Under REPEATABLE READ or SERIALIZABLE
// as the default isolation, the INSERT or UPDATE fails instead with a
// serialization failure (40001), and Claim runs the statement again too: on
// a fresh snapshot it sees the winner's row and answers InProgress. Without
// a concurrent writer on the same key, a claim is always one round trip.
//
// Given the context of DoTx calls (from inside their fn) that hold every
// connection of the pool, it fails at once with ErrNestedPoolExhausted
// rather than wait for one of them (see "Nesting" in the package
// documentation).
func (s *Store) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	const op = "pgstore.claim"
	if req.Lease <= 0 {
		return idempotency.Claim{}, contract.New(contract.KindInvalid, op, fmt.Sprintf("ClaimRequest.Lease: must be > 0, got %v", req.Lease))
	}
	if req.Retention < req.Lease {
		return idempotency.Claim{}, contract.New(contract.KindInvalid, op, fmt.Sprintf("ClaimRequest.Retention: must be >= Lease (%v), got %v", req.Lease, req.Retention))
	}
	if err := s.poolLeft(ctx, op); err != nil {
		return idempotency.Claim{}, err
	}
	return s.claim(ctx, s.pool, req)
}

// poolLeft returns ErrNestedPoolExhausted when the DoTx calls that ctx was
// made from (running, on s's pool) hold as many connections as the pool
// has: a statement would wait for one of them, held until it returns. A
// context outside any DoTx pays one ctx.Value.
func (s *Store) poolLeft(ctx context.Context, op string) error {
	held := int32(0)
	o, _ := ctx.Value(owner.Key{}).(owner.Op)
	for ; o != nil; o, _ = o.Parent().Value(owner.Key{}).(owner.Op) {
		if tc, ok := o.(*txCtx); ok && tc.s.pool == s.pool && !tc.ended.Load() {
			held++
		}
	}
	if held == 0 {
		return nil
	}
	if limit := s.pool.Stat().MaxConns(); held >= limit {
		e := *(ErrNestedPoolExhausted.(*contract.Error))
		e.Op = op
		e.Detail = fmt.Sprintf("the %d DoTx transactions this call was made from hold every connection of the pool (MaxConns %d) until it returns", held, limit)
		return &e
	}
	return nil
}

// querier runs each statement in a transaction of its own (the pool): claim
// retries a statement after a serialization failure, which would be wrong
// inside a caller's transaction (aborted by the failure).
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) claim(ctx context.Context, q querier, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	const op = "pgstore.claim"
	id := recordID(req.Key)
	fp := []byte(req.Fingerprint)
	raced := errors.New("pgstore: claim kept racing with concurrent writers")
	for range maxClaimAttempts {
		var (
			won     bool
			token   int64
			state   int16
			leftUS  int64
			rowFP   []byte
			result  []byte
			expired bool
		)
		err := q.QueryRow(ctx, s.sqlClaim, id, fp, micros(req.Lease), micros(req.Retention)).
			Scan(&won, &token, &state, &leftUS, &rowFP, &result, &expired)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // inserted by a writer that committed after our snapshot
		}
		if serializationFailure(err) {
			raced = err // written by a writer that committed after our snapshot
			continue
		}
		if err != nil {
			return idempotency.Claim{}, s.fail(ctx, op, id, err)
		}
		s.answered(ctx)
		if won {
			return idempotency.Claim{Status: idempotency.Claimed, Token: uint64(token)}, nil
		}
		c := idempotency.Claim{Token: uint64(token)}
		switch {
		case expired:
			continue // claimable in our snapshot, not in the latest version
		case string(rowFP) != req.Fingerprint:
			c.Status = idempotency.Mismatch
		case state == 1:
			c.Status, c.LeaseRemaining = idempotency.InProgress, time.Duration(leftUS)*time.Microsecond
		case state == 2:
			r, err := decodeResult(result)
			if err != nil {
				return idempotency.Claim{}, s.fail(ctx, op, id, err)
			}
			c.Status, c.Result = idempotency.Completed, &r
		default:
			return idempotency.Claim{}, s.fail(ctx, op, id, errCorrupt)
		}
		return c, nil
	}
	return idempotency.Claim{}, s.fail(ctx, op, id, raced)
}

// Complete stores result for the owner of token: one conditional UPDATE
// (run again after a serialization failure, as every statement of the
// Store outside DoTx's transaction).
func (s *Store) Complete(ctx context.Context, key idempotency.Key, token uint64, result idempotency.Result) error {
	const op = "pgstore.complete"
	if why := resultcodec.Check(result); why != "" {
		return contract.New(contract.KindInvalid, op, why)
	}
	enc := encodeResult(result)
	if len(enc) > s.maxBytes {
		return contract.New(contract.KindTooLarge, op, fmt.Sprintf("result is %d bytes encoded, over the limit of %d", len(enc), s.maxBytes))
	}
	id := recordID(key)
	tag, err := s.exec(ctx, s.sqlComplete, id, int64(token), enc)
	return s.owned(ctx, op, id, tag.RowsAffected(), err)
}

// Release makes the key claimable again: one conditional UPDATE.
func (s *Store) Release(ctx context.Context, key idempotency.Key, token uint64) error {
	const op = "pgstore.release"
	id := recordID(key)
	tag, err := s.exec(ctx, s.sqlRelease, id, int64(token))
	return s.owned(ctx, op, id, tag.RowsAffected(), err)
}

// Renew extends the owner's lease to lease from now (server time): one
// conditional UPDATE.
func (s *Store) Renew(ctx context.Context, key idempotency.Key, token uint64, lease time.Duration) error {
	const op = "pgstore.renew"
	if lease <= 0 {
		return contract.New(contract.KindInvalid, op, fmt.Sprintf("lease: must be > 0, got %v", lease))
	}
	id := recordID(key)
	tag, err := s.exec(ctx, s.sqlRenew, id, int64(token), micros(lease))
	return s.owned(ctx, op, id, tag.RowsAffected(), err)
}

// Get returns the record of key (one SELECT), or an error matching
// idempotency.ErrNotFound. A row past its retention that cleanup has not
// removed yet is not found.
func (s *Store) Get(ctx context.Context, key idempotency.Key) (idempotency.Record, error) {
	const op = "pgstore.get"
	id := recordID(key)
	var (
		state  int16
		token  int64
		leftUS int64
		fp     []byte
		result []byte
	)
	var err error
	for attempt := 1; ; attempt++ {
		err = s.pool.QueryRow(ctx, s.sqlGet, id).Scan(&state, &token, &leftUS, &fp, &result)
		if attempt < maxClaimAttempts && serializationFailure(err) {
			continue // a SERIALIZABLE read can fail too, rarely
		}
		break
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return idempotency.Record{}, idempotency.ErrNotFound
	}
	if err != nil {
		return idempotency.Record{}, s.fail(ctx, op, id, err)
	}
	s.answered(ctx)
	if state < 1 || state > 3 {
		return idempotency.Record{}, s.fail(ctx, op, id, errCorrupt)
	}
	rec := idempotency.Record{Key: key, Fingerprint: string(fp), State: idempotency.RecordState(state), Token: uint64(token)}
	switch rec.State {
	case idempotency.StateInProgress:
		rec.LeaseRemaining = time.Duration(leftUS) * time.Microsecond
	case idempotency.StateCompleted:
		r, err := decodeResult(result)
		if err != nil {
			return idempotency.Record{}, s.fail(ctx, op, id, err)
		}
		rec.Result = &r
	}
	return rec, nil
}

// DeleteExpired deletes at most limit rows past their retention (at most
// Config.CleanupBatch when limit <= 0) in one statement and returns how many
// it deleted. Rows locked by a concurrent claim are skipped, so cleanup
// never waits on traffic. Schedule it (every minute, say) and call it again
// at once while it returns limit: each call is a short transaction, never
// one huge DELETE.
func (s *Store) DeleteExpired(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = s.batch
	}
	tag, err := s.exec(ctx, s.sqlDelete, limit)
	if err != nil {
		return 0, s.fail(ctx, "pgstore.delete_expired", nil, err)
	}
	return tag.RowsAffected(), nil
}

// owned turns a conditional update's row count into nil or ErrLeaseLost.
func (s *Store) owned(ctx context.Context, op string, id []byte, n int64, err error) error {
	if err != nil {
		return s.fail(ctx, op, id, err)
	}
	s.answered(ctx)
	if n != 1 {
		if s.log != nil {
			if level, k := s.logs.Occur(pStaleOwner, s.clock.Now(), slog.LevelInfo); s.log.Enabled(ctx, level) {
				logctx.Decision(ctx, s.log, level, "refused stale owner", "lease lost: token not current or lease expired", lograte.Suppressed([]slog.Attr{
					slog.String(logctx.KeyDependency, "postgresql"), slog.String("store_op", op), slog.String("key_hash", keyHash(id)),
					slog.String(idempotency.KeyHash, shortHash(id))}, k)...)
			}
		}
		return idempotency.ErrLeaseLost
	}
	return nil
}

// The decisions a database that is down or slow repeats on every call:
// their lines are paced (see package lograte), at most a few every 10s.
const (
	pFailed = iota
	pStaleOwner
	pNested
	numPaced
)

// answered logs, once each, the end of the paced decisions that have not
// occurred for 10s, on a call the database answered. It costs an atomic
// load while none is going on.
func (s *Store) answered(ctx context.Context) {
	if s.logs != nil && s.logs.Active() {
		s.logs.LogEnds(ctx, s.log, s.clock, pacedEnd, slog.String(logctx.KeyDependency, "postgresql"))
	}
}

func pacedEnd(p int) (string, string) {
	switch p {
	case pFailed:
		return "idempotency store calls succeed again", lograte.EndReason
	case pStaleOwner:
		return "stale owners no longer refused", lograte.EndReason
	}
	return "nested calls no longer refused", lograte.EndReason
}

// fail maps err to a contract error and logs it.
func (s *Store) fail(ctx context.Context, op string, id []byte, err error) error {
	e := mapError(op, canceledBy(ctx, err))
	if s.log != nil && e.Kind != contract.KindCanceled {
		attrs := []slog.Attr{slog.String(logctx.KeyDependency, "postgresql"), slog.String("store_op", op),
			slog.String("kind", e.Kind.String()), slog.Any("error", err)}
		if id != nil {
			attrs = append(attrs, slog.String("key_hash", keyHash(id)), slog.String(idempotency.KeyHash, shortHash(id)))
		}
		s.logFailed(ctx, e.Kind.String(), attrs)
	}
	return e
}

// logFailed logs a failed call, paced.
func (s *Store) logFailed(ctx context.Context, reason string, attrs []slog.Attr) {
	if level, k := s.logs.Occur(pFailed, s.clock.Now(), slog.LevelWarn); s.log.Enabled(ctx, level) {
		logctx.Decision(ctx, s.log, level, "idempotency store call failed", reason, lograte.Suppressed(attrs, k)...)
	}
}

func keyHash(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// shortHash returns, for a record id, the hash the idempotency executor
// logs for its key (idempotency.KeyHash: 12 hex digits of the same
// SHA-256), so that a store line and the executor's line about one key
// carry the same value.
func shortHash(id []byte) string {
	if len(id) < 6 {
		return ""
	}
	return hex.EncodeToString(id[:6])
}
