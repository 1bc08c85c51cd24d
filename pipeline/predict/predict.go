// Package predict classifies images with a trained stage's checkpoint, as the published
// notebook's detect_img does at its end, but with the backbone's own preprocessing (as
// training and evaluation) and the checkpoint's recorded class names. It runs the
// trainer's `train.py predict --jsonl`: on this machine with a local TensorFlow (Local),
// or on the cluster as a short job in the stage's container (Remote).
package predict

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // decoders the trainer's tf.io.decode_image also reads
	_ "image/jpeg" //
	_ "image/png"  //
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	_ "golang.org/x/image/bmp" // BMP, as tf.io.decode_image

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
)

// Prediction is one image's class, as the trainer reports it.
type Prediction struct {
	// Image is the image's path as given (or found in a folder given).
	Image string `json:"image"`
	// Label is the class name; ClassIndex its index in the sorted class names.
	Label      string `json:"label"`
	ClassIndex int    `json:"class_index"`
	// Probability is Label's probability: sigmoid(logit) or 1 - sigmoid(logit) for two
	// classes, the softmax output for more.
	Probability float64 `json:"probability"`
	// Probabilities are every class's, by name.
	Probabilities map[string]float64 `json:"probabilities"`
	// Logit is the two-class model's Dense(1) output: positive is class_names[1]; nil for
	// a softmax model.
	Logit *float64 `json:"logit"`
}

// ImageExts are the extensions Images takes from a folder: the trainer's (data.py).
var ImageExts = []string{".jpg", ".jpeg", ".png", ".bmp", ".gif"}

// Images expands the command line's IMAGE arguments: a file is itself, a folder is every
// image file under it (by extension, sorted by path, hidden ones skipped), a pattern
// (*, ?, [) is its matches, each expanded the same way. Every file is checked to be an
// image whose format the trainer decodes, so a bad one is refused before anything runs.
// A missing file or a pattern matching nothing is errkind.ErrNotFound; a folder without
// images, or a file that is no image, is errkind.ErrUsage.
func Images(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		paths := []string{a}
		if strings.ContainsAny(a, "*?[") {
			m, err := filepath.Glob(a)
			if err != nil {
				return nil, fmt.Errorf("%w: pattern %q: %w", errkind.ErrUsage, a, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("no file matches %q: %w", a, errkind.ErrNotFound)
			}
			paths = m
		}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("image %s does not exist: %w", p, errkind.ErrNotFound)
				}
				return nil, fmt.Errorf("image %s: %w", p, err)
			}
			if !fi.IsDir() {
				if err := checkImage(p); err != nil {
					return nil, err
				}
				out = append(out, p)
				continue
			}
			found, err := folderImages(p)
			if err != nil {
				return nil, err
			}
			out = append(out, found...)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no images given", errkind.ErrUsage)
	}
	return out, nil
}

func folderImages(dir string) ([]string, error) {
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && slices.Contains(ImageExts, strings.ToLower(filepath.Ext(p))) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("folder %s: %w", dir, err)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: folder %s holds no images (%s)", errkind.ErrUsage, dir, strings.Join(ImageExts, ", "))
	}
	slices.Sort(found)
	for _, p := range found {
		if err := checkImage(p); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// checkImage reads p's header: JPEG, PNG, GIF or BMP, what the trainer decodes.
func checkImage(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("image %s: %w", p, err)
	}
	defer f.Close()
	if _, _, err := image.DecodeConfig(f); err != nil {
		return fmt.Errorf("%w: %s is not an image hpctl predict can read (JPEG, PNG, GIF or BMP): %v", errkind.ErrUsage, p, err)
	}
	return nil
}

// ModelInfo is the part of a checkpoint's model-info.json predict reports.
type ModelInfo struct {
	Backbone   string   `json:"backbone"`
	ImageSize  []int    `json:"image_size"`
	ClassNames []string `json:"class_names"`
	Format     string   `json:"format"`
}

// ParseModelInfo reads model-info.json's bytes.
func ParseModelInfo(b []byte) (ModelInfo, error) {
	var m ModelInfo
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", experiment.ModelInfoFile, err)
	}
	if len(m.ClassNames) < 2 {
		return m, fmt.Errorf("%s names %d classes", experiment.ModelInfoFile, len(m.ClassNames))
	}
	return m, nil
}

// CheckpointExts are a best checkpoint's extensions: Keras 3's first, then Keras 2's.
var CheckpointExts = []string{".keras", ".h5"}

// LocalCheckpoint finds the best checkpoint of stage in a fetched run folder (or a
// sweep trial's folder in one): "" when there is none.
func LocalCheckpoint(dir, stage string) string {
	base := filepath.Join(dir, filepath.FromSlash(experiment.PathsOf(stage).BestCheckpoint))
	for _, ext := range CheckpointExts {
		if fi, err := os.Stat(base + ext); err == nil && !fi.IsDir() {
			return base + ext
		}
	}
	return ""
}

// reader turns the trainer's --jsonl output into Predictions: one JSON object per line,
// then {"done": N}. Other lines (a library's chatter on stdout) go to noise. Images maps
// the trainer's paths back to the user's; images not in it are reported as the trainer
// wrote them.
type reader struct {
	images map[string]string
	on     func(Prediction)
	noise  io.Writer
	n      int
	done   bool
	buf    []byte
}

// feed takes the next bytes of the output (any split) and handles every whole line.
func (r *reader) feed(b []byte) error {
	r.buf = append(r.buf, b...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			return nil
		}
		line := bytes.TrimSpace(r.buf[:i])
		r.buf = r.buf[i+1:]
		if err := r.line(line); err != nil {
			return err
		}
	}
}

func (r *reader) line(line []byte) error {
	if len(line) == 0 {
		return nil
	}
	if line[0] != '{' {
		if r.noise != nil {
			fmt.Fprintf(r.noise, "%s\n", line)
		}
		return nil
	}
	var probe struct {
		Done *int `json:"done"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return fmt.Errorf("the trainer wrote a line that is no JSON: %q: %w", line, err)
	}
	if probe.Done != nil {
		if *probe.Done != r.n {
			return fmt.Errorf("the trainer says it classified %d images, %d came", *probe.Done, r.n)
		}
		r.done = true
		return nil
	}
	var p Prediction
	if err := json.Unmarshal(line, &p); err != nil || p.Label == "" || p.Probabilities == nil {
		return fmt.Errorf("the trainer wrote an unexpected line: %q", line)
	}
	if orig, ok := r.images[p.Image]; ok {
		p.Image = orig
	}
	r.n++
	if r.on != nil {
		r.on(p)
	}
	return nil
}

// scanLines feeds r from rd line by line until EOF.
func (r *reader) scan(rd io.Reader) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if err := r.line(bytes.TrimSpace(sc.Bytes())); err != nil {
			return err
		}
	}
	return sc.Err()
}
