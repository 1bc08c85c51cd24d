package predict

import (
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
)

func writePNG(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, image.NewRGBA(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
}

func TestImagesExpandsFilesFoldersAndPatterns(t *testing.T) {
	d := t.TempDir()
	for _, p := range []string{"val/b/2.png", "val/a/1.PNG", "val/a/0.png", "val/.hidden/x.png", "val/.y.png", "one.png"} {
		writePNG(t, filepath.Join(d, p))
	}
	if err := os.WriteFile(filepath.Join(d, "val", "a", "notes.txt"), []byte("skip me"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Images([]string{filepath.Join(d, "one.png"), filepath.Join(d, "val"), filepath.Join(d, "val", "a", "*.png")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"one.png", "val/a/0.png", "val/a/1.PNG", "val/b/2.png", "val/a/0.png"}
	for i := range want {
		want[i] = filepath.Join(d, want[i])
	}
	if !slices.Equal(got, want) {
		t.Errorf("Images = %q, want %q", got, want)
	}
}

func TestImagesRefusesWhatIsNoImage(t *testing.T) {
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "fake.png"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(d, "bad")
	writePNG(t, filepath.Join(bad, "ok.png"))
	if err := os.WriteFile(filepath.Join(bad, "cut.jpg"), []byte{0xff, 0xd8, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		arg  string
		kind error
		msg  string
	}{
		{filepath.Join(d, "missing.png"), errkind.ErrNotFound, "does not exist"},
		{filepath.Join(d, "*.jpeg"), errkind.ErrNotFound, "no file matches"},
		{filepath.Join(d, "empty"), errkind.ErrUsage, "holds no images"},
		{filepath.Join(d, "fake.png"), errkind.ErrUsage, "is not an image"},
		{bad, errkind.ErrUsage, "cut.jpg is not an image"},
	} {
		_, err := Images([]string{c.arg})
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Images(%s): %v, want %v saying %q", c.arg, err, c.kind, c.msg)
		}
	}
}

func TestReaderTakesLinesInAnySplit(t *testing.T) {
	out := `{"image": "/s/images/00000-a.png", "label": "urban", "class_index": 1, "probability": 0.9, "probabilities": {"rural": 0.1, "urban": 0.9}, "logit": 2.2}
TensorFlow says hello
{"image": "/s/images/00001-b.png", "label": "rural", "class_index": 0, "probability": 0.8, "probabilities": {"rural": 0.8, "urban": 0.2}, "logit": -1.4}
{"done": 2}
`
	for _, step := range []int{1, 7, len(out)} {
		var got []Prediction
		var noise strings.Builder
		r := &reader{images: map[string]string{"/s/images/00000-a.png": "photos/a.png"}, on: func(p Prediction) { got = append(got, p) }, noise: &noise}
		for i := 0; i < len(out); i += step {
			if err := r.feed([]byte(out[i:min(i+step, len(out))])); err != nil {
				t.Fatal(err)
			}
		}
		if !r.done || len(got) != 2 || got[0].Image != "photos/a.png" || got[1].Image != "/s/images/00001-b.png" ||
			got[0].Label != "urban" || *got[1].Logit != -1.4 || noise.String() != "TensorFlow says hello\n" {
			t.Errorf("step %d: done %v, %+v, noise %q", step, r.done, got, noise.String())
		}
	}
	r := &reader{}
	if err := r.feed([]byte("{\"done\": 3}\n")); err == nil {
		t.Error("a done mark counting images that never came was taken")
	}
	if err := r.feed([]byte("{\"image\": \"x\"}\n")); err == nil {
		t.Error("a prediction without label was taken")
	}
}
