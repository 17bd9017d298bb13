package breaker

import (
	"reflect"
	"testing"
	"time"
)

// gobreaker rounds its Interval up to a whole number of BucketPeriods: a
// Window that Buckets does not divide to the nanosecond must still give
// exactly Buckets buckets spanning Window (less a few nanoseconds), not an
// extra bucket that keeps stale failures counted for up to Window/Buckets
// longer.
func TestWindowIsBucketsBuckets(t *testing.T) {
	for _, c := range []struct {
		window  time.Duration
		buckets int
	}{{time.Second, 3}, {time.Minute, 7}, {10 * time.Second, 10}, {time.Hour, 1}, {maxWindow, 1000}, {time.Millisecond, 1}} {
		b, err := New(Config{Name: "w", Window: c.window, Buckets: c.buckets, DisableMetrics: true})
		if err != nil {
			t.Fatal(err)
		}
		cb := reflect.ValueOf(b.cb).Elem()
		interval := time.Duration(cb.FieldByName("interval").Int())
		period := time.Duration(cb.FieldByName("bucketPeriod").Int())
		n := cb.FieldByName("counts").Elem().FieldByName("buckets").Len()
		if n != c.buckets || interval > c.window || interval <= c.window-time.Duration(c.buckets) || period*time.Duration(n) != interval {
			t.Errorf("Window %v, Buckets %d: gobreaker counts over %d buckets of %v, %v in all", c.window, c.buckets, n, period, interval)
		}
	}
}
