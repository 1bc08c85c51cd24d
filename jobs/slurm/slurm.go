// Package slurm is the Executor that runs jobs through Slurm's own tools (sbatch, squeue,
// sacct, scancel), each run through a transport.Transport so the same code works on the
// login node and over SSH.
//
// Politeness: Slurm's man pages ask tools not to call squeue or sacct in loops. Query
// resolves any number of jobs with one squeue call and at most one sacct call; Cancel is
// one scancel call.
package slurm

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/transport"
)

// Retry is the backoff for transient controller errors: Attempts tries in all, waiting
// Initial, then twice as long each time, never more than Max between two tries, and no
// new try that would, by the last one's duration, end past Budget.
type Retry struct {
	Attempts int
	Initial  time.Duration
	Max      time.Duration
	// Budget bounds the whole; 0 means no bound but Attempts. It matters because Slurm's
	// clients retry on their own: with the controller down, squeue and sbatch each take
	// about 9 s to say "Unable to contact slurm controller", and trying that again
	// three times would keep a user waiting half a minute for the same answer.
	Budget time.Duration
}

// DefaultRetry tries up to four times, sleeping 0.2 s, 0.4 s, 0.8 s between tries (fast
// failures such as "Resource temporarily unavailable"), within 15 s in all (a slow
// "Unable to contact slurm controller" is then tried once).
var DefaultRetry = Retry{Attempts: 4, Initial: 200 * time.Millisecond, Max: 2 * time.Second, Budget: 15 * time.Second}

// Options tune an Executor.
type Options struct {
	Retry Retry
	// MaxArgLen bounds the length of one --jobs= list. Past it Query splits the ids into
	// several squeue/sacct calls: command lines have limits (ARG_MAX, and sshd's), and a
	// list this long means over ten thousand jobs. Default 100,000 bytes.
	MaxArgLen int
}

// Executor implements jobs.Executor for Slurm.
type Executor struct {
	t    transport.Transport
	opts Options

	mu sync.Mutex
	// noAccounting is set once sacct said accounting is disabled, so later queries (a
	// status --watch) do not ask again.
	noAccounting bool
	// maxArray is MaxArraySize, once read.
	maxArray int
}

var _ jobs.Executor = (*Executor)(nil)

// New returns a Slurm executor that runs Slurm's commands through t.
func New(t transport.Transport, opts Options) *Executor {
	if opts.Retry.Attempts <= 0 {
		opts.Retry = DefaultRetry
	}
	if opts.MaxArgLen <= 0 {
		opts.MaxArgLen = 100_000
	}
	return &Executor{t: t, opts: opts}
}

// Name implements jobs.Executor.
func (*Executor) Name() string { return "slurm" }

// Accounting reports whether sacct has answered so far: false once it said accounting
// storage is disabled. Status then relies on squeue and the run directory's markers.
func (e *Executor) Accounting() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.noAccounting
}

// Available reports whether sbatch can be run through t: executor "auto" picks Slurm
// when it can.
func Available(ctx context.Context, t transport.Transport) bool {
	res, err := t.Run(ctx, []string{"sbatch", "--version"}, nil)
	return err == nil && res.ExitCode == 0
}

