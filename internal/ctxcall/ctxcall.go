// Package ctxcall runs a blocking call that does not honour its context
// (go-redis waiting for a reply ignores a cancel) so that the caller still
// returns as soon as the context is done.
package ctxcall

import "context"

// Run calls f on a goroutine of its own and returns its result, or
// canceled(ctx.Err()) as soon as ctx is done, abandoning f: it ends on its
// own, and its result is dropped. A panic in f is handed back and re-raised
// on the caller's goroutine, where a synchronous call would have raised it
// (and where the caller's recover sees it); once the caller has left, it is
// dropped with the call instead of ending the process. A context that can
// never be done runs f on the caller's goroutine.
func Run[T any](ctx context.Context, f func() T, canceled func(error) T) T {
	if ctx.Done() == nil {
		return f()
	}
	type outcome struct {
		v        T
		panicked any
	}
	done := make(chan outcome, 1) // the abandoned call leaves its outcome here
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{panicked: p}
			}
		}()
		done <- outcome{v: f()}
	}()
	select {
	case o := <-done:
		if o.panicked != nil {
			panic(o.panicked)
		}
		return o.v
	case <-ctx.Done():
		return canceled(ctx.Err())
	}
}
