package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/fsutil"
	"github.com/hpctl/hpctl/jobs"
)

// record is one job's state file, <state dir>/<id>.json. The supervisor and Cancel change
// it under the job's lock file (<id>.lock); readers need no lock, because every write
// replaces the whole file atomically.
type record struct {
	ID        string   `json:"id"`
	RunID     string   `json:"run_id"`
	RunDir    string   `json:"run_dir"`
	Stage     string   `json:"stage"`
	Script    string   `json:"script"`
	JobName   string   `json:"job_name"`
	DependsOn []string `json:"depends_on,omitempty"`
	// GPUsRequested is the request; GPUs are the devices handed out when the job started.
	GPUsRequested int      `json:"gpus_requested"`
	MachineGPUs   []string `json:"machine_gpus,omitempty"`
	GPUs          []string `json:"gpus,omitempty"`
	// Poll is how often the supervisor looks at the dependencies' records.
	Poll time.Duration `json:"poll_ns"`
	// Array is the array job this record is task Task of (its id is Array_Task); the
	// task runs trial TrialOffset+Task, with at most MaxParallel of the array's tasks
	// running at once (0: no limit).
	Array       string `json:"array,omitempty"`
	Task        int    `json:"task,omitempty"`
	TrialOffset int    `json:"trial_offset,omitempty"`
	MaxParallel int    `json:"max_parallel,omitempty"`

	State  jobs.State `json:"state"`
	Reason string     `json:"reason,omitempty"`
	// ExitCode is "<code>", or "<code>:<signal>" when a signal ended the script (the
	// form jobs/slurm makes of sacct's), once the script ended.
	ExitCode  string    `json:"exit_code,omitempty"`
	Submitted time.Time `json:"submitted"`
	Start     time.Time `json:"start,omitzero"`
	End       time.Time `json:"end,omitzero"`
	Node      string    `json:"node,omitempty"`

	// SupervisorPID and SupervisorStart (the start time in clock ticks since boot, field 22
	// of /proc/<pid>/stat) identify the supervisor even after its pid is reused.
	SupervisorPID   int    `json:"supervisor_pid,omitempty"`
	SupervisorStart uint64 `json:"supervisor_start,omitempty"`
	// ChildPGID is the process group of `bash <script>` and everything it starts.
	ChildPGID int `json:"child_pgid,omitempty"`
	// CancelRequested is set before Cancel signals a running job, so the supervisor
	// records the job's end as CANCELLED rather than FAILED.
	CancelRequested bool `json:"cancel_requested,omitempty"`
}

// Reasons, in Slurm's words where Slurm has one.
const (
	reasonDependency     = "Dependency"
	reasonNeverSatisfied = "DependencyNeverSatisfied"
	reasonResources      = "Resources"
	reasonNonZeroExit    = "NonZeroExitCode"
	reasonCancelled      = "cancelled"
	reasonSupervisorDied = "supervisor died"
	reasonOrphanRunning  = "supervisor died; job still running"
	reasonNeverStarted   = "supervisor never started"
	reasonArrayLimit     = "JobArrayTaskLimit"
)

// supervisorStartupGrace is how long a record may stay without a supervisor pid before
// Query gives up on it (Submit writes the pid right after starting the process).
const supervisorStartupGrace = 30 * time.Second

func recordPath(dir, id string) string { return filepath.Join(dir, id+".json") }
func lockPath(dir, id string) string   { return filepath.Join(dir, id+".lock") }

func readRecord(path string) (record, error) {
	var r record
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("job record %s: %w", path, errkind.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("job record: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("job record %s: %w", path, err)
	}
	return r, nil
}

func writeRecord(path string, r record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode job record %s: %w", r.ID, err)
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

// update changes a job's record under its lock: fn gets the current record and returns
// whether to write it back.
func update(dir, id string, fn func(r *record) bool) (record, error) {
	unlock, err := fsutil.Lock(lockPath(dir, id))
	if err != nil {
		return record{}, err
	}
	defer unlock()
	r, err := readRecord(recordPath(dir, id))
	if err != nil {
		return r, err
	}
	if fn(&r) {
		if err := writeRecord(recordPath(dir, id), r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// procStart returns a live process's start time (clock ticks since boot) from
// /proc/<pid>/stat; ok is false when the process is gone or a zombie, which has exited.
func procStart(pid int) (start uint64, ok bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: fields are counted from
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

// supervisorAlive reports whether the record's supervisor is still the process it names.
func supervisorAlive(r record) bool {
	start, ok := procStart(r.SupervisorPID)
	return ok && start == r.SupervisorStart
}

// effective is the record as Query reports it: a pending or running job whose supervisor
// is gone will never end by itself, so it is FAILED. path is re-read before saying so,
// because a supervisor writes the job's end just before it exits.
func effective(path string, r record, now time.Time) record {
	if r.State.Terminal() {
		return r
	}
	if r.SupervisorPID == 0 {
		if now.Sub(r.Submitted) < supervisorStartupGrace {
			return r
		}
	} else if supervisorAlive(r) {
		return r
	}
	if again, err := readRecord(path); err == nil {
		if again.State.Terminal() {
			return again
		}
		r = again
	}
	// The supervisor is gone but its job's processes may not be (a command that takes its
	// time over SIGTERM, or ignores it): until the group is gone the job still runs and
	// still holds its GPUs.
	if r.State == jobs.StateRunning && r.ChildPGID > 0 && groupIsJob(r.ChildPGID, r.ID) {
		r.Reason = reasonOrphanRunning
		return r
	}
	if r.SupervisorPID == 0 {
		r.Reason = reasonNeverStarted
	} else {
		r.Reason = reasonSupervisorDied
	}
	r.State = jobs.StateFailed
	return r
}

func (r record) jobState(now time.Time) jobs.JobState {
	s := jobs.JobState{ID: r.ID, State: r.State, Reason: r.Reason, Node: r.Node, ExitCode: r.ExitCode,
		Start: r.Start, End: r.End}
	switch {
	case r.Start.IsZero():
	case !r.End.IsZero():
		s.Elapsed = r.End.Sub(r.Start)
	case r.State == jobs.StateRunning:
		s.Elapsed = now.Sub(r.Start)
	}
	return s
}

// groupMembers lists the pids whose process group is pgid, by reading /proc.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0] state, f[1] ppid, f[2] pgrp.
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupIsJob reports whether some live member of process group pgid carries the job's
// HPCTL_JOB_ID, so a group id reused by an unrelated program is never signalled.
func groupIsJob(pgid int, id string) bool {
	want := []byte(envJobID + "=" + id)
	for _, pid := range groupMembers(pgid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if bytes.Equal(kv, want) {
				return true
			}
		}
	}
	return false
}
