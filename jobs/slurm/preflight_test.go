package slurm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/executortest"
	"github.com/hpctl/hpctl/transport"
)

// What sinfo prints on sites unlike the test cluster: several partitions, typed GPUs
// with socket lists, nodes down, partition limits.
func TestParseSinfo(t *testing.T) {
	out := `cpu*|c1|64|256000|(null)|idle|1-00:00:00|1-16|UNLIMITED|
cpu*|c2|64|256000|(null)|mixed|1-00:00:00|1-16|UNLIMITED|
gpu|g1|32|512000+|gpu:a100:4(S:0-1),mps:400|down*|2:00:00|1-2|16|
gpu|g2|16|128000|gpu:k80:2,gpu:p100:2|drained|2:00:00|1-2|16|
`
	parts, err := parseSinfo(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || !parts[0].def || parts[1].def || len(parts[0].nodes) != 2 || parts[0].maxNodes != 16 {
		t.Fatalf("partitions: %+v %+v", parts[0], parts[1])
	}
	g := parts[1]
	if g.nodes[0].gpus != 4 || g.nodes[1].gpus != 4 || g.nodes[0].memMB != 512000 || g.limit != 7200 || g.maxCPUs != 16 || g.maxNodes != 2 {
		t.Fatalf("gpu partition: %+v", g)
	}
	check := func(r jobs.Resources) ([]jobs.Refusal, string) { return g.check(r) }
	base := jobs.Resources{Time: "1:00:00", CPUsPerTask: 8, Mem: "100G", GPUs: 4, Nodes: 1}
	if ref, note := check(base); len(ref) != 0 || !strings.Contains(note, "down or drained") {
		t.Errorf("a request that fits down nodes only: %v, note %q", ref, note)
	}
	for _, c := range []struct {
		change func(*jobs.Resources)
		field  string
		why    string
	}{
		{func(r *jobs.Resources) { r.CPUsPerTask = 20 }, "cpus_per_task", "at most 16 CPUs per node (MaxCPUsPerNode)"},
		{func(r *jobs.Resources) { r.Time = "3:00:00" }, "time", "partition gpu allows at most 2:00:00"},
		{func(r *jobs.Resources) { r.Nodes = 3 }, "nodes", "at most 2 per job"},
		{func(r *jobs.Resources) { r.Mem = "1T" }, "mem", "has 500G (512000M)"},
		{func(r *jobs.Resources) { r.GPUs = 5 }, "gpus", "have at most 4"},
		// Each alone fits a node, together none: g1 has the memory, g2 is too small.
		{func(r *jobs.Resources) { r.Mem = "200G"; r.CPUsPerTask = 16; r.Nodes = 2 }, "nodes", "has 1 such"},
	} {
		r := base
		c.change(&r)
		ref, _ := check(r)
		if len(ref) != 1 || ref[0].Field != c.field || !strings.Contains(ref[0].Why, c.why) {
			t.Errorf("%+v: %+v; want %s: %q", r, ref, c.field, c.why)
		}
	}
	if n := gresGPUs("(null)"); n != 0 {
		t.Errorf("(null): %d GPUs", n)
	}
	for v, want := range map[string]int64{"64M": 64, "500G": 512000, "1T": 1 << 20, "2048K": 2, "100": 100, "0": 0, "x": -1} {
		if got := memMB(v); got != want {
			t.Errorf("memMB(%q) = %d, want %d", v, got, want)
		}
	}
	for v, want := range map[string]int64{"90": 5400, "30:00": 1800, "12:00:00": 43200, "1-00:00:00": 86400, "2-12": 216000, "infinite": 0, "UNLIMITED": 0} {
		if got := seconds(v); got != want {
			t.Errorf("seconds(%q) = %d, want %d", v, got, want)
		}
	}
}

// Against the real cluster (one node vm, 4 CPUs, 2 GPUs, partition debug): one sinfo
// for any number of requests, no sacctmgr unless an account or QOS is named; what the
// spec cannot ask for (two nodes, the multi-node helper's business) is checked too.
func TestCheckRealCluster(t *testing.T) {
	testenv.RequireSlurm(t)
	c := executortest.NewCounting(transport.NewLocal())
	e := New(c, Options{Retry: fastRetry})
	ok := jobs.Resources{Time: "00:05:00", CPUsPerTask: 4, Mem: "1G", GPUs: 2, Nodes: 1}
	two := ok
	two.Nodes = 2
	pf, err := e.Check(context.Background(), []jobs.Resources{ok, ok, ok, two})
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Refusals) != 1 || pf.Refusals[0].Index != 3 || pf.Refusals[0].Field != "nodes" ||
		!strings.Contains(pf.Refusals[0].Why, "partition debug has 1 such") {
		t.Fatalf("refusals: %+v", pf.Refusals)
	}
	if len(pf.Checked) != 1 || !strings.HasPrefix(pf.Checked[0], "partition debug (default): 1 node") {
		t.Errorf("checked: %q", pf.Checked)
	}
	if got := c.Counts(); len(got) != 1 || got["sinfo"] != 1 {
		t.Fatalf("commands: %v; want one sinfo", got)
	}
}

// A site that forbids sinfo: Check says so (the caller warns and goes on); a controller
// that does not answer is unreachable, as for every other command.
func TestCheckWithoutSinfo(t *testing.T) {
	f := &executortest.Faulty{Transport: transport.NewLocal(), Prog: "sinfo", Fail: 100, Stderr: "sinfo: error: Access/permission denied"}
	_, err := New(f, Options{Retry: fastRetry}).Check(context.Background(), []jobs.Resources{{CPUsPerTask: 1}})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || f.Failed() != 1 {
		t.Fatalf("forbidden sinfo: %v after %d tries", err, f.Failed())
	}
	f = &executortest.Faulty{Transport: transport.NewLocal(), Prog: "sinfo", Fail: 100,
		Stderr: "sinfo: error: Unable to contact slurm controller (connect failure)"}
	_, err = New(f, Options{Retry: fastRetry}).Check(context.Background(), []jobs.Resources{{CPUsPerTask: 1}})
	if !errors.Is(err, errkind.ErrUnreachable) {
		t.Fatalf("controller down: %v, want ErrUnreachable", err)
	}
}
