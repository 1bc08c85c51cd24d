// Package weights makes sure a backbone's published ImageNet weights file is in a cache
// folder on the cluster's shared file system before jobs need it: compute nodes often
// have no internet. The file is downloaded where hpctl runs (login node or laptop),
// checked against the checksum Keras publishes, and placed through the transport under a
// temporary name that is renamed only after the cluster side checked it again, so a
// failed or corrupt download never sits in the cache under its final name.
//
// The list of files, URLs and checksums is the trainer's weights.json (embedded in
// hpctl), so the Go side and the trainer never disagree.
package weights

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/homepath"
	"github.com/hpctl/hpctl/trainer"
	"github.com/hpctl/hpctl/transport"
)

// Entry is one backbone's published no-top weights file. At least one of MD5, SHA256 and
// Size is set: Keras publishes an MD5 for most files and only a size for some.
type Entry struct {
	File   string `json:"file"`
	URL    string `json:"url"`
	MD5    string `json:"md5,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size,omitempty"`
}

// Manifest maps backbone names to their weights files.
type Manifest map[string]Entry

// Load reads the manifest embedded from trainer/weights.json.
func Load() (Manifest, error) {
	b, err := trainer.FS.ReadFile("weights.json")
	if err != nil {
		return nil, fmt.Errorf("weights.json: %w", err)
	}
	return Parse(b)
}

// Parse reads a manifest and checks every entry can be verified.
func Parse(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("weights.json: %w", err)
	}
	for name, e := range m {
		if e.File == "" || e.File != path.Base(e.File) || e.URL == "" {
			return nil, fmt.Errorf("weights.json: %s: needs a plain file name and a url", name)
		}
		if e.MD5 == "" && e.SHA256 == "" && e.Size <= 0 {
			return nil, fmt.Errorf("weights.json: %s: no md5, sha256 or size to check the file against", name)
		}
	}
	return m, nil
}

// Backbones lists the manifest's backbones, sorted.
func (m Manifest) Backbones() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Options tune Ensure.
type Options struct {
	// Manifest replaces the embedded weights.json (tests bring their own files).
	Manifest Manifest
	// BaseURL, when set, replaces everything before the file name in the published URL
	// (a local mirror, or a test server).
	BaseURL string
	// HTTPClient downloads; nil is http.DefaultClient.
	HTTPClient *http.Client
	// TempDir holds the download on this machine; empty is os.TempDir().
	TempDir string
	// Progress receives bytes downloaded and the expected total (-1 when unknown).
	Progress func(done, total int64)
}

// Outcome says what Ensure found and did.
type Outcome struct {
	Backbone string `json:"backbone"`
	// Path is the weights file on the cluster.
	Path string `json:"path"`
	// Present: the cache already held a verified copy; nothing was downloaded.
	Present bool `json:"present"`
	// Replaced: the cache held a copy that failed verification, now replaced.
	Replaced bool   `json:"replaced,omitempty"`
	Bytes    int64  `json:"bytes_downloaded"`
	URL      string `json:"url,omitempty"`
}

// Ensure makes <cacheDir>/<file> on the cluster hold the verified weights of backbone.
// cacheDir may start with ~/ or $HOME/ (the cluster user's home). One command checks an
// existing file; otherwise the file is downloaded here, verified, and placed atomically.
func Ensure(ctx context.Context, tr transport.Transport, cacheDir, backbone string, opts Options) (Outcome, error) {
	out := Outcome{Backbone: backbone}
	m := opts.Manifest
	if m == nil {
		var err error
		if m, err = Load(); err != nil {
			return out, err
		}
	}
	e, ok := m[backbone]
	if !ok {
		return out, fmt.Errorf("%w: no published ImageNet weights for backbone %q (known: %s)", errkind.ErrUsage, backbone, strings.Join(m.Backbones(), ", "))
	}
	if cacheDir == "" {
		return out, fmt.Errorf("%w: no weights cache directory (model.weights_cache)", errkind.ErrUsage)
	}
	if strings.HasPrefix(cacheDir, "~") || strings.HasPrefix(cacheDir, "$HOME") || strings.HasPrefix(cacheDir, "${HOME}") {
		home, err := tr.Home(ctx)
		if err != nil {
			return out, fmt.Errorf("weights cache %s: %w", cacheDir, err)
		}
		cacheDir = homepath.Expand(cacheDir, home)
	}
	if !path.IsAbs(cacheDir) {
		return out, fmt.Errorf("%w: weights cache %q is not an absolute path on the cluster", errkind.ErrUsage, cacheDir)
	}
	out.Path = path.Join(cacheDir, e.File)

	ok, present, err := checkRemote(ctx, tr, out.Path, e)
	if err != nil {
		return out, err
	}
	if ok {
		out.Present = true
		return out, nil
	}
	out.Replaced = present

	out.URL = e.URL
	if opts.BaseURL != "" {
		out.URL = strings.TrimRight(opts.BaseURL, "/") + "/" + url.PathEscape(e.File)
	}
	tmp, n, err := download(ctx, out.URL, e, backbone, opts)
	out.Bytes = n
	if err != nil {
		return out, err
	}
	defer os.Remove(tmp)
	if err := place(ctx, tr, tmp, out.Path, e); err != nil {
		return out, err
	}
	return out, nil
}

// checkScript prints the file's size, then its md5 and sha256 when asked ($2, $3 = 1):
// one command whatever is checked. Exit 66: no such file.
const checkScript = `[ -f "$1" ] || exit 66
wc -c < "$1"
if [ "$2" = 1 ]; then md5sum < "$1"; fi
if [ "$3" = 1 ]; then sha256sum < "$1"; fi`

