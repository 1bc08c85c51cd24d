package predict

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/homepath"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/render"
	"github.com/hpctl/hpctl/trainer"
	"github.com/hpctl/hpctl/transport"
)

// RemoteOptions say what Remote runs where.
type RemoteOptions struct {
	RunID string
	// RunDir is the run directory on the cluster; the scratch folder goes inside it, so
	// the stage's container (which mounts it) sees the images.
	RunDir string
	Stage  string
	// Checkpoint is the best checkpoint's absolute path on the cluster.
	Checkpoint string
	// Spec is the run's spec, resolved (container runtime, image, python, mounts).
	Spec experiment.Spec
	// Resources are the job's: the stage's, less what predict does not need.
	Resources jobs.Resources
	Images    []string
	// Interval is the wait between two reads of the job's output (default 1s);
	// PollInterval the least time between two questions to the executor (default 10s).
	Interval, PollInterval time.Duration
	// Notice receives what is said beside the predictions (job queued, pending).
	Notice       io.Writer
	OnPrediction func(Prediction)
	// OnSubmit is told the job's id once it is queued.
	OnSubmit func(id string)
}

// cleanupTimeout bounds cancelling the job and removing the scratch folder after Ctrl-C:
// they run on a fresh context, the command's own being done.
const cleanupTimeout = time.Minute

// Remote classifies the images on the cluster: it copies them, the embedded trainer and a
// job script into a scratch folder of the run directory (experiment.PredictScratch),
// queues the job in the stage's container, prints each prediction as the job's output
// brings it, and removes the folder at the end. When ctx is done (Ctrl-C) the job is
// cancelled and the folder removed before it returns: no job is left behind.
func Remote(ctx context.Context, t transport.Transport, ex jobs.Executor, o RemoteOptions) (n int, err error) {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.Notice == nil {
		o.Notice = io.Discard
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	id := time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
	dir := path.Join(o.RunDir, experiment.PredictScratch(id))
	jobName := o.Spec.Name + "-predict"

	files, remoteOf, err := scratchFiles(dir, o.Images)
	if err != nil {
		return 0, err
	}
	argv := []string{o.Spec.Container.Python, path.Join(dir, experiment.TrainerDir, experiment.TrainerMain), "predict", "--jsonl",
		"--model", o.Checkpoint, "--image-list", path.Join(dir, "images.txt")}
	script, err := render.PredictScript(render.PredictJob{
		RunID: o.RunID, Stage: o.Stage, JobName: jobName, Runtime: o.Spec.Container.Runtime,
		RunDir: o.RunDir, Dir: dir, R: o.Resources, Mounts: o.Spec.Container.Mounts, Image: o.Spec.Container.Image,
		Argv: argv,
	})
	if err != nil {
		return 0, err
	}
	files = append(files, transport.File{Path: experiment.ScriptFile, Mode: 0o755, Data: script})

	// From here on, whatever happens, the folder (and the job, once queued) goes.
	jobID := ""
	ended := false
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if jobID != "" && !ended {
			if cerr := ex.Cancel(cctx, []string{jobID}); cerr != nil {
				err = errors.Join(err, fmt.Errorf("predict: cancel job %s: %w (cancel it with scancel %s)", jobID, cerr, jobID))
			}
		}
		if res, rerr := t.Run(cctx, []string{"rm", "-rf", "--", dir}, nil); rerr != nil || res.ExitCode != 0 {
			err = errors.Join(err, fmt.Errorf("predict: remove the scratch folder %s: %v %s", dir, rerr, strings.TrimSpace(string(res.Stderr))))
		}
		// predict/ itself, when no other predict job uses it (rmdir leaves a full one).
		_, _ = t.Run(cctx, []string{"rmdir", "--", path.Dir(dir)}, nil)
	}()
	if err := t.Stage(ctx, dir, files); err != nil {
		return 0, fmt.Errorf("predict: copy the images to the cluster: %w", err)
	}
	// sbatch runs to its end even when Ctrl-C comes meanwhile: killed half-way it may
	// have queued a job whose id hpctl would never learn, to cancel.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	jobID, err = ex.Submit(sctx, jobs.SubmitRequest{
		RunID: o.RunID, RunDir: dir, Stage: "predict", Script: path.Join(dir, experiment.ScriptFile),
		JobName: jobName, Resources: o.Resources,
	})
	scancel()
	if err != nil {
		jobID = ""
		return 0, fmt.Errorf("predict: queue the job: %w", err)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if o.OnSubmit != nil {
		o.OnSubmit(jobID)
	}
	fmt.Fprintf(o.Notice, "hpctl: predict job %s queued (%d images, stage %s of %s)\n", jobID, len(o.Images), o.Stage, o.RunID)

	r := &reader{images: remoteOf, on: o.OnPrediction, noise: o.Notice}
	out := experiment.LogPath(dir, jobName, jobID, "out")
	var offset int64
	var last jobs.JobState
	lastCheck := time.Time{}
	saidPending := false
	for {
		res, rerr := t.Run(ctx, []string{"tail", "-c", "+" + strconv.FormatInt(offset+1, 10), out}, nil)
		if ctx.Err() != nil {
			return r.n, ctx.Err()
		}
		if rerr != nil {
			return r.n, fmt.Errorf("predict: read the job's output: %w", rerr)
		}
		if res.ExitCode == 0 {
			offset += int64(len(res.Stdout))
			if err := r.feed(res.Stdout); err != nil {
				return r.n, fmt.Errorf("predict: %w", err)
			}
			if r.done {
				ended = waitEnd(ctx, ex, jobID, o.PollInterval)
				return r.n, nil
			}
		}
		if time.Since(lastCheck) >= o.PollInterval {
			lastCheck = time.Now()
			states, qerr := ex.Query(ctx, []string{jobID})
			if ctx.Err() != nil {
				return r.n, ctx.Err()
			}
			if qerr != nil {
				return r.n, fmt.Errorf("predict: ask about job %s: %w", jobID, qerr)
			}
			st, known := states[jobID]
			if known {
				last = st
			}
			if known && st.State == jobs.StatePending && !saidPending {
				saidPending = true
				reason := ""
				if st.Reason != "" {
					reason = " (" + st.Reason + ")"
				}
				fmt.Fprintf(o.Notice, "hpctl: predict job %s is pending%s\n", jobID, reason)
			}
			if known && st.State.Terminal() {
				ended = true
				// What the job wrote between the last read and its end.
				if res, rerr := t.Run(ctx, []string{"tail", "-c", "+" + strconv.FormatInt(offset+1, 10), out}, nil); rerr == nil && res.ExitCode == 0 {
					if err := r.feed(append(res.Stdout, '\n')); err != nil {
						return r.n, fmt.Errorf("predict: %w", err)
					}
				}
				if r.done {
					return r.n, nil
				}
				errText := ""
				if res, rerr := t.Run(ctx, []string{"tail", "-c", "65536", experiment.LogPath(dir, jobName, jobID, "err")}, nil); rerr == nil {
					errText = string(res.Stdout)
				}
				code, _ := strconv.Atoi(strings.SplitN(last.ExitCode, ":", 2)[0])
				if st.State == jobs.StateCompleted || code != 0 {
					return r.n, trainerFailed(code, errText)
				}
				return r.n, fmt.Errorf("predict: job %s ended %s %s before every image was classified: %s", jobID, st.State, st.Reason, trainerMessage(errText))
			}
		}
		select {
		case <-ctx.Done():
			return r.n, ctx.Err()
		case <-time.After(o.Interval):
		}
	}
}

