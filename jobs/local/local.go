// Package local is the executor that runs a run's stage scripts on this machine, with no
// scheduler: for workstations, laptops and CI.
//
// Submit starts one detached supervisor per job (the hpctl binary re-executed as
// `hpctl __local-job <record>`, in its own session). The supervisor waits until every
// dependency completed, runs `bash <script>` in its own process group with the job's
// HPCTL_JOB_ID and CUDA_VISIBLE_DEVICES, sends its output to the log files Slurm would
// write (<run-dir>/logs/<job-name>-<id>.out|.err), and records each state change in a JSON
// record under the state directory. Query reads those records; Cancel ends the job's
// whole process group. States and reasons use Slurm's words, so `hpctl status` reads one
// vocabulary.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
)

// SupervisorCommand is the hidden hpctl command that runs one job: `hpctl __local-job
// <record>`. cmd/hpctl wires it to Supervise.
const SupervisorCommand = "__local-job"

// envJobID is the variable through which the stage script learns its job ID outside Slurm.
const envJobID = "HPCTL_JOB_ID"

// Options configure the executor. Zero values take the defaults.
type Options struct {
	// StateDir holds the job records (required), e.g. <hpctl state dir>/local-jobs.
	StateDir string
	// Hpctl is the binary re-executed as the supervisor; os.Executable() by default. It
	// must run Supervise when called as `<Hpctl> __local-job <record>`.
	Hpctl string
	// GPUs are the devices jobs may be given. Nil means: CUDA_VISIBLE_DEVICES when set
	// (empty means none), else the GPUs nvidia-smi lists, else none.
	GPUs []string
	// Grace is how long Cancel waits after SIGTERM before SIGKILL (default 10s).
	Grace time.Duration
	// Poll is how often a waiting job looks at its dependencies (default 1s).
	Poll time.Duration
}

// Executor runs jobs on this machine. It implements jobs.Executor.
type Executor struct {
	dir   string
	hpctl string
	gpus  []string
	grace time.Duration
	poll  time.Duration
}

var _ jobs.Executor = (*Executor)(nil)

// New returns a local executor, creating its state directory.
func New(o Options) (*Executor, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	if o.StateDir == "" {
		return nil, errors.New("local executor: no state directory")
	}
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("local executor: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local executor: %w", err)
	}
	e := &Executor{dir: dir, hpctl: o.Hpctl, gpus: o.GPUs, grace: o.Grace, poll: o.Poll}
	if e.hpctl == "" {
		if e.hpctl, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("local executor: find the hpctl binary: %w", err)
		}
	}
	if e.gpus == nil {
		e.gpus = DetectGPUs()
	}
	if e.grace <= 0 {
		e.grace = 10 * time.Second
	}
	if e.poll <= 0 {
		e.poll = time.Second
	}
	return e, nil
}

// Name implements jobs.Executor.
func (*Executor) Name() string { return "local" }

// GPUs are the devices this executor hands out.
func (e *Executor) GPUs() []string { return append([]string(nil), e.gpus...) }

// DetectGPUs lists this machine's GPUs as CUDA_VISIBLE_DEVICES would name them.
func DetectGPUs() []string {
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		return splitList(v)
	}
	out, err := exec.Command("nvidia-smi", "--query-gpu=index", "--format=csv,noheader").Output()
	if err != nil {
		return []string{}
	}
	return splitList(strings.ReplaceAll(string(out), "\n", ","))
}

func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// seq makes IDs unique within one process; O_EXCL on the record makes them unique across
// processes.
var seq atomic.Int64

