// Package retrytest provides test doubles for package retry, in the manner
// of net/http/httptest: a fake [Clock] whose Sleep advances virtual time at
// once, so tests of code using retry run in microseconds, never sleep on
// real time, and can assert every wait.
//
//	clk := retrytest.NewClock()
//	p, _ := retry.New(retry.Config{Clock: clk})
//	_, err := retry.Do(ctx, p, fn)
//	fmt.Println(clk.Sleeps()) // the waits Do asked for
package retrytest
