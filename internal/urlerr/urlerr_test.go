package urlerr

import (
	"errors"
	"fmt"
	"net/url"
	"testing"
)

type nilUnwrap struct{ next error }

func (e *nilUnwrap) Error() string { return "nil unwrap" }
func (e *nilUnwrap) Unwrap() error { return e.next } // panics on a nil receiver

func TestCollect(t *testing.T) {
	a := &url.Error{Op: "Get", URL: "https://a.example/?k=1", Err: errors.New("dial")}
	b := &url.Error{Op: "Post", URL: "https://b.example/", Err: errors.New("reset")}
	var typedNil *url.Error
	for name, tc := range map[string]struct {
		err  error
		want []*url.Error
	}{
		"nil":            {nil, nil},
		"plain":          {errors.New("x"), nil},
		"bare":           {a, []*url.Error{a}},
		"wrapped":        {fmt.Errorf("charge: %w", a), []*url.Error{a}},
		"joined":         {errors.Join(a, fmt.Errorf("w: %w", b)), []*url.Error{a, b}},
		"two %w":         {fmt.Errorf("%w and %w", b, a), []*url.Error{b, a}},
		"typed nil":      {fmt.Errorf("w: %w", typedNil), nil},
		"nil receiver":   {fmt.Errorf("w: %w", (*nilUnwrap)(nil)), nil},
		"after a url":    {errors.Join(a, (*nilUnwrap)(nil)), nil}, // the panic drops what was found in the call
		"nested in join": {errors.Join(errors.New("x"), errors.Join(b)), []*url.Error{b}},
	} {
		got := Collect(tc.err, nil)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d errors, want %d", name, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: [%d] = %v, want %v", name, i, got[i], tc.want[i])
			}
		}
	}
}
