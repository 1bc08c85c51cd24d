package weights_test

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/transport"
	"github.com/hpctl/hpctl/weights"
)

// server serves content as every file and counts the requests.
type server struct {
	*httptest.Server
	requests atomic.Int32
}

func newServer(t *testing.T, content []byte) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		_, _ = w.Write(content)
	}))
	t.Cleanup(s.Close)
	return s
}

func testFile(t *testing.T) ([]byte, weights.Manifest) {
	data := make([]byte, 300_000)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	return data, weights.Manifest{
		"resnet50": {File: "resnet50_test_notop.h5", URL: "https://example.invalid/keras/resnet50_test_notop.h5", MD5: hex.EncodeToString(sum[:])},
		"tiny":     {File: "tiny_notop.h5", URL: "https://example.invalid/keras/tiny_notop.h5", Size: int64(len(data))},
	}
}

func contract(t *testing.T, tr transport.Transport, cache string) {
	ctx := context.Background()
	data, m := testFile(t)
	srv := newServer(t, data)
	opts := weights.Options{Manifest: m, BaseURL: srv.URL + "/mirror", HTTPClient: srv.Client(), TempDir: t.TempDir()}

	// Missing: downloaded once, verified, placed.
	out, err := weights.Ensure(ctx, tr, cache, "resnet50", opts)
	if err != nil {
		t.Fatal(err)
	}
	if out.Present || out.Bytes != int64(len(data)) || srv.requests.Load() != 1 {
		t.Fatalf("first Ensure: %+v, %d requests", out, srv.requests.Load())
	}
	got, err := tr.ReadFile(ctx, out.Path)
	if err != nil || string(got) != string(data) {
		t.Fatalf("cache file: %d bytes, %v", len(got), err)
	}
	// Present: reused, no request.
	out, err = weights.Ensure(ctx, tr, cache, "resnet50", opts)
	if err != nil || !out.Present || srv.requests.Load() != 1 {
		t.Fatalf("second Ensure: %+v, %v, %d requests", out, err, srv.requests.Load())
	}
	// Size-only entry works too.
	if out, err := weights.Ensure(ctx, tr, cache, "tiny", opts); err != nil || out.Present {
		t.Fatalf("size-only entry: %+v %v", out, err)
	}
	// A damaged cache file is replaced.
	if _, err := tr.Run(ctx, []string{"sh", "-c", `printf x >> "$1"`, "sh", out.Path}, nil); err != nil {
		t.Fatal(err)
	}
	out, err = weights.Ensure(ctx, tr, cache, "resnet50", opts)
	if err != nil || out.Present || !out.Replaced {
		t.Fatalf("damaged cache file: %+v %v", out, err)
	}
	if got, _ := tr.ReadFile(ctx, out.Path); string(got) != string(data) {
		t.Fatal("damaged cache file not replaced")
	}
	noTemp(t, tr, filepath.Dir(out.Path))
	if n, _ := os.ReadDir(opts.TempDir); len(n) != 0 {
		t.Errorf("download temp files left here: %v", n)
	}

	// Corrupt download: refused, nothing under the final name, no temporary file.
	bad := append([]byte(nil), data...)
	bad[1000] ^= 0xff
	corrupt := newServer(t, bad)
	cache2 := cache + "-2"
	opts.BaseURL, opts.HTTPClient = corrupt.URL, corrupt.Client()
	_, err = weights.Ensure(ctx, tr, cache2, "resnet50", opts)
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "md5") {
		t.Fatalf("corrupt download: %v", err)
	}
	if _, err := tr.ReadFile(ctx, filepath.Join(cache2, m["resnet50"].File)); !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("corrupt download reached the cache: %v", err)
	}
	noTemp(t, tr, cache2)
	if n, _ := os.ReadDir(opts.TempDir); len(n) != 0 {
		t.Errorf("download temp files left here: %v", n)
	}
	// A truncated one too (size-only entry).
	short := newServer(t, data[:1000])
	opts.BaseURL, opts.HTTPClient = short.URL, short.Client()
	if _, err := weights.Ensure(ctx, tr, cache2, "tiny", opts); err == nil {
		t.Fatal("truncated download accepted")
	}
	// Unknown backbone: a usage error naming the known ones.
	if _, err := weights.Ensure(ctx, tr, cache, "vgg99", opts); !errors.Is(err, errkind.ErrUsage) || !strings.Contains(err.Error(), "resnet50") {
		t.Fatalf("unknown backbone: %v", err)
	}
}

// noTemp asserts dir holds no .part- file (a missing dir is fine).
func noTemp(t *testing.T, tr transport.Transport, dir string) {
	t.Helper()
	res, err := tr.Run(context.Background(), []string{"sh", "-c", `ls -A "$1" 2>/dev/null || true`, "sh", dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(res.Stdout), ".part-") {
		t.Errorf("temporary file left in %s: %s", dir, res.Stdout)
	}
}

func TestEnsureLocal(t *testing.T) {
	contract(t, transport.NewLocal(), filepath.Join(t.TempDir(), "cache"))
}

func TestEnsureSSH(t *testing.T) {
	cfg, host := testenv.RequireSSH(t)
	tr := transport.NewSSH(host, transport.SSHOptions{ConfigFile: cfg, ControlDir: testenv.ControlDir(t)})
	defer tr.Close()
	contract(t, tr, filepath.Join(t.TempDir(), "cache"))
}

func TestEmbeddedManifest(t *testing.T) {
	m, err := weights.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"resnet50", "mobilenetv2", "efficientnetb0"} {
		if _, ok := m[b]; !ok {
			t.Errorf("weights.json lacks %s", b)
		}
	}
}

func TestHomeRelativeCache(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	data, m := testFile(t)
	srv := newServer(t, data)
	out, err := weights.Ensure(context.Background(), transport.NewLocal(), "$HOME/.cache/hpctl/weights", "resnet50",
		weights.Options{Manifest: m, BaseURL: srv.URL, HTTPClient: srv.Client(), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if out.Path != filepath.Join(home, ".cache/hpctl/weights", m["resnet50"].File) {
		t.Errorf("path %s", out.Path)
	}
}