// waitEnd waits (a little) for the job to be seen ended after its last line, so that it
// is not cancelled needlessly; it reports whether it was.
func waitEnd(ctx context.Context, ex jobs.Executor, id string, poll time.Duration) bool {
	deadline := time.Now().Add(3 * poll)
	wait := time.Second
	for {
		states, err := ex.Query(ctx, []string{id})
		if err == nil {
			if st, ok := states[id]; ok && st.State.Terminal() {
				return true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, poll)
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// scratchFiles are the scratch folder's files: the images as images/<n>-<name> (numbered,
// so two photo.jpg from two folders stay two), images.txt naming them by their path on
// the cluster, the embedded trainer (the one that speaks --jsonl, whatever trainer the
// run was staged with) and logs/. remoteOf maps each cluster path to the image as given.
func scratchFiles(dir string, images []string) ([]transport.File, map[string]string, error) {
	var files []transport.File
	remoteOf := map[string]string{}
	var list strings.Builder
	for i, p := range images {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", p, err)
		}
		name := unsafeName.ReplaceAllString(filepath.Base(p), "_")
		rel := path.Join("images", fmt.Sprintf("%05d-%s", i, name))
		files = append(files, transport.File{Path: rel, Mode: 0o644, Data: data})
		remote := path.Join(dir, rel)
		remoteOf[remote] = p
		list.WriteString(remote + "\n")
	}
	files = append(files,
		transport.File{Path: "images.txt", Mode: 0o644, Data: []byte(list.String())},
		transport.File{Path: path.Join(experiment.LogsDir, experiment.LogsKeep), Mode: 0o644, Data: []byte{}})
	err := fs.WalkDir(trainer.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(trainer.FS, name)
		if err != nil {
			return err
		}
		files = append(files, transport.File{Path: path.Join(experiment.TrainerDir, name), Mode: 0o644, Data: b})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("predict: the embedded trainer: %w", err)
	}
	return files, remoteOf, nil
}

// JobSpec resolves a run's spec (its spec.yaml, loaded) as submit did, and returns it
// with stage's resources less what a predict job does not need (requeueing, the
// preemption signal, more than one node); the caller sets its GPUs and time. Relative
// paths were taken from the submitting directory, which a relative workdir gives back
// (the run directory is <base>/<workdir>/<run-id>); otherwise they are taken from home.
func JobSpec(s experiment.Spec, home, runDir, runID, stage string) (experiment.Spec, jobs.Resources, error) {
	base := home
	if _, homeRel := homepath.Split(s.Workdir); !homeRel && !path.IsAbs(s.Workdir) {
		if b, ok := strings.CutSuffix(path.Dir(runDir), "/"+path.Clean(s.Workdir)); ok {
			base = b
		}
	}
	p, err := experiment.NewPlan(s.Resolve(home, base), runID)
	if err != nil {
		return experiment.Spec{}, jobs.Resources{}, err
	}
	for _, st := range p.Stages {
		if st.Name == stage {
			r := st.Resources
			r.SignalBefore, r.Requeue, r.Nodes = 0, false, 1
			return p.Spec, r, nil
		}
	}
	return experiment.Spec{}, jobs.Resources{}, fmt.Errorf("the run's spec.yaml has no stage %q: %w", stage, errkind.ErrNotFound)
}
