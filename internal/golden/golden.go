// Package golden compares test output with files under testdata/, in the manner of
// goreleaser's internal/golden: `go test ./pkg -update` rewrites them, and the diff of
// the golden files is then reviewed like code.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the current output")

// RequireEqual fails t unless got equals testdata/<name>.golden; with -update it writes
// the file instead.
func RequireEqual(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the output; if the change is intended, run go test with -update and review the diff.\n--- got ---\n%s", path, got)
	}
}
