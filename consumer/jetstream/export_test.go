package jetstream

import "time"

// SetLogClock makes a pace its log lines on clk's time instead of the
// system clock's.
func SetLogClock(a *Adapter, clk interface{ Now() time.Time }) { a.clock = clk }