// Submit implements jobs.Executor: sbatch --parsable, with afterok on DependsOn and
// --kill-on-invalid-dep=yes so that Slurm cancels a job whose dependency failed (hpctl's
// status also cancels any it finds stuck with DependencyNeverSatisfied, as some Slurm
// versions leave them pending).
//
// A submission retried after a socket timeout may, rarely, have been accepted the first
// time; sbatch gives no way to tell. hpctl accepts that risk rather than leave a
// pipeline half submitted.
func (e *Executor) Submit(ctx context.Context, req jobs.SubmitRequest) (string, error) {
	if req.Script == "" {
		return "", errors.New("sbatch: no script")
	}
	argv := []string{"sbatch", "--parsable"}
	after := "afterok:"
	if a := req.Array; a != nil {
		if a.Count < 1 || a.Offset < 0 || a.MaxParallel < 0 {
			return "", fmt.Errorf("sbatch %s: bad array %+v", req.Script, *a)
		}
		spec := fmt.Sprintf("--array=0-%d", a.Count-1)
		if a.MaxParallel > 0 {
			spec += fmt.Sprintf("%%%d", a.MaxParallel)
		}
		argv = append(argv, spec, fmt.Sprintf("--export=ALL,HPCTL_TRIAL_OFFSET=%d", a.Offset))
		after = "aftercorr:"
	}
	var deps []string
	if len(req.DependsOn) > 0 {
		deps = append(deps, after+strings.Join(req.DependsOn, ":"))
	}
	if len(req.AfterAny) > 0 {
		deps = append(deps, "afterany:"+strings.Join(req.AfterAny, ":"))
	}
	if len(deps) > 0 {
		if err := checkIDs(append(slices.Clone(req.DependsOn), req.AfterAny...)); err != nil {
			return "", err
		}
		// A comma: every dependency must be satisfied.
		argv = append(argv, "--dependency="+strings.Join(deps, ","), "--kill-on-invalid-dep=yes")
	}
	argv = append(argv, req.Script)
	res, err := e.run(ctx, argv)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		// Not transient (run retried those): sbatch refused the job, and said why on
		// several lines that are kept as they are.
		return "", &RefusedError{Script: req.Script, ExitCode: res.ExitCode, Message: wholeMessage(res)}
	}
	id, err := parseSubmit(string(res.Stdout))
	if err != nil {
		return "", fmt.Errorf("sbatch %s: %w", req.Script, err)
	}
	return id, nil
}

var jobIDRe = regexp.MustCompile(`^[0-9]+(_[0-9]+)?$`)

// parseSubmit reads sbatch --parsable's "id" or "id;cluster".
func parseSubmit(out string) (string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	id, _, _ := strings.Cut(last, ";")
	if !jobIDRe.MatchString(id) {
		return "", fmt.Errorf("unexpected output %q (want a job id)", strings.TrimSpace(out))
	}
	return id, nil
}

// Cancel implements jobs.Executor with one scancel for all ids. Jobs that already ended
// are not an error.
func (e *Executor) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := checkIDs(ids); err != nil {
		return err
	}
	// "--" ends scancel's options: even a checked id never reaches it as a flag.
	res, err := e.run(ctx, append([]string{"scancel", "--"}, ids...))
	if err != nil {
		return err
	}
	if res.ExitCode == 0 {
		return nil
	}
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stderr)), "\n") {
		l := strings.ToLower(line)
		if line == "" || strings.Contains(l, "already completing or completed") ||
			strings.Contains(l, "invalid job id") || strings.Contains(l, "job is no longer pending") {
			continue
		}
		bad = append(bad, line)
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("scancel %s: %s", strings.Join(ids, " "), strings.Join(bad, "; "))
}

// squeueFormat: id, state (long form), reason, nodes, elapsed. "|" never occurs in these
// fields.
const squeueFormat = "%i|%T|%r|%N|%M"

// MaxArray implements jobs.ArrayLimiter: MaxArraySize from `scontrol show config`, read
// once per Executor. Array indices must stay below it.
func (e *Executor) MaxArray(ctx context.Context) (int, error) {
	e.mu.Lock()
	n := e.maxArray
	e.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	res, err := e.run(ctx, []string{"scontrol", "show", "config"})
	if err != nil {
		return 0, err
	}
	if res.ExitCode != 0 {
		return 0, fmt.Errorf("scontrol show config: exit %d: %s", res.ExitCode, message(res))
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "MaxArraySize" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				return 0, fmt.Errorf("scontrol show config: MaxArraySize %q", strings.TrimSpace(v))
			}
			e.mu.Lock()
			e.maxArray = n
			e.mu.Unlock()
			return n, nil
		}
	}
	return 0, errors.New("scontrol show config: no MaxArraySize")
}

// findFormat adds the job name and working directory (the run directory: job scripts set
// --chdir to it) to squeueFormat; the directory comes last, so a "|" in it stays whole.
const findFormat = squeueFormat + "|%j|%Z"

