package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// snapshotIsoLevels are the isolation levels whose transactions read one
// snapshot, taken at their first statement: an UPDATE of a row another
// transaction changed since then fails with 40001 instead of reading the
// latest version.
var snapshotIsoLevels = []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable}

// expireLease ends the lease of k now, as if the server clock had passed
// it (leases are server time, so there is no fake clock to move): a stalled
// owner, deterministically.
func (e *txEnv) expireLease(ctx context.Context, k idempotency.Key) error {
	_, err := e.admin.Exec(ctx, `UPDATE `+e.s.qualified+` SET lease_until = statement_timestamp() - interval '1 second' WHERE id = $1`, recordID(k))
	return err
}

// Under REPEATABLE READ or SERIALIZABLE, a DoTx whose lease expired and
// whose key another owner claimed after fn's first statement (the
// transaction's snapshot) fails at its complete with 40001, not with a row
// count of 0. It is a stale owner all the same: ErrLeaseLost, as documented
// (not a retryable serialization failure, which invites a retry that can
// only meet the new owner), and none of fn's writes stay.
func TestDoTxReclaimedAfterSnapshotIsLeaseLost(t *testing.T) {
	e := newTxEnv(t, 10*time.Second)
	other, err := New(Config{Pool: e.admin, Schema: testSchema, Table: e.s.table})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, iso := range snapshotIsoLevels {
		t.Run(string(iso), func(t *testing.T) {
			s, err := New(Config{Pool: e.pool, Schema: testSchema, Table: e.s.table, TxLease: 10 * time.Second, TxOptions: pgx.TxOptions{IsoLevel: iso}})
			if err != nil {
				t.Fatal(err)
			}
			k := idempotency.Key{Scope: "tx", Key: "reclaimed/" + string(iso)}
			var newOwner idempotency.Claim
			_, err = DoTx(ctx, s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
				p, err := e.insert(ctx, tx, k.Key) // the snapshot is taken here
				if err != nil {
					return p, err
				}
				// The lease runs out while fn stalls, and another caller
				// claims the key on its own connection.
				if err := e.expireLease(ctx, k); err != nil {
					return p, err
				}
				newOwner, err = other.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
				if err != nil {
					return p, err
				}
				if newOwner.Status != idempotency.Claimed {
					t.Fatalf("re-claim after the lease expired: %+v, want Claimed", newOwner)
				}
				return p, nil
			})
			if !errors.Is(err, idempotency.ErrLeaseLost) || contract.Retryable(err) {
				t.Fatalf("stale owner under %s: %v; want idempotency.ErrLeaseLost", iso, err)
			}
			if n := e.rows(t, k.Key); n != 0 {
				t.Fatalf("the stale owner left %d business rows", n)
			}
			rec, err := s.Get(ctx, k)
			if err != nil || rec.State != idempotency.StateInProgress || rec.Token != newOwner.Token {
				t.Fatalf("record = %+v, %v; want the new owner's claim (token %d) untouched", rec, err, newOwner.Token)
			}
		})
	}
}

// A 40001 at the complete that is not a lost lease — the record changed
// after the snapshot, but it is still DoTx's own, unexpired claim (here:
// renewed with its token from another connection) — stays a retryable
// serialization failure, the key is released, and the retry commits.
func TestDoTxSerializationFailureOnOwnRecordStaysRetryable(t *testing.T) {
	e := newTxEnv(t, 10*time.Second)
	ctx := context.Background()
	for _, iso := range snapshotIsoLevels {
		t.Run(string(iso), func(t *testing.T) {
			s, err := New(Config{Pool: e.pool, Schema: testSchema, Table: e.s.table, TxLease: 10 * time.Second, TxOptions: pgx.TxOptions{IsoLevel: iso}})
			if err != nil {
				t.Fatal(err)
			}
			renewer, err := New(Config{Pool: e.admin, Schema: testSchema, Table: e.s.table})
			if err != nil {
				t.Fatal(err)
			}
			k := idempotency.Key{Scope: "tx", Key: "renewed/" + string(iso)}
			_, err = DoTx(ctx, s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) {
				p, err := e.insert(ctx, tx, k.Key)
				if err != nil {
					return p, err
				}
				rec, err := renewer.Get(ctx, k)
				if err != nil {
					return p, err
				}
				return p, renewer.Renew(ctx, k, rec.Token, time.Minute)
			})
			if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) || contract.As(err).Code != "pgstore.serialization_failure" {
				t.Fatalf("err = %v; want a retryable serialization failure", err)
			}
			if errors.Is(err, idempotency.ErrLeaseLost) {
				t.Fatalf("err = %v matches ErrLeaseLost; the lease was DoTx's own", err)
			}
			if n := e.rows(t, k.Key); n != 0 {
				t.Fatalf("%d business rows after the failure", n)
			}
			got, err := DoTx(ctx, s, k, "fp", func(ctx context.Context, tx pgx.Tx) (payment, error) { return e.insert(ctx, tx, k.Key) })
			if err != nil || e.rows(t, k.Key) != 1 || got.Row != e.rowID(t, k.Key) {
				t.Fatalf("retry = %+v, %v with %d rows; want it to commit at once", got, err, e.rows(t, k.Key))
			}
		})
	}
}