// Submit implements jobs.Executor: it writes the job's record and starts its supervisor,
// and returns without waiting for the job.
func (e *Executor) Submit(ctx context.Context, req jobs.SubmitRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !filepath.IsAbs(req.Script) || !filepath.IsAbs(req.RunDir) {
		return "", fmt.Errorf("local submit %s: script and run directory must be absolute paths: %w", req.JobName, errkind.ErrUsage)
	}
	if _, err := os.Stat(req.Script); err != nil {
		return "", fmt.Errorf("local submit %s: %w", req.JobName, err)
	}
	if len(req.AfterAny) > 0 {
		// Only a sweep split at a cluster's MaxArraySize asks for it; this executor
		// never splits one.
		return "", fmt.Errorf("local submit %s: afterany dependencies are not supported here: %w", req.JobName, errkind.ErrUsage)
	}
	if req.Resources.GPUs > 0 && len(e.gpus) > 0 && req.Resources.GPUs > len(e.gpus) {
		return "", fmt.Errorf("local submit %s: %d GPUs requested, this machine has %d: %w", req.JobName, req.Resources.GPUs, len(e.gpus), errkind.ErrUsage)
	}
	for _, d := range req.DependsOn {
		if req.Array != nil {
			d = jobs.TaskID(d, 0)
		}
		if _, err := readRecord(recordPath(e.dir, d)); err != nil {
			return "", fmt.Errorf("local submit %s: dependency %s: %w", req.JobName, d, err)
		}
	}
	if req.Array != nil {
		return e.submitArray(req)
	}
	now := time.Now()
	r := record{
		RunID: req.RunID, RunDir: req.RunDir, Stage: req.Stage, Script: req.Script, JobName: req.JobName,
		DependsOn: append([]string(nil), req.DependsOn...), GPUsRequested: req.Resources.GPUs, MachineGPUs: e.gpus,
		Poll: e.poll, State: jobs.StatePending, Submitted: now,
	}
	if len(r.DependsOn) > 0 {
		r.Reason = reasonDependency
	}
	id, err := e.create(&r, now)
	if err != nil {
		return "", err
	}
	if err := e.startSupervisor(r); err != nil {
		// Nothing will ever run this record: say so rather than leave it pending.
		_, _ = update(e.dir, id, func(r *record) bool {
			r.State, r.Reason, r.End = jobs.StateFailed, "supervisor did not start", time.Now()
			return true
		})
		return "", fmt.Errorf("local submit %s: %w", req.JobName, err)
	}
	return id, nil
}

// submitArray queues one record (and supervisor) per task of the array, ids
// <array id>_<index>; task i depends on task i of each array in DependsOn.
func (e *Executor) submitArray(req jobs.SubmitRequest) (string, error) {
	a := req.Array
	if a.Count < 1 || a.Offset < 0 || a.MaxParallel < 0 {
		return "", fmt.Errorf("local submit %s: bad array %+v", req.JobName, *a)
	}
	now := time.Now()
	base, err := e.reserveArray(now)
	if err != nil {
		return "", err
	}
	for i := 0; i < a.Count; i++ {
		r := record{
			ID: jobs.TaskID(base, i), RunID: req.RunID, RunDir: req.RunDir, Stage: req.Stage, Script: req.Script, JobName: req.JobName,
			GPUsRequested: req.Resources.GPUs, MachineGPUs: e.gpus, Poll: e.poll, State: jobs.StatePending, Submitted: now,
			Array: base, Task: i, TrialOffset: a.Offset, MaxParallel: a.MaxParallel,
		}
		for _, d := range req.DependsOn {
			r.DependsOn = append(r.DependsOn, jobs.TaskID(d, i))
		}
		if len(r.DependsOn) > 0 {
			r.Reason = reasonDependency
		}
		if err := writeNew(recordPath(e.dir, r.ID), r); err != nil {
			return "", fmt.Errorf("local submit %s: %w", req.JobName, err)
		}
		if err := e.startSupervisor(r); err != nil {
			_, _ = update(e.dir, r.ID, func(r *record) bool {
				r.State, r.Reason, r.End = jobs.StateFailed, "supervisor did not start", time.Now()
				return true
			})
			return "", fmt.Errorf("local submit %s task %d: %w", req.JobName, i, err)
		}
	}
	return base, nil
}