// Find implements jobs.Finder with one squeue call over this user's jobs (all states, so
// jobs that ended within the controller's MinJobAge are found too). Jobs that ended
// longer ago are not found; they hold nothing.
func (e *Executor) Find(ctx context.Context, runDirs []string) ([]jobs.Found, error) {
	want := map[string]bool{}
	for _, d := range runDirs {
		want[d] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	res, err := e.run(ctx, []string{"squeue", "--me", "--states=all", "-h", "-o", findFormat})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("squeue: exit %d: %s", res.ExitCode, message(res))
	}
	var out []jobs.Found
	seen := map[string]bool{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.SplitN(strings.TrimRight(line, "\r"), "|", 7)
		if len(f) < 7 || !want[f[6]] {
			continue
		}
		// An array job is found as its tasks (id_index, or id_[2-9] while pending):
		// what hpctl records and cancels is the array job itself.
		id, _, _ := strings.Cut(f[0], "_")
		if checkIDs([]string{id}) != nil || seen[id] {
			continue
		}
		seen[id] = true
		st := parseSqueue(strings.Join(f[:5], "|"))[f[0]]
		st.ID = id
		out = append(out, jobs.Found{JobState: st, Name: f[5], RunDir: f[6]})
	}
	return out, nil
}

// sacctFields are read by parseSacct in this order.
// JobID rather than JobIDRaw: the same for a plain job, id_index for an array task (a
// pending array's tasks come compressed, id_[2-4], and are left to squeue).
const sacctFields = "JobID,State,Reason,NodeList,ElapsedRaw,ExitCode,Start,End"

// Query implements jobs.Executor: one squeue call (all states, so a job that ended within
// the controller's MinJobAge is still seen) and, for jobs squeue does not show as live,
// one sacct call. Without accounting, sacct's failure is remembered and only squeue's
// answer is returned; the caller fills in the rest from the run directory's markers.
func (e *Executor) Query(ctx context.Context, ids []string) (map[string]jobs.JobState, error) {
	out := map[string]jobs.JobState{}
	// An id that is not a Slurm job id (a corrupt record) cannot name a job: it is left
	// out, so it is absent from the answer like any job Slurm does not know, and the
	// other runs' status still shows.
	var valid []string
	for _, id := range uniq(ids) {
		if jobIDPattern.MatchString(id) {
			valid = append(valid, id)
		}
	}
	ids = valid
	if len(ids) == 0 {
		return out, nil
	}
	for _, chunk := range chunks(ids, e.opts.MaxArgLen) {
		// -r: one line per array task (id_index), pending ones too.
		res, err := e.run(ctx, []string{"squeue", "--states=all", "-r", "--jobs=" + strings.Join(chunk, ","), "-h", "-o", squeueFormat})
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 && !strings.Contains(strings.ToLower(message(res)), "invalid job id") {
			return nil, fmt.Errorf("squeue: exit %d: %s", res.ExitCode, message(res))
		}
		// squeue fails with "Invalid job id" when none of the ids is known any more.
		for id, st := range parseSqueue(string(res.Stdout)) {
			out[id] = st
		}
	}
	// An array job answers as its tasks (id_index). Tasks that ended are dropped from
	// squeue's answer while others still run, so sacct is asked about every array.
	arrays := map[string]bool{}
	for key := range out {
		if base, _, ok := strings.Cut(key, "_"); ok {
			arrays[base] = true
		}
	}
	var finished []string
	for _, id := range ids {
		if st, ok := out[id]; !ok || st.State.Terminal() || arrays[id] {
			finished = append(finished, id)
		}
	}
	if len(finished) == 0 || !e.Accounting() {
		return out, nil
	}
	for _, chunk := range chunks(finished, e.opts.MaxArgLen) {
		// SLURM_TIME_FORMAT=%s: Start and End in Unix seconds, free of the cluster's time
		// zone. env(1) sets it without a shell, over SSH too.
		res, err := e.run(ctx, []string{"env", "SLURM_TIME_FORMAT=%s", "sacct", "-X", "-n", "-P",
			"-j", strings.Join(chunk, ","), "--format=" + sacctFields})
		if errors.Is(err, errkind.ErrUnreachable) {
			// squeue answered a moment ago, so this is slurmdbd (or its database) that
			// is down: show what squeue knows rather than nothing.
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			if accountingDisabled(message(res)) {
				e.mu.Lock()
				e.noAccounting = true
				e.mu.Unlock()
				return out, nil
			}
			return nil, fmt.Errorf("sacct: exit %d: %s", res.ExitCode, message(res))
		}
		asked := map[string]bool{}
		for _, id := range chunk {
			asked[id] = true
		}
		for id, st := range parseSacct(string(res.Stdout)) {
			base, _, _ := strings.Cut(id, "_")
			if !asked[id] && !asked[base] {
				continue
			}
			// squeue's word is the fresher for a live task; sacct adds exit codes and
			// times once it ended.
			if cur, ok := out[id]; ok && !cur.State.Terminal() && id != base {
				continue
			}
			out[id] = st
		}
	}
	return out, nil
}

