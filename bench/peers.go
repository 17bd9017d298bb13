// Package bench holds benchmarks that run the same work through sadpath and
// through peer libraries, so BENCHMARKS.md can show ratios measured in one
// run on one machine. It is its own module: peers never enter the core's
// dependency graph.
package bench
