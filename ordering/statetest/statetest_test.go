package statetest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/statetest"
)

// keyed is a State that stores subject under key(subject): a backend
// whose key column or map compares subjects loosely.
type keyed struct {
	m   *ordering.Memory
	key func(string) string
}

func (s keyed) Last(ctx context.Context, subject string) (uint64, error) {
	return s.m.Last(ctx, s.key(subject))
}

func (s keyed) Advance(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
	return s.m.Advance(ctx, s.key(subject), fn)
}

// broken are States that merge distinct subjects, as real backends do
// (a VARCHAR(255) that truncates, a case-insensitive or PAD SPACE
// collation, a C string cut at NUL, a Unicode-normalising key). Two
// entities sharing one sequence drop each other's events as stale or
// duplicate: Run must refuse every one of them.
var broken = map[string]func(string) string{
	"exact": func(s string) string { return s }, // the control: it passes
	"truncates long subjects": func(s string) string {
		if len(s) > 255 {
			return s[:255]
		}
		return s
	},
	"folds case":            strings.ToLower,
	"trims trailing spaces": func(s string) string { return strings.TrimRight(s, " ") },
	"cuts at NUL": func(s string) string {
		if i := strings.IndexByte(s, 0); i >= 0 {
			return s[:i]
		}
		return s
	},
	"normalises Unicode": func(s string) string { return strings.ReplaceAll(s, "e\u0301", "\u00e9") },
}

// TestRunRefusesStatesThatMergeSubjects runs Run against each broken State
// in a child test process, which must fail (and the exact one pass).
func TestRunRefusesStatesThatMergeSubjects(t *testing.T) {
	if name := os.Getenv("STATETEST_BROKEN"); name != "" {
		statetest.Run(t, func(t *testing.T) ordering.State {
			m, err := ordering.NewMemory(ordering.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return keyed{m: m, key: broken[name]}
		})
		return
	}
	for name := range broken {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRunRefusesStatesThatMergeSubjects$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "STATETEST_BROKEN="+name)
			out, err := cmd.CombinedOutput()
			switch {
			case name == "exact" && err != nil:
				t.Fatalf("Run refused a correct State: %v\n%s", err, out)
			case name == "exact":
			case err == nil:
				t.Fatalf("Run passed a State that %s:\n%s", name, out)
			case !bytes.Contains(out, []byte("--- FAIL: TestRunRefusesStatesThatMergeSubjects/OpaqueSubjects")):
				t.Fatalf("Run failed on a State that %s, but not in OpaqueSubjects: %v\n%s", name, err, out)
			}
		})
	}
}