func accountingDisabled(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "accounting storage is disabled") || strings.Contains(m, "accounting_storage/none")
}

func parseSqueue(out string) map[string]jobs.JobState {
	m := map[string]jobs.JobState{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 5 || f[0] == "" {
			continue
		}
		st := jobs.JobState{ID: f[0], Reason: f[2], Node: f[3], Elapsed: parseElapsed(f[4])}
		st.State, st.Reason = normState(f[1], st.Reason)
		if st.Reason == "None" {
			st.Reason = ""
		}
		m[st.ID] = st
	}
	return m
}

func parseSacct(out string) map[string]jobs.JobState {
	m := map[string]jobs.JobState{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 8 || f[0] == "" {
			continue
		}
		st := jobs.JobState{ID: f[0], Node: f[3], ExitCode: exitCode(f[5])}
		// "CANCELLED by 0" names who cancelled; the state is the first word.
		state, _, _ := strings.Cut(f[1], " ")
		st.State, st.Reason = normState(state, f[2])
		// sacct's Reason is why the job last waited; once it ended that only misleads,
		// except for a job cancelled while waiting (its dependency failed).
		if st.Reason == "None" || (st.State.Terminal() && st.State != jobs.StateCancelled) {
			st.Reason = ""
		}
		if st.Node == "None assigned" {
			st.Node = ""
		}
		if s, err := strconv.ParseInt(f[4], 10, 64); err == nil {
			st.Elapsed = time.Duration(s) * time.Second
		}
		st.Start = unix(f[6])
		st.End = unix(f[7])
		if st.State == jobs.StatePending || st.State == jobs.StateRunning {
			st.ExitCode = "" // 0:0 means "not yet" there
		}
		m[st.ID] = st
	}
	return m
}

// normState maps Slurm's many states onto the vocabulary status shows.
func normState(s, reason string) (jobs.State, string) {
	switch s {
	case "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING":
		return jobs.StateRunning, reason
	case "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED":
		if reason == "" || reason == "None" {
			reason = strings.ToLower(s)
		}
		return jobs.StatePending, reason
	case "BOOT_FAIL", "SPECIAL_EXIT":
		return jobs.StateFailed, strings.ToLower(s)
	case "DEADLINE":
		return jobs.StateTimeout, "deadline"
	case "REVOKED":
		return jobs.StateCancelled, "revoked"
	case "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED",
		"NODE_FAIL", "OUT_OF_MEMORY":
		return jobs.State(s), reason
	}
	return jobs.StateUnknown, s
}

// exitCode turns sacct's "code:signal" into "code", or "code:signal" when a signal
// ended the job.
func exitCode(s string) string {
	code, sig, ok := strings.Cut(s, ":")
	if !ok || sig == "0" {
		return code
	}
	return s
}

func unix(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// parseElapsed reads squeue's [days-][hours:]minutes:seconds.
func parseElapsed(s string) time.Duration {
	var days int
	if d, rest, ok := strings.Cut(s, "-"); ok {
		days, _ = strconv.Atoi(d)
		s = rest
	}
	var secs int
	for _, part := range strings.Split(s, ":") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return 0
		}
		secs = secs*60 + n
	}
	return time.Duration(days)*24*time.Hour + time.Duration(secs)*time.Second
}

// transientPatterns are what Slurm's clients (and ssh) print when the controller is
// busy, restarting or down; anything else is a real answer and is not retried.
var transientPatterns = []string{
	"socket timed out",
	"resource temporarily unavailable",
	"unable to contact slurm controller",
	"connection refused",
	"temporarily unable to accept job",
	"slurm_persist_conn_open",
	"connection timed out",
	"connection reset",
}

