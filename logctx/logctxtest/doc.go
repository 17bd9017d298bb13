// Package logctxtest records what code logs, so tests can assert on it: the
// slog counterpart of net/http/httptest.ResponseRecorder.
//
// A Recorder is a slog.Handler that keeps every record as an Entry with
// resolved values and group-qualified keys ("http.status"). Wrap it in a
// logctx.Handler — NewLogger does — to record coordinates and redaction
// exactly as production output would carry them:
//
//	log, rec := logctxtest.NewLogger()
//	svc := payments.New(payments.Config{Logger: log})
//	…
//	d := rec.Decisions()
//	if len(d) != 1 || d[0].String(logctx.KeyReason) != "breaker open" { … }
//
// A Recorder and the handlers derived from it with WithAttrs and WithGroup
// share one list of entries, safe for concurrent use.
package logctxtest
