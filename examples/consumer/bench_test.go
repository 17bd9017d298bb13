package main

import (
	"context"
	"testing"
)

// BenchmarkMemoryRun measures a whole in-memory run — producing, shuffling,
// and consuming 1,000 events (with 20 % duplicates, 2 % republished
// copies, 5 % transient failures) through decoding, deduplication, the
// ordering Guard and the projection — without logging. It reports
// deliveries and applied events per second of wall time.
func BenchmarkMemoryRun(b *testing.B) {
	b.ReportAllocs()
	o := Options{Events: 1000, Subjects: 20, DupRate: 0.2, RepublishRate: 0.02, FailRate: 0.05, Seed: 1}
	deliveries := 0
	for b.Loop() {
		r, err := RunMemory(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if !r.OK() {
			b.Fatal(r.Problems)
		}
		deliveries += r.Counts.Deliveries
	}
	b.ReportMetric(float64(deliveries)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(o.Events*b.N)/b.Elapsed().Seconds(), "events/s")
}
