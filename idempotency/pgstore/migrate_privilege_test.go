package pgstore

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
)

// A least-privilege application role: a DBA made the schema and granted the
// role USAGE and CREATE on it, but not CREATE on the database. Migrate must
// create the table there. It ran CREATE SCHEMA IF NOT EXISTS whenever the
// table was missing, and PostgreSQL checks the database privilege before it
// looks for the schema: "permission denied for database", although the
// schema was there all along.
func TestMigrateIntoExistingSchemaWithoutDatabaseCreate(t *testing.T) {
	ctx := context.Background()
	admin, _ := newPool(t, "pgstore-migrate-priv-admin", nil)
	suffix := randomSuffix()
	role, schema := "sadpath_app_"+suffix, "sadpath_priv_"+suffix
	r, sc := pgx.Identifier{role}.Sanitize(), pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{
		`CREATE ROLE ` + r + ` LOGIN PASSWORD 'sadpath-test'`,
		`CREATE SCHEMA ` + sc,
		`GRANT USAGE, CREATE ON SCHEMA ` + sc + ` TO ` + r,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+sc+` CASCADE`)
		_, _ = admin.Exec(ctx, `DROP ROLE IF EXISTS `+r)
	})

	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, "sadpath-test"
	cfg.MaxConns = 2
	app, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close) // before the role is dropped

	s, err := New(Config{Pool: app, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate into a granted schema: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: keyOf("k"), Fingerprint: "fp", Lease: 1e9, Retention: 1e9})
	if err != nil || c.Status != idempotency.Claimed {
		t.Fatalf("Claim after Migrate: %+v, %v", c, err)
	}
}