// reserveArray picks a free array id: <id>.array, created exclusively, marks it taken.
func (e *Executor) reserveArray(now time.Time) (string, error) {
	stamp := now.UTC().Format("20060102150405")
	for range 10000 {
		id := "local-" + stamp + "-" + strconv.FormatInt(seq.Add(1), 10)
		f, err := os.OpenFile(filepath.Join(e.dir, id+".array"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("local submit: %w", err)
		}
		f.Close()
		if _, err := os.Stat(recordPath(e.dir, id)); err == nil {
			continue // a plain job took the id
		}
		return id, nil
	}
	return "", errors.New("local submit: no free array ID")
}

// tasks expands array ids (those with an <id>.array marker) into their tasks' ids; other
// ids pass as they are.
func (e *Executor) tasks(ids []string) []string {
	var out []string
	for _, id := range ids {
		if validID(id) && !strings.Contains(id, "_") {
			if _, err := os.Stat(filepath.Join(e.dir, id+".array")); err == nil {
				paths, _ := filepath.Glob(filepath.Join(e.dir, id+"_*.json"))
				for _, p := range paths {
					out = append(out, strings.TrimSuffix(filepath.Base(p), ".json"))
				}
				continue
			}
		}
		out = append(out, id)
	}
	return out
}

// create picks the next free ID local-<yyyymmddhhmmss>-<n> and writes the record there
// (writeNew).
func (e *Executor) create(r *record, now time.Time) (string, error) {
	stamp := now.UTC().Format("20060102150405")
	for range 10000 {
		id := "local-" + stamp + "-" + strconv.FormatInt(seq.Add(1), 10)
		r.ID = id
		werr := writeNew(recordPath(e.dir, id), *r)
		if errors.Is(werr, os.ErrExist) {
			continue
		}
		if werr != nil {
			return "", fmt.Errorf("local submit: %w", werr)
		}
		return id, nil
	}
	return "", errors.New("local submit: no free job ID")
}

// writeNew writes a record that must not exist yet: whole, under a temporary name, then
// hard-linked to path, which fails if the name is taken. A record is never seen empty or
// half written, even when hpctl is killed in between.
func writeNew(path string, r record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode job record: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".new-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(b, '\n'))
	if serr := tmp.Sync(); werr == nil {
		werr = serr
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	return os.Link(tmp.Name(), path)
}

func (e *Executor) startSupervisor(r record) error {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	// The supervisor's own messages; the job's output goes to the run directory's logs.
	logf, err := os.OpenFile(filepath.Join(e.dir, r.ID+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("supervisor log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(e.hpctl, SupervisorCommand, recordPath(e.dir, r.ID))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.Dir = "/"
	// A session of its own: the terminal's Ctrl-C and hangup never reach it, and it
	// outlives the hpctl that submitted it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start supervisor %s: %w", e.hpctl, err)
	}
	pid := cmd.Process.Pid
	// Reap it if this process outlives it (tests, long-lived callers); otherwise init does.
	go func() { _ = cmd.Wait() }()
	start, ok := procStart(pid)
	_, err = update(e.dir, r.ID, func(r *record) bool {
		if r.SupervisorPID != 0 {
			return false // the supervisor was quicker and wrote itself
		}
		r.SupervisorPID, r.SupervisorStart = pid, start
		if !ok && !r.State.Terminal() {
			// It already exited without recording anything.
			r.State, r.Reason, r.End = jobs.StateFailed, reasonSupervisorDied, time.Now()
		}
		return true
	})
	return err
}

// Query implements jobs.Executor: one read of each job's record, no scheduler to ask.
func (e *Executor) Query(ctx context.Context, ids []string) (map[string]jobs.JobState, error) {
	out := make(map[string]jobs.JobState, len(ids))
	now := time.Now()
	for _, id := range e.tasks(ids) {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if !validID(id) {
			continue
		}
		path := recordPath(e.dir, id)
		r, err := readRecord(path)
		if errors.Is(err, errkind.ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out[id] = effective(path, r, now).jobState(now)
	}
	return out, nil
}

// Find implements jobs.Finder: the records of every job submitted for runDirs.
func (e *Executor) Find(ctx context.Context, runDirs []string) ([]jobs.Found, error) {
	want := map[string]bool{}
	for _, d := range runDirs {
		want[d] = true
	}
	paths, err := filepath.Glob(filepath.Join(e.dir, "local-*.json"))
	if err != nil {
		return nil, fmt.Errorf("local find: %w", err)
	}
	now := time.Now()
	var out []jobs.Found
	seen := map[string]bool{}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := readRecord(p)
		if err != nil || !want[r.RunDir] || !validID(r.ID) || recordPath(e.dir, r.ID) != p {
			continue // unreadable, another run's, or not where its id says
		}
		st := effective(p, r, now).jobState(now)
		if r.Array != "" {
			// What hpctl records and cancels is the array job itself.
			if seen[r.Array] {
				continue
			}
			seen[r.Array] = true
			st.ID = r.Array
		}
		out = append(out, jobs.Found{JobState: st, Name: r.JobName, RunDir: r.RunDir})
	}
	return out, nil
}

// validID keeps IDs from naming files outside the state directory.
func validID(id string) bool {
	return strings.HasPrefix(id, "local-") && !strings.ContainsAny(id, "/\\") && id != "." && id != ".."
}

// Cancel implements jobs.Executor. A pending job is marked CANCELLED and never starts; a
// running job's whole process group gets SIGTERM, then SIGKILL after the grace period,
// and Cancel returns once the group is gone. Jobs that already ended are left alone.
// Unknown IDs are reported (errkind.ErrNotFound) after the others were cancelled.
func (e *Executor) Cancel(ctx context.Context, ids []string) error {
	var missing []string
	type target struct {
		id   string
		pgid int
	}
	var running []target
	for _, id := range e.tasks(ids) {
		if !validID(id) {
			missing = append(missing, id)
			continue
		}
		var pgid int
		_, err := update(e.dir, id, func(r *record) bool {
			now := time.Now()
			eff := effective(recordPath(e.dir, id), *r, now)
			switch {
			case r.State == jobs.StatePending:
				r.State, r.Reason, r.End = jobs.StateCancelled, reasonCancelled, now
				return true
			case r.State == jobs.StateRunning && eff.State == jobs.StateRunning && eff.Reason != reasonOrphanRunning:
				pgid = r.ChildPGID
				r.CancelRequested = true
				return true
			case r.State == jobs.StateRunning:
				// The supervisor died; its job may still run, orphaned.
				if groupIsJob(r.ChildPGID, r.ID) {
					pgid = r.ChildPGID
				}
				r.State, r.Reason, r.End = jobs.StateCancelled, reasonSupervisorDied+"; cancelled", now
				return true
			}
			return false
		})
		if errors.Is(err, errkind.ErrNotFound) {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return fmt.Errorf("local cancel %s: %w", id, err)
		}
		if pgid > 0 {
			running = append(running, target{id, pgid})
		}
	}
	for _, t := range running {
		_ = syscall.Kill(-t.pgid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(e.grace)
	for _, t := range running {
		for len(groupMembers(t.pgid)) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		if len(groupMembers(t.pgid)) > 0 {
			_ = syscall.Kill(-t.pgid, syscall.SIGKILL)
		}
	}
	for _, t := range running {
		for i := 0; i < 100 && len(groupMembers(t.pgid)) > 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		// The supervisor records the end itself; this covers one that died meanwhile.
		_, err := update(e.dir, t.id, func(r *record) bool {
			if r.State.Terminal() {
				return false
			}
			r.State, r.Reason, r.End = jobs.StateCancelled, reasonCancelled, time.Now()
			return true
		})
		if err != nil {
			return fmt.Errorf("local cancel %s: %w", t.id, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("local cancel: no such job %s: %w", strings.Join(missing, ", "), errkind.ErrNotFound)
	}
	return ctx.Err()
}