func transient(msg string) bool {
	m := strings.ToLower(msg)
	for _, p := range transientPatterns {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}

// run runs argv through the transport, retrying transient controller errors with capped
// exponential backoff; when they persist it returns an error wrapping
// errkind.ErrUnreachable that says what the controller answered.
func (e *Executor) run(ctx context.Context, argv []string) (transport.Result, error) {
	r := e.opts.Retry
	wait := r.Initial
	start := time.Now()
	var last string
	for attempt := 1; ; attempt++ {
		tryStart := time.Now()
		res, err := e.t.Run(ctx, argv, nil)
		took := time.Since(tryStart)
		switch {
		case err != nil && ctx.Err() != nil:
			return res, err
		case err != nil && errors.Is(err, exec.ErrNotFound):
			return res, fmt.Errorf("%s is not installed where hpctl looks for it (%s): %w", argv[0], e.t.Name(), err)
		case err != nil && (errors.Is(err, errkind.ErrUnreachable) || transient(err.Error())):
			last = err.Error()
		case err != nil:
			return res, err
		case res.ExitCode != 0 && transient(message(res)):
			last = message(res)
		default:
			return res, nil
		}
		overBudget := r.Budget > 0 && time.Since(start)+wait+took > r.Budget
		if attempt >= r.Attempts || overBudget {
			tries := "1 try"
			if attempt > 1 {
				tries = fmt.Sprintf("%d tries", attempt)
			}
			return res, fmt.Errorf("%w: the Slurm controller did not answer %s (%s over %s): %s",
				errkind.ErrUnreachable, argv[0], tries, time.Since(start).Round(time.Millisecond), last)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		case <-t.C:
		}
		wait *= 2
		if r.Max > 0 && wait > r.Max {
			wait = r.Max
		}
	}
}

// RefusedError is sbatch's refusal of a job: nothing was queued. It keeps everything
// sbatch said, line by line ("sbatch: error: invalid partition specified: gpu" and then
// "sbatch: error: Batch job submission failed: Invalid partition name specified").
type RefusedError struct {
	Script   string
	ExitCode int
	Message  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("sbatch refused %s (exit %d):\n  %s", e.Script, e.ExitCode, strings.ReplaceAll(e.Message, "\n", "\n  "))
}

// Unwrap makes a refusal an errkind.ErrRefused (its own exit code).
func (e *RefusedError) Unwrap() error { return errkind.ErrRefused }

// wholeMessage is what a failed command said, every line, trimmed.
func wholeMessage(res transport.Result) string {
	s := strings.TrimSpace(string(res.Stderr))
	if out := strings.TrimSpace(string(res.Stdout)); s == "" {
		s = out
	}
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, " \t\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// message is what a failed command said, on one line.
func message(res transport.Result) string {
	s := strings.TrimSpace(string(res.Stderr))
	if s == "" {
		s = strings.TrimSpace(string(res.Stdout))
	}
	return strings.Join(strings.Fields(s), " ")
}

// jobIDPattern is a Slurm job id as hpctl records it: a number, or an array task
// "<array id>_<index>".
var jobIDPattern = regexp.MustCompile(`^[0-9]{1,20}(_[0-9]{1,10})?$`)

// checkIDs refuses ids that are not Slurm job ids. They come from the registry, a file
// anyone with the user's rights can edit: a record turned "--user=root" would otherwise
// make scancel cancel every job the user may cancel.
func checkIDs(ids []string) error {
	for _, id := range ids {
		if !jobIDPattern.MatchString(id) {
			return fmt.Errorf("job id %q is not a Slurm job id (a tampered or corrupt run record?): not passed to Slurm", id)
		}
	}
	return nil
}

func uniq(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// chunks splits ids into comma-joined lists of at most max bytes each.
func chunks(ids []string, max int) [][]string {
	var out [][]string
	var cur []string
	n := 0
	for _, id := range ids {
		if len(cur) > 0 && n+1+len(id) > max {
			out = append(out, cur)
			cur, n = nil, 0
		}
		cur = append(cur, id)
		n += len(id) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
