package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWeightsFetchRefusesCorruptDownload runs `hpctl weights fetch` against a mirror that
// serves the wrong bytes: refused, and the cache stays empty.
func TestWeightsFetchRefusesCorruptDownload(t *testing.T) {
	dir := isolate(t)
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		_, _ = w.Write([]byte("not the published weights"))
	}))
	defer srv.Close()
	cache := filepath.Join(dir, "cache")
	spec := filepath.Join(dir, "spec.yaml")
	src, err := os.ReadFile("../../configs/urban.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(src), "weights_cache: $HOME/.cache/hpctl/weights", "weights_cache: "+cache, 1)
	if err := os.WriteFile(spec, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := hpctl(t, "weights", "fetch", "--mirror", srv.URL, spec)
	if code != exitFailure || !strings.Contains(stderr, "corrupt") || requests != 1 {
		t.Fatalf("exit %d, %d requests: %s", code, requests, stderr)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Fatalf("the cache holds %v after a corrupt download", entries)
	}

	none := filepath.Join(dir, "none.yaml")
	os.WriteFile(none, []byte(strings.Replace(body, "weights: imagenet", "weights: none", 1)), 0o644)
	stdout, stderr, code := hpctl(t, "weights", "fetch", none)
	if code != 0 || !strings.Contains(stdout, "nothing to fetch") {
		t.Fatalf("weights none: exit %d: %s %s", code, stdout, stderr)
	}
}
