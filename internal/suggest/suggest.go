// Package suggest finds the name a user probably meant: "did you mean --watch?" for a
// flag, a command, a spec key or a setting. One distance and one notion of "close enough"
// for every place hpctl suggests, so a typo is caught the same way everywhere.
package suggest

import "strings"

// Nearest returns the candidate closest to typed when it is close enough to be what was
// meant (a transposition, a missing or extra letter or two, or a prefix), else "".
// Leading dashes and letter case are ignored when comparing; the candidate is returned
// as given.
func Nearest(typed string, candidates []string) string {
	best, bestD := "", -1
	bare := strings.ToLower(strings.TrimLeft(typed, "-"))
	for _, c := range candidates {
		cb := strings.ToLower(strings.TrimLeft(c, "-"))
		d := Distance(bare, cb)
		if len(bare) >= 2 && strings.HasPrefix(cb, bare) {
			d = 1
		}
		// At most one edit in three letters: "-x" is not "-o", "stauts" is "status".
		if 3*d > max(len(bare), len(cb)) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// Distance is the optimal string alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent letters each count one.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
