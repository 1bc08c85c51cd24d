package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/fsutil"
	"github.com/hpctl/hpctl/jobs"
)

// supervisorGrace is how long a supervisor that is told to stop (SIGTERM, which cancels
// ctx) waits for its job's process group before SIGKILL.
const supervisorGrace = 10 * time.Second

// Supervise runs the job whose record is at path, from dependencies to its end, and
// returns once the job's end is recorded. It is the body of `hpctl __local-job <record>`;
// cancelling ctx (the supervisor got SIGTERM or SIGINT) cancels the job.
func Supervise(ctx context.Context, path string) error {
	if err := platformSupported(); err != nil {
		return err
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	s := &supervisor{dir: filepath.Dir(path), path: path}
	s.id = strings.TrimSuffix(filepath.Base(path), ".json")
	if !validID(s.id) {
		return fmt.Errorf("supervise %s: not a job record: %w", path, errkind.ErrUsage)
	}
	pid := os.Getpid()
	start, _ := procStart(pid)
	r, err := update(s.dir, s.id, func(r *record) bool {
		if r.SupervisorPID == pid {
			return false
		}
		r.SupervisorPID, r.SupervisorStart = pid, start
		return true
	})
	if err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	s.poll = r.Poll
	if s.poll <= 0 {
		s.poll = time.Second
	}
	cmd, err := s.waitAndStart(ctx)
	if err != nil || cmd == nil {
		return err
	}
	return s.wait(ctx, cmd)
}

type supervisor struct {
	dir, path, id string
	poll          time.Duration
}

func (s *supervisor) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s: %s\n", time.Now().Format(time.RFC3339), s.id, fmt.Sprintf(format, args...))
}

// waitAndStart waits for the dependencies and free GPUs, then starts the script. A nil
// command means the job ended before it started (cancelled, or a dependency failed).
func (s *supervisor) waitAndStart(ctx context.Context) (*exec.Cmd, error) {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		r, err := readRecord(s.path)
		if err != nil {
			return nil, fmt.Errorf("supervise: %w", err)
		}
		if r.State.Terminal() {
			s.logf("ended before it started: %s %s", r.State, r.Reason)
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, s.end(jobs.StateCancelled, "supervisor stopped", "")
		}
		ready, failed := s.dependencies(r)
		if failed != "" {
			s.logf("dependency never satisfied: %s", failed)
			return nil, s.end(jobs.StateCancelled, reasonNeverSatisfied, "")
		}
		if ready {
			cmd, started, err := s.tryStart()
			if err != nil || started {
				if err != nil {
					_ = s.end(jobs.StateFailed, "launch failed: "+err.Error(), "")
				}
				return cmd, err
			}
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// dependencies reports whether every dependency completed, or else the first that never
// will (ended otherwise, or has no record), as "<id> <STATE>".
func (s *supervisor) dependencies(r record) (ready bool, failed string) {
	now := time.Now()
	ready = true
	for _, d := range r.DependsOn {
		p := recordPath(s.dir, d)
		dr, err := readRecord(p)
		if err != nil {
			return false, d + " has no record"
		}
		dr = effective(p, dr, now)
		switch {
		case dr.State == jobs.StateCompleted:
		case dr.State.Terminal():
			return false, d + " " + string(dr.State)
		default:
			ready = false
		}
	}
	return ready, ""
}

// tryStart starts the script if enough GPUs are free, under the GPU lock and the job's
// lock, so Cancel and other jobs see either PENDING or RUNNING with the process group.
func (s *supervisor) tryStart() (cmd *exec.Cmd, started bool, err error) {
	unlockGPUs, err := fsutil.Lock(filepath.Join(s.dir, "gpus.lock"))
	if err != nil {
		return nil, false, err
	}
	defer unlockGPUs()
	var launchErr error
	_, err = update(s.dir, s.id, func(r *record) bool {
		if r.State != jobs.StatePending {
			return false
		}
		if s.arrayFull(*r) {
			if r.Reason == reasonArrayLimit {
				return false
			}
			r.Reason = reasonArrayLimit
			return true
		}
		gpus, ok := s.allocate(*r)
		if !ok {
			if r.Reason == reasonResources {
				return false
			}
			r.Reason = reasonResources
			return true
		}
		c, err := s.launch(*r, gpus)
		if err != nil {
			launchErr = err
			return false
		}
		host, _ := os.Hostname()
		r.State, r.Reason, r.Start, r.Node = jobs.StateRunning, "", time.Now(), host
		r.GPUs, r.ChildPGID = gpus, c.Process.Pid
		cmd, started = c, true
		return true
	})
	if err == nil {
		err = launchErr
	}
	if err != nil && cmd != nil {
		// Started, but its record could not say so: do not leave it running unseen.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, false, err
	}
	return cmd, started, err
}

// arrayFull reports whether MaxParallel of r's array tasks are running already (checked
// under the GPU lock, which every start takes, so two tasks never both take the last
// place).
func (s *supervisor) arrayFull(r record) bool {
	if r.Array == "" || r.MaxParallel <= 0 {
		return false
	}
	paths, _ := filepath.Glob(filepath.Join(s.dir, r.Array+"_*.json"))
	now := time.Now()
	running := 0
	for _, p := range paths {
		o, err := readRecord(p)
		if err == nil && o.Array == r.Array && o.ID != r.ID && effective(p, o, now).State == jobs.StateRunning {
			running++
		}
	}
	return running >= r.MaxParallel
}

// allocate picks the job's GPUs among those no running job holds. A machine without
// GPUs runs every job with none, as the stage scripts and the trainer fall back to CPU.
func (s *supervisor) allocate(r record) ([]string, bool) {
	if r.GPUsRequested <= 0 || len(r.MachineGPUs) == 0 {
		return []string{}, true
	}
	busy := map[string]bool{}
	ents, _ := os.ReadDir(s.dir)
	now := time.Now()
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") || name == r.ID+".json" {
			continue
		}
		p := filepath.Join(s.dir, name)
		o, err := readRecord(p)
		if err != nil || o.State != jobs.StateRunning {
			continue
		}
		if effective(p, o, now).State == jobs.StateRunning {
			for _, g := range o.GPUs {
				busy[g] = true
			}
		}
	}
	var free []string
	for _, g := range r.MachineGPUs {
		if !busy[g] {
			free = append(free, g)
		}
	}
	if len(free) < r.GPUsRequested {
		return nil, false
	}
	return free[:r.GPUsRequested], true
}

