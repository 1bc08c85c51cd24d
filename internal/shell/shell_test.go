package shell

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"python3", "python3"},
		{"/abs/path/train.py", "/abs/path/train.py"},
		{"--gres=gpu:1", "--gres=gpu:1"},
		{"nvcr.io#nvidia/tensorflow:22.02-tf2-py3", "'nvcr.io#nvidia/tensorflow:22.02-tf2-py3'"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"x$(touch PWNED)", "'x$(touch PWNED)'"},
		{"`id`", "'`id`'"},
		{"'; touch PWNED; '", `''\''; touch PWNED; '\'''`},
		{`"$(id)"`, `'"$(id)"'`},
		{"$HOME", "'$HOME'"},
		{"~/x", "'~/x'"},
		{"*", "'*'"},
		{`\`, `'\'`},
		{"{a,b}", "'{a,b}'"},
		{"héllo", "'héllo'"},
		{"FOO=bar", "'FOO=bar'"},
		{"a=b=c", "'a=b=c'"},
		{"=x", "=x"},
		{"if", "'if'"},
		{"time", "'time'"},
		{"!", "'!'"},
		{"-", "-"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestJoin(t *testing.T) {
	got := Join([]string{"echo", "a b", "", "$x"})
	if want := `echo 'a b' '' '$x'`; got != want {
		t.Errorf("Join = %s, want %s", got, want)
	}
}

// TestJoinBash asks bash itself: each word must arrive unaltered and nothing may run.
func TestJoinBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	argv := []string{"time", "FOO=1", "x$(touch PWNED)", "`touch PWNED`", "'; touch PWNED; '",
		`"$(id)"`, "a b", "$HOME", "*", `\`, "~", "{a,b}", "héllo wörld ✓", "", "!x", "a\tb", "line\nbreak", "#c"}
	dir := t.TempDir()
	script := "printf '%s\\0' " + Join(argv)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(argv) {
		t.Fatalf("got %d words %q, want %d", len(got), got, len(argv))
	}
	for i := range argv {
		if got[i] != argv[i] {
			t.Errorf("word %d = %q, want %q", i, got[i], argv[i])
		}
	}
	if ls, _ := exec.Command("ls", "-A", dir).Output(); len(bytes.TrimSpace(ls)) > 0 {
		t.Errorf("quoted words ran something: %s", ls)
	}
}
