// Package storelogtest is a test helper for the idempotency store adapters
// (idempotency/pgstore, idempotency/redisstore): it checks that a store's
// log lines and the executor's name a record by the same hash.
package storelogtest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

// CheckSameKeyHash asserts, over the JSON log lines in out, that a store
// failure is written as a decision line, and that every line holding
// storeLine (the store's own name for the record) carries the
// idempotency_key_hash of the executor's line whose decision is
// executorDecision, about the same key: an operator greps one value and
// finds both sides.
func CheckSameKeyHash(t *testing.T, out, storeLine, executorDecision string) {
	t.Helper()
	var exHash string
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		if m["decision"] == executorDecision {
			exHash, _ = m[idempotency.KeyHash].(string)
		}
		if strings.Contains(line, storeLine) {
			lines = append(lines, m)
		}
		if m["msg"] == "idempotency store call failed" && m["decision"] != m["msg"] {
			t.Errorf("store failure is not a decision line: %s", line)
		}
	}
	if exHash == "" || len(lines) == 0 {
		t.Fatalf("no executor line with %s, or no store line:\n%s", idempotency.KeyHash, out)
	}
	for _, m := range lines {
		if m[idempotency.KeyHash] != exHash {
			t.Errorf("store line %v: %s %v, want %q as the executor logs", m["msg"], idempotency.KeyHash, m[idempotency.KeyHash], exHash)
		}
	}
}
