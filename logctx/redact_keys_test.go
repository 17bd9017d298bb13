package logctx

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// groupValuer logs a group whose member's key is a card number.
type groupValuer struct{}

func (groupValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("4111 1111 1111 1111", 1))
}

// Attribute and group keys were not scanned for card numbers, values
// were: slog.Int("4111 1111 1111 1111", 1) printed the card number as
// its key, as did a group's name, a WithGroup name and the keys inside
// a group. Keys are now masked as values are, in both handlers, and the
// JSON output stays valid.
func TestRedactCardNumberInKeys(t *testing.T) {
	const pan = "4111 1111 1111 1111"
	for name, log := range map[string]func(*slog.Logger){
		"attr":              func(l *slog.Logger) { l.Info("m", slog.Int(pan, 1)) },
		"string attr":       func(l *slog.Logger) { l.Info("m", slog.String(pan, "v")) },
		"group name":        func(l *slog.Logger) { l.Info("m", slog.Group(pan, "a", 1)) },
		"key in a group":    func(l *slog.Logger) { l.Info("m", slog.Group("g", slog.Int(pan, 1))) },
		"inline group":      func(l *slog.Logger) { l.Info("m", slog.Group("", slog.Int(pan, 1))) },
		"WithAttrs":         func(l *slog.Logger) { l.With(slog.Int(pan, 1)).Info("m") },
		"WithGroup":         func(l *slog.Logger) { l.WithGroup(pan).Info("m", "a", 1) },
		"WithGroup attr":    func(l *slog.Logger) { l.WithGroup("g").Info("m", slog.Int(pan, 1)) },
		"attr as a value":   func(l *slog.Logger) { l.Info("m", "v", slog.Int(pan, 1)) },
		"attr in a list":    func(l *slog.Logger) { l.Info("m", "v", []any{slog.Group("g", slog.Int(pan, 1))}) },
		"LogValuer group":   func(l *slog.Logger) { l.Info("m", "v", groupValuer{}) },
		"LogValuer in list": func(l *slog.Logger) { l.Info("m", "v", []any{groupValuer{}}) },
	} {
		for hname, mk := range map[string]func(testing.TB, HandlerConfig) (*slog.Logger, *bytes.Buffer){
			"json": newJSONLogger, "text": newTextLogger,
		} {
			t.Run(name+"/"+hname, func(t *testing.T) {
				l, buf := mk(t, HandlerConfig{})
				log(l)
				out := buf.String()
				if strings.Contains(out, pan) {
					t.Errorf("card number leaked in a key: %s", out)
				}
				if !strings.Contains(out, "**** **** **** 1111") {
					t.Errorf("masked key lost: %s", out)
				}
				if hname == "json" && !json.Valid(bytes.TrimSpace(buf.Bytes())) {
					t.Errorf("invalid JSON: %s", out)
				}
			})
		}
	}
	t.Run("NoCardScan", func(t *testing.T) {
		l, buf := newJSONLogger(t, HandlerConfig{NoCardScan: true})
		l.Info("m", slog.Int(pan, 1))
		if !strings.Contains(buf.String(), `"`+pan+`":1`) {
			t.Errorf("NoCardScan: the key was changed: %s", buf.String())
		}
	})
}
