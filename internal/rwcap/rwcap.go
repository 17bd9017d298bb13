// Package rwcap tells which optional capabilities an http.ResponseWriter
// really has, as http.ResponseController finds them (on the writer or on
// one it unwraps to), for the middlewares whose writers must offer a
// capability only when the writer they wrap has it: a Flush that does
// nothing would tell a streaming handler its bytes were on their way.
package rwcap

import "net/http"

// CanFlush reports whether http.ResponseController finds a way to flush w:
// a FlushError or Flush method, on w or on a writer it unwraps to.
func CanFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// CanHijack reports whether http.ResponseController finds a way to hijack
// w: a Hijack method, on w or on a writer it unwraps to.
func CanHijack(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}