// checkRemote reports whether p exists on the cluster (present) and matches e (ok).
func checkRemote(ctx context.Context, tr transport.Transport, p string, e Entry) (ok, present bool, err error) {
	res, err := tr.Run(ctx, []string{"sh", "-c", checkScript, "sh", p, flag(e.MD5 != ""), flag(e.SHA256 != "")}, nil)
	if err != nil {
		return false, false, fmt.Errorf("checking %s on the cluster: %w", p, err)
	}
	if res.ExitCode == 66 {
		return false, false, nil
	}
	if res.ExitCode != 0 {
		return false, false, fmt.Errorf("checking %s on the cluster: exit %d: %s", p, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	lines := strings.Fields(string(res.Stdout))
	// wc -c prints the size; md5sum/sha256sum print "<hex>  -".
	var vals []string
	for _, f := range lines {
		if f != "-" {
			vals = append(vals, f)
		}
	}
	if len(vals) == 0 {
		return false, true, nil
	}
	size, _ := strconv.ParseInt(vals[0], 10, 64)
	got := sums{size: size}
	i := 1
	if e.MD5 != "" && i < len(vals) {
		got.md5 = vals[i]
		i++
	}
	if e.SHA256 != "" && i < len(vals) {
		got.sha256 = vals[i]
	}
	return got.match(e) == nil, true, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

type sums struct {
	size        int64
	md5, sha256 string
}

// match says which published value the file fails, if any.
func (s sums) match(e Entry) error {
	switch {
	case e.MD5 != "" && !strings.EqualFold(s.md5, e.MD5):
		return fmt.Errorf("md5 %s, published %s", s.md5, e.MD5)
	case e.SHA256 != "" && !strings.EqualFold(s.sha256, e.SHA256):
		return fmt.Errorf("sha256 %s, published %s", s.sha256, e.SHA256)
	case e.Size > 0 && s.size != e.Size:
		return fmt.Errorf("%d bytes, published %d", s.size, e.Size)
	}
	return nil
}

// download fetches u into a temporary file here and verifies it; on any failure the
// temporary file is gone.
func download(ctx context.Context, u string, e Entry, backbone string, opts Options) (string, int64, error) {
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, fmt.Errorf("weights for %s: %w", backbone, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("downloading %s weights from %s: %w", backbone, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("downloading %s weights from %s: %s", backbone, u, resp.Status)
	}
	f, err := os.CreateTemp(opts.TempDir, "hpctl-weights-*")
	if err != nil {
		return "", 0, fmt.Errorf("weights download: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	hm, hs := md5.New(), sha256.New()
	w := io.MultiWriter(f, hm, hs)
	var body io.Reader = resp.Body
	if opts.Progress != nil {
		body = &progressReader{r: resp.Body, total: resp.ContentLength, fn: opts.Progress}
	}
	n, err := io.Copy(w, body)
	if err != nil {
		return "", n, fmt.Errorf("downloading %s weights from %s: %w", backbone, u, err)
	}
	if err := f.Close(); err != nil {
		return "", n, fmt.Errorf("weights download: %w", err)
	}
	got := sums{size: n, md5: hexSum(hm), sha256: hexSum(hs)}
	if err := got.match(e); err != nil {
		return "", n, fmt.Errorf("the %s weights downloaded from %s are corrupt or not the published file (%v); nothing was placed in the cache", backbone, u, err)
	}
	ok = true
	return f.Name(), n, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.fn(p.done, p.total)
	return n, err
}

// placeScript writes stdin to a temporary name beside $1, checks size and checksum there
// (a cut connection must not leave a short file), and renames it to $1. Exit 68: the
// copy on the cluster does not match.
const placeScript = `set -e
d=$(dirname -- "$1")
mkdir -p -- "$d"
t=$(mktemp "$d/.$(basename -- "$1").part-XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat > "$t"
[ "$(wc -c < "$t" | tr -d ' ')" = "$2" ] || { echo "size differs after the copy" >&2; exit 68; }
if [ -n "$3" ]; then [ "$(md5sum < "$t" | cut -d' ' -f1)" = "$3" ] || { echo "md5 differs after the copy" >&2; exit 68; }; fi
if [ -n "$4" ]; then [ "$(sha256sum < "$t" | cut -d' ' -f1)" = "$4" ] || { echo "sha256 differs after the copy" >&2; exit 68; }; fi
chmod 644 "$t"
mv -f -- "$t" "$1"`

// place streams the verified local file to the cluster (for SSH, through the master
// connection) and renames it into the cache there.
func place(ctx context.Context, tr transport.Transport, local, remote string, e Entry) error {
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	// The cluster checks what it received against what was verified here.
	md5hex, shahex, err := fileSums(local)
	if err != nil {
		return err
	}
	if e.MD5 == "" {
		md5hex = ""
	}
	if e.SHA256 == "" {
		shahex = ""
	}
	res, err := tr.Run(ctx, []string{"sh", "-c", placeScript, "sh", remote, strconv.FormatInt(fi.Size(), 10), md5hex, shahex}, f)
	if err != nil {
		return fmt.Errorf("placing %s on the cluster: %w", remote, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("placing %s on the cluster: exit %d: %s", remote, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

func fileSums(p string) (string, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", "", fmt.Errorf("weights: %w", err)
	}
	defer f.Close()
	hm, hs := md5.New(), sha256.New()
	if _, err := io.Copy(io.MultiWriter(hm, hs), f); err != nil {
		return "", "", fmt.Errorf("weights: %w", err)
	}
	return hexSum(hm), hexSum(hs), nil
}

// Needed reports whether a spec's model.weights names published ImageNet weights (the only ones
// Ensure fetches; "none" and a path of the user's need nothing).
func Needed(modelWeights string) bool { return modelWeights == "imagenet" }
