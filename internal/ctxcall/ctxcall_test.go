package ctxcall

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func canceledText(err error) string { return "canceled: " + err.Error() }

func TestRunReturnsTheResult(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if got := Run(ctx, func() string { return "done" }, canceledText); got != "done" {
		t.Fatalf("Run = %q", got)
	}
	if got := Run(context.Background(), func() string { return "inline" }, canceledText); got != "inline" {
		t.Fatalf("Run without Done = %q", got)
	}
}

func TestRunReturnsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release, finished := make(chan struct{}), make(chan struct{})
	go func() { cancel() }()
	got := Run(ctx, func() string {
		defer close(finished)
		<-release // a call stalled past the cancel
		return "late"
	}, canceledText)
	if got != "canceled: "+context.Canceled.Error() {
		t.Fatalf("Run = %q, want the canceled answer", got)
	}
	close(release)
	<-finished // the abandoned call ends on its own
}

func TestRunHandsBackAPanic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	boom := errors.New("boom")
	defer func() {
		if r := recover(); r != boom {
			t.Fatalf("recovered %v, want the call's panic", r)
		}
	}()
	Run(ctx, func() string { panic(boom) }, canceledText)
	t.Fatal("Run returned after a panic")
}

func TestRunDropsAPanicAfterTheCallerLeft(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release, finished := make(chan struct{}), make(chan struct{})
	cancel()
	Run(ctx, func() string {
		defer close(finished)
		<-release
		panic("after the caller left")
	}, canceledText)
	close(release)
	<-finished // the process is still alive: the panic was dropped
}
