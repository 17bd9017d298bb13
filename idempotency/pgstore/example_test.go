package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/pgstore"
)

// Wiring the store on a pool. It needs a PostgreSQL server, so it has no
// checked output.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pgstore.Config{Pool: pool, Table: "example_idempotency"})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	// store is an idempotency.Store: hand it to idempotency.New(idempotency.Config{Store: store}).
	var _ idempotency.Store = store
	// Remove expired rows, a batch at a time (schedule this).
	for {
		n, err := store.DeleteExpired(ctx, 0)
		if err != nil || n < 1000 {
			break
		}
	}
}

// DoTx commits the business write and the idempotency record together: a
// retry of the same request replays the first result instead of charging
// twice.
func ExampleDoTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, _ := pgstore.New(pgstore.Config{Pool: pool})

	type charge struct {
		ID     int64 `json:"id"`
		Amount int64 `json:"amount"`
	}
	key := idempotency.Key{Scope: "customer-42", Key: "charge-2026-11-25-001"}
	c, err := pgstore.DoTx(ctx, store, key, "sha256:…payload digest…", func(ctx context.Context, tx pgx.Tx) (charge, error) {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO charges (customer, amount) VALUES ($1, $2) RETURNING id`, 42, 1999).Scan(&id)
		return charge{ID: id, Amount: 1999}, err
	})
	switch {
	case errors.Is(err, idempotency.ErrInProgress):
		// the first request is still running: answer 409 with Retry-After
	case contract.Retryable(err):
		// the database is unavailable or timed out: nothing was committed, retry later
	case err == nil:
		fmt.Println("charge", c.ID)
	}
}

// A bad configuration is refused with an error naming the field.
func ExampleNew_invalid() {
	_, err := pgstore.New(pgstore.Config{})
	fmt.Println(err)
	fmt.Println(errors.Is(err, contract.ErrInvalid))
	// Output:
	// pgstore.New: invalid (config.invalid): Config.Pool: must not be nil
	// true
}
