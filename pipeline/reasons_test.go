package pipeline

import "testing"

func TestExplain(t *testing.T) {
	for _, c := range []struct {
		in   Waiting
		want string
	}{
		{Waiting{Reason: "PartitionConfig"}, "the partition cannot run it as asked (more CPUs, GPUs, memory or time than its nodes or limits allow); it will not start until the stage's slurm settings change"},
		{Waiting{Reason: "Resources"}, "waiting for free CPUs, GPUs or memory on a node"},
		{Waiting{Reason: "Priority"}, "other jobs with higher priority are ahead of it in the queue"},
		{Waiting{Reason: "QOSMaxJobsPerUserLimit"}, "you already run as many jobs as your QOS allows; it starts when one of yours ends"},
		{Waiting{Reason: "ReqNodeNotAvail"}, "a node it needs is down, drained or reserved"},
		// squeue adds the nodes after the code.
		{Waiting{Reason: "ReqNodeNotAvail, UnavailableNodes:node3"}, "a node it needs is down, drained or reserved"},
		{Waiting{Reason: "Dependency", DependsOn: []string{"frozen"}}, "waits for frozen to finish"},
		{Waiting{Reason: "Dependency", DependsOn: []string{"a", "b"}}, "waits for a and b to finish"},
		{Waiting{Reason: "Dependency"}, "waits for the stages it depends on to finish"},
		{Waiting{Reason: "BeginTime"}, "waiting for its start time"},
		// Slurm requeues a job with a begin time a little ahead: the requeue explains it.
		{Waiting{Reason: "BeginTime", Requeued: true, ResumeEpoch: 83}, "requeued, resumes at epoch 83"},
		{Waiting{Reason: "BeginTime", Requeued: true}, "requeued, waits to start again"},
		{Waiting{Reason: "SomethingNew"}, "SomethingNew"},
		{Waiting{}, ""},
	} {
		if got := Explain(c.in); got != c.want {
			t.Errorf("Explain(%+v) = %q, want %q", c.in, got, c.want)
		}
	}
}
