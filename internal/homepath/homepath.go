// Package homepath is the one rule for home-relative paths in specs: a leading ~, $HOME or
// ${HOME}, alone or followed by /, means the cluster user's home; every other $ is
// literal (specs are data, not shell). The trainer applies the same rule on the node
// (trainer/hpctl_trainer/spec.py expand).
package homepath

import (
	"path"
	"strings"
)

var prefixes = []string{"~", "$HOME", "${HOME}"}

// Split returns what follows the home reference ("" or a string starting with /) and
// true, or p and false when p does not start with one.
func Split(p string) (rest string, ok bool) {
	for _, prefix := range prefixes {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return p[len(prefix):], true
		}
	}
	return p, false
}

// Expand replaces a leading home reference with home.
func Expand(p, home string) string {
	rest, ok := Split(p)
	if !ok {
		return p
	}
	if rest == "" {
		return home
	}
	return path.Join(home, rest[1:])
}
