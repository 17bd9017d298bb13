package ordering_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

// A hostile or buggy producer's megabyte subject: the Guard's decision
// lines carry the subject as an attribute of the line, which the logctx
// Handler does not cut, so the Guard cuts it itself (logctx.Short): a
// 3 a.m. reader gets its first bytes and its length, not a megabyte line
// per decision.
func TestGuardDecisionLineCutsAHugeSubject(t *testing.T) {
	log, buf := logBuffer()
	state, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g := mustGuard(t, ordering.Config{Logger: log, State: state})
	subject := strings.Repeat("s", 1<<20)
	var r recorder
	ctx := context.Background()
	for _, seq := range []uint64{1, 1} { // apply, then a duplicate (logged)
		if _, err := g.Process(ctx, ev(subject, seq), r.apply, nil); err != nil {
			t.Fatal(err)
		}
	}
	lines := decisions(t, buf)
	if len(lines) == 0 {
		t.Fatal("no decision logged")
	}
	for _, m := range lines {
		got, _ := m["subject"].(string)
		if want := logctx.Short(subject); got != want {
			t.Fatalf("subject logged as %d bytes (%.40q…), want %d bytes", len(got), got, len(want))
		}
		if !strings.HasSuffix(got, "...[truncated, 1048576 bytes]") {
			t.Fatalf("subject %.60q… does not end with its length", got[len(got)-40:])
		}
	}
	if buf.Len() > 4096*len(lines) {
		t.Fatalf("%d log bytes for %d lines", buf.Len(), len(lines))
	}
}
