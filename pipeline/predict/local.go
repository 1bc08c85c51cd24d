package predict

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/trainer"
)

// probeScript exits 0 when TensorFlow and numpy are installed, and prints the Keras
// version, without importing TensorFlow (seconds the trainer spends again right after):
// package metadata says it in milliseconds.
const probeScript = `import sys, importlib.util as u
if u.find_spec("tensorflow") is None or u.find_spec("numpy") is None:
    sys.exit("No module named tensorflow (or numpy)")
try:
    from importlib.metadata import version
    print(version("keras"))
except Exception:
    print("")`

// probeTimeout bounds one probe: importing TensorFlow takes seconds, not minutes.
const probeTimeout = 2 * time.Minute

// Python is a local interpreter that imports TensorFlow.
type Python struct {
	Path  string
	Keras string // its Keras version
}

// FindPython returns the python to run the trainer on this machine: setting when set (the
// python setting, HPCTL_PYTHON), which must import TensorFlow; else python3 on PATH when
// it does. ok is false, with why, when none does (and setting was empty).
func FindPython(ctx context.Context, setting string) (py Python, why string, err error) {
	cands := []string{setting}
	if setting == "" {
		cands = []string{"python3"}
	}
	for _, c := range cands {
		path, err := exec.LookPath(c)
		if err != nil {
			why = fmt.Sprintf("%s is not a program here", c)
			if setting != "" {
				return Python{}, "", fmt.Errorf("%w: the python setting %q: %v", errkind.ErrUsage, setting, err)
			}
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		cmd := exec.CommandContext(pctx, path, "-c", probeScript)
		cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		rerr := cmd.Run()
		cancel()
		if ctx.Err() != nil {
			return Python{}, "", ctx.Err()
		}
		if rerr != nil {
			why = fmt.Sprintf("%s cannot import TensorFlow and numpy (%s)", c, lastLine(errb.String()))
			if setting != "" {
				return Python{}, "", fmt.Errorf("%w: the python setting %q: %s", errkind.ErrUsage, setting, why)
			}
			continue
		}
		return Python{Path: path, Keras: strings.TrimSpace(out.String())}, "", nil
	}
	return Python{}, why, nil
}

// CanLoad says whether py's Keras reads a checkpoint of this extension: .keras files are
// Keras 3's format here (the trainer writes .h5 under Keras 2).
func (py Python) CanLoad(ckpt string) bool {
	if filepath.Ext(ckpt) == ".keras" {
		return strings.HasPrefix(py.Keras, "3.") || strings.HasPrefix(py.Keras, "4.")
	}
	return true
}

// LocalOptions say what Local runs.
type LocalOptions struct {
	Python Python
	// Checkpoint is the model file; model-info.json must be beside it.
	Checkpoint string
	Images     []string
	// OnPrediction is called for each image as its line comes.
	OnPrediction func(Prediction)
	// Stderr receives the trainer's stderr (TensorFlow's messages) as it comes; nil
	// keeps it for the error message only.
	Stderr io.Writer
}

// Local runs the embedded trainer's predict with a local python: the trainer is written
// to a temporary folder (removed after), the images are named in a list file, and the
// predictions come back as the trainer prints them. A trainer exit 2 (an image or
// checkpoint it cannot read) is errkind.ErrUsage.
func Local(ctx context.Context, o LocalOptions) (int, error) {
	tmp, err := os.MkdirTemp("", "hpctl-predict-")
	if err != nil {
		return 0, fmt.Errorf("predict: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := writeTrainer(tmp); err != nil {
		return 0, err
	}
	list := filepath.Join(tmp, "images.txt")
	abs := map[string]string{}
	var b strings.Builder
	for _, p := range o.Images {
		a, err := filepath.Abs(p)
		if err != nil {
			return 0, fmt.Errorf("predict: %w", err)
		}
		if strings.ContainsAny(a, "\n\r") {
			return 0, fmt.Errorf("%w: image path %q holds a line break", errkind.ErrUsage, p)
		}
		abs[a] = p
		b.WriteString(a + "\n")
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o600); err != nil {
		return 0, fmt.Errorf("predict: %w", err)
	}
	ckpt, err := filepath.Abs(o.Checkpoint)
	if err != nil {
		return 0, fmt.Errorf("predict: %w", err)
	}
	cmd := exec.CommandContext(ctx, o.Python.Path, filepath.Join(tmp, experiment.TrainerMain), "predict", "--jsonl",
		"--model", ckpt, "--image-list", list)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2")
	cmd.WaitDelay = 5 * time.Second
	var errb tailBuffer
	cmd.Stderr = &errb
	if o.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&errb, o.Stderr)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("predict: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("predict: start %s: %w", o.Python.Path, err)
	}
	r := &reader{images: abs, on: o.OnPrediction, noise: o.Stderr}
	rerr := r.scan(stdout)
	if rerr != nil {
		_ = cmd.Process.Kill()
		_, _ = io.Copy(io.Discard, stdout)
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return r.n, ctx.Err()
	case rerr != nil:
		return r.n, fmt.Errorf("predict: %w", rerr)
	case werr != nil:
		return r.n, trainerFailed(exitStatus(werr), errb.String())
	case !r.done:
		return r.n, fmt.Errorf("predict: the trainer ended after %d of %d images without saying it was done", r.n, len(o.Images))
	}
	return r.n, nil
}

// writeTrainer writes the embedded trainer into dir.
func writeTrainer(dir string) error {
	return fs.WalkDir(trainer.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(trainer.FS, name)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	})
}

// trainerFailed is the error of a trainer that exited code with stderr's tail: exit 2 is
// bad input (an image or a checkpoint it cannot read), the trainer's own message.
func trainerFailed(code int, stderr string) error {
	msg := trainerMessage(stderr)
	if code == 2 {
		return fmt.Errorf("%w: %s", errkind.ErrUsage, msg)
	}
	return fmt.Errorf("predict: the trainer failed (exit %d): %s", code, msg)
}

// trainerMessage is the trainer's "trainer: error: ..." line, else stderr's last lines.
func trainerMessage(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if m, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "trainer: error: "); ok {
			return m
		}
	}
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 64<<10 {
		t.b = t.b[len(t.b)-64<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
