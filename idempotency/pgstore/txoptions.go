package pgstore

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// checkTxOptions refuses the transaction options DoTx cannot work with
// (see Config.TxOptions).
func checkTxOptions(o pgx.TxOptions) error {
	switch o.IsoLevel {
	case "", pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted, pgx.ReadUncommitted:
	default:
		return invalidConfig("TxOptions", fmt.Sprintf("IsoLevel must be empty or one of pgx's isolation levels, got %q", o.IsoLevel))
	}
	switch o.AccessMode {
	case "", pgx.ReadWrite:
	case pgx.ReadOnly:
		return invalidConfig("TxOptions", "AccessMode must not be read only: DoTx writes the completed record in the transaction")
	default:
		return invalidConfig("TxOptions", fmt.Sprintf("AccessMode must be empty or pgx.ReadWrite, got %q", o.AccessMode))
	}
	switch o.DeferrableMode {
	case "", pgx.Deferrable, pgx.NotDeferrable:
	default:
		return invalidConfig("TxOptions", fmt.Sprintf("DeferrableMode must be empty or one of pgx's deferrable modes, got %q", o.DeferrableMode))
	}
	if o.BeginQuery != "" {
		if o.IsoLevel != "" || o.AccessMode != "" || o.DeferrableMode != "" {
			return invalidConfig("TxOptions.BeginQuery", "must not be combined with IsoLevel, AccessMode or DeferrableMode, which pgx ignores when it is set: put them in BeginQuery")
		}
		if why := checkBeginQuery(o.BeginQuery); why != "" {
			return invalidConfig("TxOptions.BeginQuery", why+", got "+fmt.Sprintf("%q", o.BeginQuery))
		}
	}
	if o.CommitQuery != "" {
		w := sqlWords(o.CommitQuery)
		ok := len(w) >= 1 && len(w) <= 2 && (w[0] == "commit" || w[0] == "end") &&
			(len(w) == 1 || w[1] == "work" || w[1] == "transaction")
		if !ok {
			return invalidConfig("TxOptions.CommitQuery", fmt.Sprintf("must be empty or COMMIT: DoTx reports success once it returns, got %q", o.CommitQuery))
		}
	}
	return nil
}

// checkBeginQuery returns why q cannot begin DoTx's transactions, or "".
func checkBeginQuery(q string) string {
	w := sqlWords(q)
	if !(len(w) >= 1 && w[0] == "begin" || len(w) >= 2 && w[0] == "start" && w[1] == "transaction") {
		return "must start with BEGIN or START TRANSACTION"
	}
	for i, word := range w {
		if word == "read" && i+1 < len(w) && w[i+1] == "only" || strings.Contains(word, "read_only") {
			return "must not make the transaction read only: DoTx writes the completed record in the transaction"
		}
		if i > 0 && w[i-1] == ";" {
			switch word {
			case "commit", "end", "rollback", "abort":
				return "must not end the transaction it begins"
			case "prepare":
				if i+1 < len(w) && w[i+1] == "transaction" {
					return "must not end the transaction it begins"
				}
			}
		}
	}
	return ""
}

// sqlWords splits SQL text into lower-case words ([a-z0-9_$] runs, quoted
// identifiers unquoted) and ";" separators, dropping comments, string
// literals and other punctuation. It is a lexer for checking a
// configuration's few statements, not a parser.
func sqlWords(q string) []string {
	var w []string
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			if j := strings.IndexByte(q[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(q)
			}
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			// PostgreSQL's block comments nest.
			depth := 0
			for i < len(q) {
				if strings.HasPrefix(q[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(q[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		case c == '\'':
			// A literal ('' is a quote inside it; an E'' literal's
			// backslash escapes one).
			esc := i > 0 && (q[i-1] == 'e' || q[i-1] == 'E')
			for i++; i < len(q); i++ {
				if esc && q[i] == '\\' {
					i++
				} else if q[i] == '\'' {
					if i+1 < len(q) && q[i+1] == '\'' {
						i++
					} else {
						break
					}
				}
			}
			i++
		case c == '"':
			j := strings.IndexByte(q[i+1:], '"')
			if j < 0 {
				j = len(q) - i - 1
			}
			w = append(w, strings.ToLower(q[i+1:i+1+j]))
			i += j + 2
		case c == '$' && dollarTag(q[i:]) != "":
			tag := dollarTag(q[i:])
			i += len(tag)
			if j := strings.Index(q[i:], tag); j >= 0 {
				i += j + len(tag)
			} else {
				i = len(q)
			}
		case c == ';':
			w = append(w, ";")
			i++
		case isWordByte(c):
			j := i
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			w = append(w, strings.ToLower(q[i:j]))
			i = j
		default:
			i++
		}
	}
	return w
}

// dollarTag returns the $tag$ opening a dollar-quoted literal at the start
// of s, or "".
func dollarTag(s string) string {
	for j := 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '$':
			return s[:j+1]
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 1 && c >= '0' && c <= '9' || c >= 0x80:
		default:
			return ""
		}
	}
	return ""
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
