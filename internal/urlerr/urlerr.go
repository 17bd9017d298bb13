// Package urlerr finds the *url.Error values in an error's tree, for the
// packages that keep the URLs they hold (user info, query and fragment may
// carry credentials) out of their logs.
package urlerr

import "net/url"

// Collect appends the *url.Error values of err's tree to out, as errors.As
// walks it (Unwrap() error and Unwrap() []error), and returns out. When an
// Unwrap method panics (a method on a nil pointer receiver), it returns out
// as it was before the call.
func Collect(err error, out []*url.Error) (ues []*url.Error) {
	defer func() {
		if recover() != nil {
			ues = out
		}
	}()
	return walk(err, out)
}

func walk(err error, out []*url.Error) []*url.Error {
	for err != nil {
		if ue, ok := err.(*url.Error); ok {
			if ue == nil {
				return out
			}
			out = append(out, ue)
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				out = walk(e, out)
			}
			return out
		default:
			return out
		}
	}
	return out
}
