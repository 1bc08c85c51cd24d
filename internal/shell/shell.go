// Package shell quotes text for bash so that a value becomes exactly one word and is never
// expanded: no parameter, command, arithmetic, tilde, brace or glob expansion, no word
// splitting, no reserved-word or assignment parsing.
package shell

import "strings"

// Quote returns s as one POSIX shell word that evaluates to s. Words made only of
// characters that no shell treats specially are returned as is, so rendered scripts stay
// readable; everything else is single-quoted, each single quote closing the quoted
// text, escaped with a backslash, and reopening it.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isPlain(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes every word of argv and joins them with spaces: a command line that runs argv
// exactly.
func Join(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// reserved are bash's reserved words: unquoted in command position they change the
// grammar (an argv of ["time", ...] must not time the rest of the line).
var reserved = map[string]bool{
	"!": true, "[[": true, "]]": true, "{": true, "}": true, "case": true, "coproc": true,
	"do": true, "done": true, "elif": true, "else": true, "esac": true, "fi": true,
	"for": true, "function": true, "if": true, "in": true, "select": true, "then": true,
	"time": true, "until": true, "while": true,
}

func isPlain(s string) bool {
	if reserved[s] {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("_@+:,./=-", r):
		default:
			return false
		}
	}
	// NAME=value in command position is an assignment, not a command.
	if i := strings.IndexByte(s, '='); i > 0 && isName(s[:i]) {
		return false
	}
	return true
}

func isName(s string) bool {
	for i, r := range s {
		letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}
