package consumer

import "time"

// SetLogClock makes c pace its log lines on clk's time instead of the
// system clock's.
func SetLogClock(c *Consumer, clk interface{ Now() time.Time }) { c.clock = clk }
