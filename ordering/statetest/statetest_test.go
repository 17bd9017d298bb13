package statetest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/contract"
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

// failing are States that mishandle a failing fn: one that runs it again
// (a retry loop around the caller's effect: a failed payment applied
// twice) and one that wraps its error in its own classification (the
// handler's transient failure becomes KindInternal: dead-lettered instead
// of retried). Run must refuse both.
var failing = map[string]func(*ordering.Memory) ordering.State{
	"exact": func(m *ordering.Memory) ordering.State { return m },
	"retries a failing fn": func(m *ordering.Memory) ordering.State {
		return advanceFunc{m, func(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
			err := m.Advance(ctx, subject, fn)
			if err != nil && ctx.Err() == nil {
				err = m.Advance(ctx, subject, fn)
			}
			return err
		}}
	},
	"wraps fn's error": func(m *ordering.Memory) ordering.State {
		return advanceFunc{m, func(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
			if err := m.Advance(ctx, subject, fn); err != nil {
				return &contract.Error{Kind: contract.KindInternal, Code: "state.advance", Cause: err}
			}
			return nil
		}}
	},
}

type advanceFunc struct {
	*ordering.Memory
	advance func(context.Context, string, func(context.Context, uint64) (uint64, error)) error
}

func (s advanceFunc) Advance(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
	return s.advance(ctx, subject, fn)
}

// TestRunRefusesStatesThatMishandleFailingFn: as above, for failing.
func TestRunRefusesStatesThatMishandleFailingFn(t *testing.T) {
	if name := os.Getenv("STATETEST_FAILING"); name != "" {
		statetest.Run(t, func(t *testing.T) ordering.State {
			m, err := ordering.NewMemory(ordering.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return failing[name](m)
		})
		return
	}
	for name := range failing {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRunRefusesStatesThatMishandleFailingFn$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "STATETEST_FAILING="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			switch {
			case name == "exact" && err != nil:
				t.Fatalf("Run refused a correct State: %v\n%s", err, out)
			case name == "exact":
			case !errors.As(err, &exit):
				t.Fatalf("Run passed a State that %s (%v):\n%s", name, err, out)
			case !bytes.Contains(out, []byte("--- FAIL: TestRunRefusesStatesThatMishandleFailingFn/FailedFnStoresNothing")):
				t.Fatalf("Run failed on a State that %s, but not in FailedFnStoresNothing: %v\n%s", name, err, out)
			}
		})
	}
}

// TestRunRefusesStateThatLosesACommit: a State that ignores the failure of
// its commit (here: the caller's context canceled while fn ran, as in a
// shutdown) answers nil although nothing was stored. The Guard then takes
// the event as applied (a consumer acknowledges it) while its sequence,
// and with pgstate its effect, are gone. Run must refuse it.
func TestRunRefusesStateThatLosesACommit(t *testing.T) {
	if os.Getenv("STATETEST_LOSES_COMMIT") != "" {
		statetest.Run(t, func(t *testing.T) ordering.State {
			m, err := ordering.NewMemory(ordering.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return advanceFunc{m, func(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
				return m.Advance(ctx, subject, func(fctx context.Context, last uint64) (uint64, error) {
					next, err := fn(fctx, last)
					if err != nil {
						return last, err
					}
					if ctx.Err() != nil {
						return last, nil // the commit failed: error ignored
					}
					return next, nil
				})
			}}
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunRefusesStateThatLosesACommit$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "STATETEST_LOSES_COMMIT=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case !errors.As(err, &exit):
		t.Fatalf("Run passed a State that answers nil for a commit it lost (%v):\n%s", err, out)
	case !bytes.Contains(out, []byte("--- FAIL: TestRunRefusesStateThatLosesACommit/CanceledDuringFn")):
		t.Fatalf("Run failed, but not in CanceledDuringFn: %v\n%s", err, out)
	}
}

// TestRunRefusesStateThatRetriesAnUnrecordableSubject: a State that fails a
// subject it can never record (here: any over 64 KiB) with a retryable
// error rather than ordering.ErrInvalidEvent has a consumer retry the event
// until MaxAttempts, holding its subject's later events, though no
// redelivery can record it. Run must refuse it.
func TestRunRefusesStateThatRetriesAnUnrecordableSubject(t *testing.T) {
	if os.Getenv("STATETEST_RETRIES_SUBJECT") != "" {
		statetest.Run(t, func(t *testing.T) ordering.State {
			m, err := ordering.NewMemory(ordering.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return advanceFunc{m, func(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
				if len(subject) > 64<<10 {
					return contract.New(contract.KindUnavailable, "state", "subject too long")
				}
				return m.Advance(ctx, subject, fn)
			}}
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunRefusesStateThatRetriesAnUnrecordableSubject$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "STATETEST_RETRIES_SUBJECT=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case !errors.As(err, &exit):
		t.Fatalf("Run passed a State that fails an unrecordable subject as retryable (%v):\n%s", err, out)
	case !bytes.Contains(out, []byte("--- FAIL: TestRunRefusesStateThatRetriesAnUnrecordableSubject/HugeSubject")):
		t.Fatalf("Run failed, but not in HugeSubject: %v\n%s", err, out)
	}
}