// launch starts `bash <script>` as Slurm would: in the run directory, output to the
// job's log files, in a process group of its own so Cancel can end all of it.
func (s *supervisor) launch(r record, gpus []string) (*exec.Cmd, error) {
	logDir := filepath.Join(r.RunDir, experiment.LogsDir)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	open := func(ext string) (*os.File, error) {
		return os.OpenFile(experiment.LogPath(r.RunDir, r.JobName, r.ID, ext), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	stdout, err := open("out")
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := open("err")
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()

	cmd := exec.Command("bash", r.Script)
	cmd.Dir = r.RunDir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, stdout, stderr
	cmd.Env = jobEnv(os.Environ(), r, gpus)
	// A process group of its own; on Linux also Pdeathsig (see jobSysProcAttr). The
	// signal follows the thread that started the child, so this goroutine's thread stays
	// locked to it until the script ends (golang/go#27505); wait runs on the same goroutine.
	cmd.SysProcAttr = jobSysProcAttr()
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return cmd, nil
}

// jobEnv is the supervisor's environment for the script, minus any SLURM_* variables
// (submitted from inside an allocation, the script would take Slurm's job ID and call
// scontrol), plus the job's ID and GPUs.
func jobEnv(env []string, r record, gpus []string) []string {
	out := make([]string, 0, len(env)+4)
	for _, kv := range env {
		if strings.HasPrefix(kv, "SLURM_") || strings.HasPrefix(kv, envJobID+"=") ||
			strings.HasPrefix(kv, "CUDA_VISIBLE_DEVICES=") || strings.HasPrefix(kv, envArrayTask+"=") ||
			strings.HasPrefix(kv, envTrialOffset+"=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, envJobID+"="+r.ID, "CUDA_VISIBLE_DEVICES="+strings.Join(gpus, ","))
	if r.Array != "" {
		out = append(out, envArrayTask+"="+strconv.Itoa(r.Task), envTrialOffset+"="+strconv.Itoa(r.TrialOffset))
	}
	return out
}

// The array task and trial offset of a sweep's task, as the job script reads them
// without Slurm (Slurm's own is SLURM_ARRAY_TASK_ID).
const (
	envArrayTask   = "HPCTL_ARRAY_TASK"
	envTrialOffset = "HPCTL_TRIAL_OFFSET"
)

// wait waits for the script, ends what it left behind in its process group (Slurm ends
// every process of a job), and records the job's end.
func (s *supervisor) wait(ctx context.Context, cmd *exec.Cmd) error {
	defer runtime.UnlockOSThread()
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		// The script is left a zombie, so its pid (the group's id) cannot be reused
		// before the group is killed below.
		waitExitedNoReap(pid)
		close(exited)
	}()
	select {
	case <-exited:
	case <-ctx.Done():
		s.logf("stopping: terminating the job's process group")
		_, _ = update(s.dir, s.id, func(r *record) bool { r.CancelRequested = true; return true })
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(supervisorGrace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
		}
	}
	if left := groupMembers(pid); len(left) > 1 {
		s.logf("the script left %d processes behind; killing them", len(left)-1)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	werr := cmd.Wait()
	code, sig := 0, 0
	var exitErr *exec.ExitError
	if errors.As(werr, &exitErr) {
		ws := exitErr.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			sig = int(ws.Signal())
		} else {
			code = ws.ExitStatus()
		}
	} else if werr != nil {
		return s.end(jobs.StateFailed, "wait: "+werr.Error(), "")
	}
	// jobs/slurm's form of sacct's code:signal: "3", or "0:15" when a signal ended it.
	exit := strconv.Itoa(code)
	if sig != 0 {
		exit += ":" + strconv.Itoa(sig)
	}
	state, reason := jobs.StateCompleted, ""
	if code != 0 || sig != 0 {
		state, reason = jobs.StateFailed, reasonNonZeroExit
	}
	s.logf("script ended: exit %s", exit)
	return s.end(state, reason, exit)
}

// end records the job's final state, unless Cancel already did; a cancel request turns
// any end into CANCELLED.
func (s *supervisor) end(state jobs.State, reason, exit string) error {
	_, err := update(s.dir, s.id, func(r *record) bool {
		changed := false
		if exit != "" && r.ExitCode == "" {
			r.ExitCode, changed = exit, true
		}
		if r.State.Terminal() {
			return changed
		}
		if r.CancelRequested {
			state, reason = jobs.StateCancelled, reasonCancelled
		}
		r.State, r.Reason, r.End = state, reason, time.Now()
		return true
	})
	if err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	return nil
}
