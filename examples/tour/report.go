package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sadpath/sadpath/logctx"
)

// report is what one scenario prints.
type report struct {
	Number     int         `json:"number"`
	Title      string      `json:"title"`
	Did        []string    `json:"did"`     // what was done to the system
	Decided    []string    `json:"decided"` // what the library decided
	Figures    [][2]string `json:"figures"` // key figures, in order
	Timeline   []string    `json:"timeline,omitempty"`
	Invariants []check     `json:"invariants"` // what must hold
	Logs       []string    `json:"logs"`       // JSON log lines explaining the decisions
	Elapsed    string      `json:"elapsed"`
}

type check struct {
	What string `json:"what"`
	OK   bool   `json:"ok"`
}

func (r *report) did(format string, a ...any) { r.Did = append(r.Did, fmt.Sprintf(format, a...)) }
func (r *report) decided(format string, a ...any) {
	r.Decided = append(r.Decided, fmt.Sprintf(format, a...))
}
func (r *report) figure(name string, format string, a ...any) {
	r.Figures = append(r.Figures, [2]string{name, fmt.Sprintf(format, a...)})
}
func (r *report) fail(format string, a ...any) {
	r.Invariants = append(r.Invariants, check{fmt.Sprintf(format, a...), false})
}

// expect records an invariant and whether it held.
func (r *report) expect(ok bool, format string, a ...any) bool {
	r.Invariants = append(r.Invariants, check{fmt.Sprintf(format, a...), ok})
	return ok
}

func (r *report) OK() bool {
	for _, c := range r.Invariants {
		if !c.OK {
			return false
		}
	}
	return len(r.Invariants) > 0
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "%s\n%d. %s   [%s]\n%s\n", strings.Repeat("=", 78), r.Number, r.Title, verdict(r.OK()), strings.Repeat("-", 78))
	section := func(name string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "%s\n", name)
		for _, l := range lines {
			fmt.Fprintf(w, "  - %s\n", l)
		}
	}
	section("What we did:", r.Did)
	section("What sadpath decided:", r.Decided)
	if len(r.Figures) > 0 {
		fmt.Fprintln(w, "Figures:")
		width := 0
		for _, f := range r.Figures {
			width = max(width, len(f[0]))
		}
		for _, f := range r.Figures {
			fmt.Fprintf(w, "  %-*s  %s\n", width, f[0], f[1])
		}
	}
	if len(r.Timeline) > 0 {
		fmt.Fprintln(w, "Timeline:")
		for _, l := range r.Timeline {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprintln(w, "Invariants:")
	for _, c := range r.Invariants {
		fmt.Fprintf(w, "  [%s] %s\n", verdict(c.OK), c.What)
	}
	if len(r.Logs) > 0 {
		fmt.Fprintln(w, "Log lines that explain it:")
		for _, l := range r.Logs {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprintf(w, "(%s)\n", r.Elapsed)
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

// env is what a scenario runs with: a seeded random source and a logger
// whose JSON lines (through the logctx handler) are captured.
type env struct {
	rand   *rand.Rand
	logger *slog.Logger
	mu     sync.Mutex
	buf    bytes.Buffer
}

func newEnv(seed int64) *env {
	e := &env{rand: rand.New(rand.NewPCG(uint64(seed), 0x5ad9a7))}
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(lockedWriter{e}, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(time.StampMilli))
			}
			return a
		},
	})})
	if err != nil {
		panic(err) // only a nil Next is rejected
	}
	e.logger = slog.New(h)
	return e
}

type lockedWriter struct{ e *env }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.buf.Write(p)
}

// pickLogs returns up to n captured lines: one per distinct decision first,
// in the order they were logged, then other lines.
func (e *env) pickLogs(n int) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(e.buf.String()), "\n")
	type pick struct {
		i    int
		line string
	}
	var picked []pick
	seen := map[string]bool{}
	for i, l := range lines {
		if l == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		d, _ := m[logctx.KeyDecision].(string)
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		picked = append(picked, pick{i, l})
		if len(picked) == n {
			break
		}
	}
	for i, l := range lines {
		if len(picked) >= n || l == "" {
			break
		}
		dup := false
		for _, p := range picked {
			dup = dup || p.i == i
		}
		if !dup && !strings.Contains(l, `"`+logctx.KeyDecision+`"`) {
			picked = append(picked, pick{i, l})
		}
	}
	sort.Slice(picked, func(a, b int) bool { return picked[a].i < picked[b].i })
	out := make([]string, len(picked))
	for i, p := range picked {
		out[i] = p.line
	}
	return out
}

// percentile returns the p-th percentile (0-100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
