package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
)

// minPredictAccuracy: the trained run separates the quickstart's classes at 1.0 on its
// val set; held-out images drawn from the same generator (another seed) are as easy, so
// 0.9 leaves room for CPU training's nondeterminism.
const minPredictAccuracy = 0.9

type predicted struct {
	RunID       string   `json:"run_id"`
	Stage       string   `json:"stage"`
	Checkpoint  string   `json:"checkpoint"`
	ClassNames  []string `json:"class_names"`
	RanOn       string   `json:"ran_on"`
	JobID       string   `json:"job_id"`
	Predictions []struct {
		Image         string             `json:"image"`
		Label         string             `json:"label"`
		ClassIndex    int                `json:"class_index"`
		Probability   float64            `json:"probability"`
		Probabilities map[string]float64 `json:"probabilities"`
		Logit         *float64           `json:"logit"`
	} `json:"predictions"`
}

// heldOut writes n new images per class with the quickstart's generator and another seed,
// under dir/<class>/, and returns dir.
func heldOut(t *testing.T, py, dir string, n int) string {
	t.Helper()
	prog := fmt.Sprintf(`
import importlib.util, os, sys
import numpy as np
from PIL import Image
spec = importlib.util.spec_from_file_location("demo", "scripts/make-demo-data.py")
demo = importlib.util.module_from_spec(spec); spec.loader.exec_module(demo)
rng = np.random.RandomState(7)
for c in demo.CLASSES:
    d = os.path.join(%q, c)
    os.makedirs(d, exist_ok=True)
    for i in range(%d):
        Image.fromarray(demo.image(c, rng)).save(os.path.join(d, "new_%%02d.png" %% i))
print("held-out images written")
`, dir, n)
	python(t, py, "-c", prog)
	return dir
}

// checkPredicted checks predictions of the held-out images as the notebook would read
// them: the label is the folder's, often enough; probabilities are in [0, 1] and are the
// logit's sigmoid; a positive logit is class_names[1], the second folder name in sorted
// order (Keras's image_dataset_from_directory and flow_from_directory order, so the
// notebook's `preds[0][0] > 0` -> "Urban" of rural/urban).
func checkPredicted(t *testing.T, p predicted, n int) {
	t.Helper()
	if !slices.Equal(p.ClassNames, []string{"circles", "squares"}) {
		t.Errorf("class_names %q, want the sorted folder names [circles squares]", p.ClassNames)
	}
	if len(p.Predictions) != n {
		t.Fatalf("%d predictions, want %d", len(p.Predictions), n)
	}
	right := 0
	for _, x := range p.Predictions {
		truth := filepath.Base(filepath.Dir(x.Image))
		if x.Label == truth {
			right++
		}
		if x.Logit == nil {
			t.Fatalf("%s: no logit from a two-class model", x.Image)
		}
		sig := 1 / (1 + math.Exp(-*x.Logit))
		wantIdx := 0
		if *x.Logit > 0 {
			wantIdx = 1
		}
		if x.ClassIndex != wantIdx || x.Label != p.ClassNames[wantIdx] {
			t.Errorf("%s: logit %g gave %s (index %d), want %s: a positive logit is class_names[1]", x.Image, *x.Logit, x.Label, x.ClassIndex, p.ClassNames[wantIdx])
		}
		if x.Probability < 0.5 || x.Probability > 1 || math.Abs(x.Probabilities["squares"]-sig) > 1e-6 ||
			math.Abs(x.Probabilities["circles"]-(1-sig)) > 1e-6 || math.Abs(x.Probability-math.Max(sig, 1-sig)) > 1e-6 {
			t.Errorf("%s: probability %g, probabilities %v, for logit %g (sigmoid %g)", x.Image, x.Probability, x.Probabilities, *x.Logit, sig)
		}
	}
	if acc := float64(right) / float64(n); acc < minPredictAccuracy {
		t.Errorf("accuracy on held-out images %.3f (%d of %d), want at least %.2f", acc, right, n, minPredictAccuracy)
	} else {
		t.Logf("accuracy on %d held-out images: %.3f", n, acc)
	}
}

