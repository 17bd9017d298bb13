package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// schemaSQL is the schema, with %[1]s standing for the quoted table name and
// %[2]s for the quoted name of its index. It is printed in the package
// documentation; keep the two in step.
const schemaSQL = `CREATE TABLE IF NOT EXISTS %[1]s (
    id           bytea       PRIMARY KEY,  -- SHA-256 of the length-prefixed scope and key
    fingerprint  bytea       NOT NULL,     -- opaque payload digest
    state        smallint    NOT NULL,     -- 1 in progress, 2 completed, 3 released
    token        bigint      NOT NULL,     -- fencing token: max(token + 1, server clock in microseconds)
    lease_until  timestamptz,              -- in progress only
    retention_us bigint      NOT NULL,     -- retention asked by the claim, in microseconds
    expires_at   timestamptz NOT NULL,     -- the row may be deleted after this
    result       bytea                     -- completed only: versioned binary encoding
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (expires_at);`

// Migrate creates the schema, the table and its index if they do not exist
// (an existing schema needs only USAGE and CREATE on it, not CREATE on the
// database). It is safe to run concurrently from
// many instances (an advisory lock serializes it) and on every start: when
// the table and its index exist it changes nothing and locks neither, so it
// never waits for, or holds up, the traffic of running instances.
// Teams that run their own migrations apply the SQL in the package
// documentation instead.
func (s *Store) Migrate(ctx context.Context) error {
	const op = "pgstore.migrate"
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.fail(ctx, op, nil, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// One lock for every pgstore migration: CREATE … IF NOT EXISTS is not
	// safe against a concurrent CREATE of the same name.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sadpath.pgstore.migrate'))`); err != nil {
		return s.fail(ctx, op, nil, err)
	}
	// CREATE INDEX IF NOT EXISTS locks the table (SHARE) before it looks
	// for the index: on every start it would wait for each open write
	// transaction, and every claim arriving meanwhile would queue behind
	// it. An existing table and index are left alone, untouched and unlocked.
	var exists, schemaExists bool
	err = tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL, to_regnamespace($3) IS NOT NULL`,
		s.qualified, pgx.Identifier{s.schema, s.table + "_expires_at_idx"}.Sanitize(), pgx.Identifier{s.schema}.Sanitize()).
		Scan(&exists, &schemaExists)
	if err != nil {
		return s.fail(ctx, op, nil, err)
	}
	if exists {
		return nil
	}
	// CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege on the
	// database before it looks for the schema: a role granted CREATE on an
	// existing schema only (least privilege) would be refused. It runs
	// only when the schema is missing.
	if !schemaExists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
			return s.fail(ctx, op, nil, err)
		}
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(schemaSQL, s.qualified, pgx.Identifier{s.table + "_expires_at_idx"}.Sanitize())); err != nil {
		return s.fail(ctx, op, nil, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.fail(ctx, op, nil, err)
	}
	return nil
}

// validIdent accepts the lower-case SQL identifiers a Config may name:
// letters, digits and underscores, not starting with a digit, at most 48
// bytes (leaving room for the index suffix within PostgreSQL's 63).
func validIdent(s string) bool {
	if s == "" || len(s) > 48 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'))
	}) < 0
}
