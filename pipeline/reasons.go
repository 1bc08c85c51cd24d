package pipeline

import (
	"fmt"
	"strings"
)

// Waiting is what is known of a waiting stage beyond the scheduler's reason code.
type Waiting struct {
	// Reason is the scheduler's code (squeue's %r: "Resources", "PartitionConfig"...).
	Reason string
	// DependsOn are the stages it waits for that have not completed.
	DependsOn []string
	// Requeued: its job ran, asked to be requeued and waits to start again;
	// ResumeEpoch is the epoch its next attempt starts with (0 for a stage without
	// epochs).
	Requeued    bool
	ResumeEpoch int
}

// reasonWords are Slurm's pending reasons (squeue(1), "JOB REASON CODES") that users
// meet most, in plain words: what holds the job and whether it will start by itself.
var reasonWords = map[string]string{
	"PartitionConfig":             "the partition cannot run it as asked (more CPUs, GPUs, memory or time than its nodes or limits allow); it will not start until the stage's slurm settings change",
	"Resources":                   "waiting for free CPUs, GPUs or memory on a node",
	"Priority":                    "other jobs with higher priority are ahead of it in the queue",
	"QOSMaxJobsPerUserLimit":      "you already run as many jobs as your QOS allows; it starts when one of yours ends",
	"QOSMaxSubmitJobPerUserLimit": "you have as many jobs queued as your QOS allows",
	"AssocMaxJobsLimit":           "your account already runs as many jobs as it may; it starts when one of them ends",
	"AssocGrpGRES":                "your account's group is using all the GPUs it may",
	"QOSMaxGRESPerUser":           "you are using all the GPUs your QOS allows; it starts when some are freed",
	"ReqNodeNotAvail":             "a node it needs is down, drained or reserved",
	"Reservation":                 "waiting for its reservation to start",
	"BeginTime":                   "waiting for its start time",
	"JobHeldUser":                 "held by you; `scontrol release` lets it start",
	"JobHeldAdmin":                "held by an administrator",
	"NodeDown":                    "a node it needs is down",
	"None":                        "just queued; the scheduler has not looked at it yet",
	"DependencyNeverSatisfied":    "a stage it depends on failed, so it will never start",
}

// Explain puts why a stage waits in plain words: a requeued stage says the epoch it
// resumes with, a stage waiting for its dependencies names them, and Slurm's common
// reason codes become a sentence. An unknown code is returned as it is.
func Explain(w Waiting) string {
	switch {
	case w.Requeued && w.ResumeEpoch > 0:
		return fmt.Sprintf("requeued, resumes at epoch %d", w.ResumeEpoch)
	case w.Requeued:
		return "requeued, waits to start again"
	case w.Reason == "Dependency" && len(w.DependsOn) > 0:
		return "waits for " + strings.Join(w.DependsOn, " and ") + " to finish"
	case w.Reason == "Dependency":
		return "waits for the stages it depends on to finish"
	}
	// Some codes carry details: "ReqNodeNotAvail, UnavailableNodes:node3".
	code := w.Reason
	if i := strings.IndexAny(code, ", ("); i > 0 {
		code = code[:i]
	}
	if s, ok := reasonWords[code]; ok {
		return s
	}
	return w.Reason
}
