package suggest

import "testing"

func TestNearest(t *testing.T) {
	names := []string{"--watch", "--trials", "--output", "status", "submit", "poll-interval", "partition"}
	for typed, want := range map[string]string{
		"--wacth":      "--watch", // transposition
		"--watc":       "--watch", // prefix
		"stauts":       "status",
		"sbumit":       "submit",
		"-x":           "", // one letter is nothing like any flag
		"pol-interval": "poll-interval",
		"Partition":    "partition", // case
		"account":      "",
		"":             "",
	} {
		if got := Nearest(typed, names); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", typed, got, want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "abc", 0}, {"ab", "ba", 1}, {"kitten", "sitting", 3}, {"", "abc", 3}, {"é", "e", 1}} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
