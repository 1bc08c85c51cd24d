package homepath

import "testing"

func TestExpand(t *testing.T) {
	for in, want := range map[string]string{
		"~": "/h", "$HOME": "/h", "${HOME}": "/h", "~/a/b": "/h/a/b", "$HOME/x": "/h/x", "${HOME}/x/": "/h/x",
		"~user/x": "~user/x", "$HOMEx/y": "$HOMEx/y", "/abs/$HOME": "/abs/$HOME", "rel": "rel", "": "", "$USER/x": "$USER/x",
	} {
		if got := Expand(in, "/h"); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}