// TestPredictEndToEnd trains the quickstart's pipeline on Slurm, then classifies new
// images of both classes with its best checkpoint: as a cluster job in the stage's
// runtime before the results are fetched, then on this machine from the fetched results;
// and the error paths a user meets.
func TestPredictEndToEnd(t *testing.T) {
	testenv.RequireSlurm(t)
	py := requirePython(t)
	c := newCLI(t)
	c.env = append(c.env, "HPCTL_PYTHON="+py)
	dir := t.TempDir()

	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	const perClass = 15
	photos := heldOut(t, py, filepath.Join(dir, "heldout"), perClass)
	spec := filepath.Join(dir, "e2e.yaml")
	if err := os.WriteFile(spec, []byte(pipelineSpec(dir, py)), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := c.submit(t, spec)
	st := c.waitEnded(t, sub.RunID, pipelineTimeout)
	for _, s := range st.Stages {
		if s.State != jobs.StateCompleted {
			t.Fatalf("stage %s is %s, want COMPLETED\n%s", s.Name, s.State, c.stageLogs(t, sub.RunID, st))
		}
	}
	results := filepath.Join(dir, "results")

	// Not fetched yet: a job on the cluster, in the stage's runtime.
	var remote predicted
	start := time.Now()
	c.jsonOut(t, &remote, "predict", sub.RunID, photos, "--results-dir", results)
	t.Logf("predict on the cluster: %.1fs (job %s)", time.Since(start).Seconds(), remote.JobID)
	if remote.RanOn != "cluster" || remote.JobID == "" || remote.Stage != "finetune" || remote.RunID != sub.RunID ||
		!strings.HasPrefix(remote.Checkpoint, sub.RunDir+"/stages/finetune/checkpoints/best.") {
		t.Errorf("remote predict: %+v", remote)
	}
	checkPredicted(t, remote, 2*perClass)
	if _, err := os.Stat(filepath.Join(sub.RunDir, "predict")); !os.IsNotExist(err) {
		t.Errorf("the scratch folder is still in the run directory: %v", err)
	}
	// The table: a header and one row per image, in the folder's sorted order.
	out := c.must(t, "predict", sub.RunID, "--stage", "frozen", filepath.Join(photos, "circles", "new_00.png"), filepath.Join(photos, "squares", "new_00.png"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^IMAGE +LABEL +PROBABILITY$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`circles/new_00\.png +(circles|squares) +[01]\.\d{4}$`).MatchString(lines[1]) {
		t.Errorf("predict's table:\n%s", out)
	}

	// The same over ssh (the test sshd as the login node): the images go up through the
	// one multiplexed login, the output comes back by tail.
	t.Run("on the cluster over ssh", func(t *testing.T) {
		cfg, host := testenv.RequireSSH(t)
		c.useSSH(cfg)
		var viaSSH predicted
		c.jsonOut(t, &viaSSH, "--host", host, "predict", sub.RunID, "--remote", photos, "--results-dir", results)
		if viaSSH.RanOn != "cluster" || viaSSH.JobID == "" || viaSSH.JobID == remote.JobID {
			t.Errorf("predict over ssh: %+v", viaSSH)
		}
		checkPredicted(t, viaSSH, 2*perClass)
		for i, x := range viaSSH.Predictions {
			if r := remote.Predictions[i]; x.Image != r.Image || x.Label != r.Label || math.Abs(*x.Logit-*r.Logit) > 1e-6 {
				t.Errorf("image %d over ssh: %s %s %g; locally submitted: %s %s %g", i, x.Image, x.Label, *x.Logit, r.Image, r.Label, *r.Logit)
			}
		}
		if _, err := os.Stat(filepath.Join(sub.RunDir, "predict")); !os.IsNotExist(err) {
			t.Errorf("the scratch folder is still in the run directory: %v", err)
		}
	})

	// Fetched: on this machine, with the same checkpoint and preprocessing, so the same
	// numbers.
	fetch(t, c, sub.RunID, results)
	var local predicted
	start = time.Now()
	c.jsonOut(t, &local, "predict", sub.RunID, photos, "--results-dir", results)
	t.Logf("predict here: %.1fs", time.Since(start).Seconds())
	if local.RanOn != "local" || local.JobID != "" || !strings.HasPrefix(local.Checkpoint, filepath.Join(results, sub.RunID)) {
		t.Errorf("local predict: %+v", local)
	}
	checkPredicted(t, local, 2*perClass)
	for i, x := range local.Predictions {
		r := remote.Predictions[i]
		if x.Image != r.Image || x.Label != r.Label || math.Abs(*x.Logit-*r.Logit) > 1e-3 {
			t.Errorf("image %d: here %s %s %g, on the cluster %s %s %g", i, x.Image, x.Label, *x.Logit, r.Image, r.Label, *r.Logit)
		}
	}
	// Ctrl-C while the local trainer runs: exit 130, and the trainer written for the
	// run (in $TMPDIR) is gone with it.
	t.Run("local interrupted", func(t *testing.T) {
		tmp := t.TempDir()
		cmd := exec.Command(c.bin, "predict", sub.RunID, photos, "--results-dir", results)
		cmd.Env, cmd.Dir = append(slices.Clone(c.env), "TMPDIR="+tmp), c.dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the trainer is written out (it is running then, or about to).
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if m, _ := filepath.Glob(filepath.Join(tmp, "hpctl-predict-*", "train.py")); len(m) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("predict wrote no trainer into TMPDIR within a minute")
			}
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Errorf("local predict after Ctrl-C: exit %d (%v), want 130", code, err)
		}
		if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
			t.Errorf("left in TMPDIR after Ctrl-C: %v", entries)
		}
	})

	// The checkpoint file itself.
	var byFile predicted
	c.jsonOut(t, &byFile, "predict", local.Checkpoint, filepath.Join(photos, "squares"))
	if len(byFile.Predictions) != perClass || byFile.RunID != "" || byFile.RanOn != "local" {
		t.Errorf("predict CHECKPOINT: %+v", byFile)
	}

	t.Run("errors", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		notImage := filepath.Join(dir, "notes.jpg")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(notImage, []byte("a shopping list"), 0o644); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(photos, "circles", "new_00.png")
		// A checkpoint file that is no model, with a good model-info.json beside it:
		// the trainer's refusal (its exit 2) is predict's.
		broken := filepath.Join(dir, "broken", filepath.Base(local.Checkpoint))
		info, err := os.ReadFile(filepath.Join(filepath.Dir(local.Checkpoint), "model-info.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(broken), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(broken, []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(broken), "model-info.json"), info, 0o644); err != nil {
			t.Fatal(err)
		}
		lonely := filepath.Join(dir, "lonely.keras")
		if err := os.WriteFile(lonely, []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, e := range []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{"predict", "no-such-run", img}, 4, "no-such-run"},
			{[]string{"predict", sub.RunID, filepath.Join(dir, "missing.png")}, 4, "does not exist"},
			{[]string{"predict", sub.RunID, notImage}, 2, "is not an image"},
			{[]string{"predict", sub.RunID, empty}, 2, "holds no images"},
			{[]string{"predict", sub.RunID, "--stage", "nope", img}, 4, `no stage "nope"`},
			{[]string{"predict", sub.RunID, "--trial", "1", img}, 2, "not a sweep"},
			{[]string{"predict", sub.RunID}, 2, "at least one IMAGE"},
			{[]string{"predict", broken, img}, 2, "cannot load model " + broken},
			{[]string{"predict", lonely, img}, 4, "no model-info.json beside " + lonely},
			{[]string{"predict", local.Checkpoint, "--remote", img}, 2, "is a checkpoint file"},
		} {
			out, errs, code := c.run(t, append(e.args, "--results-dir", results)...)
			if code != e.code || !strings.Contains(errs, e.msg) || out != "" {
				t.Errorf("hpctl %s: exit %d, stdout %q, stderr %q; want exit %d saying %q", strings.Join(e.args, " "), code, out, errs, e.code, e.msg)
			}
		}
	})

	// A run whose stages have not finished has no checkpoint to classify with (exit 4); a
	// predict job interrupted by Ctrl-C leaves no job and no scratch folder.
	t.Run("not finished, and interrupted", func(t *testing.T) {
		second := c.submit(t, spec)
		_, errs, code := c.run(t, "predict", second.RunID, filepath.Join(photos, "circles"), "--results-dir", results)
		if code != 4 || !strings.Contains(errs, "has no best checkpoint yet: it is PENDING") {
			t.Errorf("predict on an unfinished run: exit %d: %s", code, errs)
		}
		// Cancelled before it trained: it never will have one, and predict says why.
		c.must(t, "cancel", second.RunID)
		c.waitEnded(t, second.RunID, time.Minute)
		_, errs, code = c.run(t, "predict", second.RunID, filepath.Join(photos, "circles"), "--results-dir", results)
		if code != 4 || !strings.Contains(errs, "ended CANCELLED without a best checkpoint") {
			t.Errorf("predict on a cancelled run: exit %d: %s", code, errs)
		}

		// Ctrl-C once the job is queued (the second run keeps the cluster busy, so it
		// may well still be pending).
		cmd := exec.Command(c.bin, "predict", sub.RunID, "--remote", photos, "--results-dir", results)
		cmd.Env, cmd.Dir = c.env, c.dir
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		queued := regexp.MustCompile(`predict job (\d+) queued`)
		jobID := ""
		sc := bufio.NewScanner(stderr)
		var said []string
		for sc.Scan() {
			said = append(said, sc.Text())
			if m := queued.FindStringSubmatch(sc.Text()); m != nil {
				jobID = m[1]
				break
			}
		}
		if jobID == "" {
			_ = cmd.Wait()
			t.Fatalf("no job queued: %s", strings.Join(said, "\n"))
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = bufio.NewReader(stderr).WriteTo(discard{}) }()
		err = cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Errorf("predict after Ctrl-C: exit %d (%v), want 130", code, err)
		}
		// The job was cancelled (it cannot have finished: TensorFlow alone takes seconds
		// to import), and the scratch folder went with it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for {
			b, _ := exec.CommandContext(ctx, "sacct", "-X", "-n", "-P", "-j", jobID, "-o", "State").Output()
			s := strings.TrimSpace(string(b))
			if strings.HasPrefix(s, "CANCELLED") {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("job %s is %q a minute after predict was interrupted, want CANCELLED", jobID, s)
			}
			time.Sleep(time.Second)
		}
		if entries, err := os.ReadDir(filepath.Join(sub.RunDir, "predict")); err == nil && len(entries) > 0 {
			t.Errorf("scratch folders left after Ctrl-C: %v", entries)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestPredictSweepTrial: a sweep's trial K classifies with its own checkpoint: on the
// cluster before fetching; after fetch-results, the best trial (whose checkpoint is
// fetched) on this machine and another trial (whose is not) on the cluster. A sweep
// without --trial, or with one it does not have, is refused (exit 2).
func TestPredictSweepTrial(t *testing.T) {
	testenv.RequireSlurm(t)
	py := requirePython(t)
	c := newCLI(t)
	c.env = append(c.env, "HPCTL_PYTHON="+py)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	photos := heldOut(t, py, filepath.Join(dir, "heldout"), 5)
	src := pipelineSpec(dir, py)
	src = strings.Replace(src, "epochs: "+fmt.Sprint(frozenEpochs), "epochs: 2", 1)
	src = strings.Replace(src, "epochs: "+fmt.Sprint(finetuneEpochs), "epochs: 2", 1)
	src += "sweep:\n  grid:\n    seed: [1, 2]\n  max_parallel: 2\n"
	spec := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := c.submit(t, spec)
	if st := c.waitEnded(t, sub.RunID, 2*pipelineTimeout); st.State != jobs.StateCompleted {
		t.Fatalf("sweep %s: %s\n%s", sub.RunID, st.State, c.must(t, "status", sub.RunID, "--trials"))
	}
	results := filepath.Join(dir, "results")
	for _, e := range []struct {
		args []string
		msg  string
	}{
		{nil, "is a sweep of 2 trials: name one with --trial K"},
		{[]string{"--trial", "2"}, "has trials 0 to 1, not 2"},
	} {
		_, errs, code := c.run(t, append([]string{"predict", sub.RunID, photos, "--results-dir", results}, e.args...)...)
		if code != 2 || !strings.Contains(errs, e.msg) {
			t.Errorf("predict %v: exit %d: %s, want exit 2 saying %q", e.args, code, errs, e.msg)
		}
	}
	var remote predicted
	c.jsonOut(t, &remote, "predict", sub.RunID, "--trial", "1", photos, "--results-dir", results)
	if remote.RanOn != "cluster" || !strings.HasPrefix(remote.Checkpoint, sub.RunDir+"/trials/1/stages/finetune/checkpoints/best.") {
		t.Errorf("trial 1 on the cluster: %+v", remote)
	}
	checkPredicted(t, remote, 10)

	f := fetch(t, c, sub.RunID, results)
	if f.BestTrial == nil {
		t.Fatal("fetch-results names no best trial")
	}
	best, other := *f.BestTrial, 1-*f.BestTrial
	var local, elsewhere predicted
	c.jsonOut(t, &local, "predict", sub.RunID, "--trial", fmt.Sprint(best), photos, "--results-dir", results)
	c.jsonOut(t, &elsewhere, "predict", sub.RunID, "--trial", fmt.Sprint(other), photos, "--results-dir", results)
	if local.RanOn != "local" || elsewhere.RanOn != "cluster" ||
		!strings.HasPrefix(local.Checkpoint, filepath.Join(results, sub.RunID, "trials", fmt.Sprint(best))) {
		t.Errorf("after fetching: trial %d ran on %s (%s), trial %d on %s; want local, cluster", best, local.RanOn, local.Checkpoint, other, elsewhere.RanOn)
	}
	checkPredicted(t, local, 10)
}
