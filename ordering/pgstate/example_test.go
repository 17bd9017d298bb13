package pgstate_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sadpath/sadpath/ordering/pgstate"
)

// New validates the configuration before touching the database: the table
// name is spliced into SQL, so only plain identifiers are accepted.
func ExampleNew() {
	var db pgstate.Beginner = beginFunc(func(context.Context) (pgx.Tx, error) { return nil, nil })
	if _, err := pgstate.New(pgstate.Config{DB: db, Table: "ledger.ordering"}); err == nil {
		fmt.Println("ok: ledger.ordering")
	}
	_, err := pgstate.New(pgstate.Config{DB: db, Table: "ordering; DROP TABLE accounts"})
	fmt.Println(err)
	// Output:
	// ok: ledger.ordering
	// pgstate: invalid (config.invalid): Config.Table: "ordering; DROP TABLE accounts" is not a lower-case identifier [a-z_][a-z0-9_]*
}

type beginFunc func(context.Context) (pgx.Tx, error)

func (f beginFunc) Begin(ctx context.Context) (pgx.Tx, error) { return f(ctx) }
