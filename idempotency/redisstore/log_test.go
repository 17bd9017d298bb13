package redisstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/storelogtest"
)

// Logs name a record by its hash, never by the raw idempotency key, and
// never carry a result.
func TestLogsNeverCarryRawKeys(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newClient(t, "redisstore-log")
	s, err := New(Config{Client: c, Prefix: testPrefix(t), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropPrefix(c, s.prefix) })
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
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer down.Close()
	sd, _ := New(Config{Client: down, Logger: log})
	_, _ = sd.Get(ctx, k)
	// The executor meets k in progress: its conflict line names k by
	// idempotency.KeyHash, as the store's lines must.
	ex, err := idempotency.New(idempotency.Config{Store: s, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idempotency.Do(ctx, ex, k, "fp", func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatal(err)
	}
	storelogtest.CheckSameKeyHash(t, buf.String(), `"key_hash":"`+recordID(k)+`"`, idempotency.OutcomeConflict)

	out := buf.String()
	if strings.Contains(out, secret) || strings.Contains(out, "secret-body") {
		t.Fatalf("log carries the raw key or the result:\n%s", out)
	}
	for _, want := range []string{`"decision":"refused stale owner"`, `"key_hash":"` + recordID(k) + `"`, `"msg":"idempotency store call failed"`, `"dependency":"redis"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
