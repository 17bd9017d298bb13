package pgstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/storelogtest"
)

// Logs name a record by its hash, never by the raw idempotency key, and
// never carry a result.
func TestLogsNeverCarryRawKeys(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, _ := newPool(t, "pgstore-log", nil)
	base := newStore(t, p, newTable())
	s, err := New(Config{Pool: p, Schema: testSchema, Table: base.table, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const secret = "idem-key-SECRET-4242"
	k := idempotency.Key{Scope: "tenant", Key: secret}
	cl, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, k, cl.Token+7, idempotency.Result{Body: []byte("secret-body")}); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, k, cl.Token, idempotency.Result{Body: []byte(`"secret-body"`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := DoTx(ctx, s, k, "fp", func(context.Context, pgx.Tx) (string, error) { return "", nil }); err != nil {
		t.Fatal(err)
	}
	down, _ := New(Config{Pool: lazyPool(t), Logger: log})
	_, _ = down.Get(ctx, k)

	out := buf.String()
	if strings.Contains(out, secret) || strings.Contains(out, "secret-body") {
		t.Fatalf("log carries the raw key or the result:\n%s", out)
	}
	for _, want := range []string{`"decision":"refused stale owner"`, `"decision":"replayed stored result"`, `"key_hash":"` + keyHash(recordID(k)) + `"`,
		`"msg":"idempotency store call failed"`, `"dependency":"postgresql"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	// Each decision line carries its own coordinates: the record and the
	// operation, not only the dependency.
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `"decision":`) {
			continue
		}
		for _, want := range []string{`"key_hash":"` + keyHash(recordID(k)) + `"`, `"store_op":`, `"dependency":"postgresql"`} {
			if !strings.Contains(line, want) {
				t.Errorf("decision line lacks %s: %s", want, line)
			}
		}
	}
	// The executor replays k: its line names k by idempotency.KeyHash, as
	// the store's lines must.
	ex, err := idempotency.New(idempotency.Config{Store: s, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idempotency.Do(ctx, ex, k, "fp", func(context.Context) (string, error) { return "", nil }); err != nil {
		t.Fatal(err)
	}
	storelogtest.CheckSameKeyHash(t, buf.String(), `"key_hash":"`+keyHash(recordID(k))+`"`, idempotency.OutcomeReplayed)
}
