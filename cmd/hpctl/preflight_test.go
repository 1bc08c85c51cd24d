package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs/executortest"
	"github.com/hpctl/hpctl/transport"
)

// Pre-flight against the real test cluster (one node "vm" in partition debug: 4 CPUs,
// about 22 GiB, 2 GRES GPUs; accounts from slurmdbd): an impossible request is refused
// before anything exists, with the spec position; a satisfiable one costs one sinfo.

// preflightSpec writes a two-stage spec named name whose slurm: section holds the
// default small request with lines replaced by over (key -> value as written). It
// returns the spec's path and the position of each key of over's value (line:col).
func preflightSpec(t *testing.T, dir, name string, over map[string]string, stageTwo string) (string, map[string]string) {
	t.Helper()
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	slurm := [][2]string{{"time", `"00:05:00"`}, {"gpus", "0"}, {"cpus_per_task", "1"}, {"mem", "64M"},
		{"signal_before", "0"}, {"requeue", "false"}}
	for _, k := range []string{"partition", "account", "qos"} {
		if v, ok := over[k]; ok {
			slurm = append(slurm, [2]string{k, v})
		}
	}
	lines := []string{"name: " + name, "workdir: " + dir + "/runs", "executor: slurm",
		fmt.Sprintf("data: {train: %s/data/train, val: %s/data/val}", dir, dir), "slurm:"}
	pos := map[string]string{}
	for _, kv := range slurm {
		v := kv[1]
		if o, ok := over[kv[0]]; ok {
			v = o
		}
		prefix := "  " + kv[0] + ": "
		lines = append(lines, prefix+v)
		pos[kv[0]] = fmt.Sprintf("%d:%d", len(lines), len(prefix)+1)
	}
	lines = append(lines, "container: {runtime: none}", "stages:",
		"  - name: one", `    command: [bash, -c, "true"]`,
		"  - name: two", "    depends_on: [one]", `    command: [bash, -c, "true"]`)
	if stageTwo != "" {
		prefix := "    slurm: {partition: "
		lines = append(lines, prefix+stageTwo+"}")
		pos["stages[1].slurm.partition"] = fmt.Sprintf("%d:%d", len(lines), len(prefix)+1)
	}
	p := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, pos
}

// slurmJobsNamed lists the jobs Slurm knows (squeue, and sacct since start) whose name
// starts with prefix: a refused run must have none.
func slurmJobsNamed(t *testing.T, prefix string, since time.Time) []string {
	t.Helper()
	var found []string
	out, err := exec.Command("squeue", "--me", "--states=all", "-h", "-o", "%i %j %T").Output()
	if err != nil {
		t.Fatalf("squeue: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && strings.HasPrefix(f[1], prefix) {
			found = append(found, "squeue: "+l)
		}
	}
	if testenv.AccountingEnabled() {
		out, err := exec.Command("sacct", "-X", "-n", "-P", "--format=JobID,JobName,State",
			"-S", since.Add(-time.Minute).Format("2006-01-02T15:04:05")).Output()
		if err != nil {
			t.Fatalf("sacct: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Split(l, "|"); len(f) == 3 && strings.HasPrefix(f[1], prefix) {
				found = append(found, "sacct: "+l)
			}
		}
	}
	return found
}

// counted is an env whose transports count the commands they run.
func counted() (*env, func() map[string]int) {
	var c *executortest.Counting
	e := &env{wrapTransport: func(t transport.Transport) transport.Transport {
		c = executortest.NewCounting(t)
		return c
	}}
	return e, func() map[string]int {
		if c == nil {
			return nil
		}
		return c.Counts()
	}
}

func runsJSON(t *testing.T) []map[string]any {
	t.Helper()
	out, errs, code := hpctl(t, "runs", "-o", "json")
	if code != 0 {
		t.Fatalf("runs: exit %d: %s", code, errs)
	}
	var runs []map[string]any
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("runs -o json %q: %v", out, err)
	}
	return runs
}

func TestPreflightRefusesImpossibleRequests(t *testing.T) {
	testenv.RequireSlurm(t)
	accounting := testenv.AccountingEnabled()
	cases := []struct {
		name  string
		over  map[string]string
		two   string // stage two's own partition
		key   string // the key whose position the refusal names
		want  string
		needs bool // needs accounting (sacctmgr)
	}{
		{"cpus", map[string]string{"cpus_per_task": "8"}, "", "cpus_per_task",
			"stages one and two ask for 8 CPUs per task; the largest node in partition debug has 4 (slurm.cpus_per_task at %s)", false},
		{"mem", map[string]string{"mem": "500G"}, "", "mem",
			"stages one and two ask for 500G of memory per node; the largest node in partition debug has ", false},
		{"gpus", map[string]string{"gpus": "3"}, "", "gpus",
			"stages one and two ask for 3 GPUs; the nodes of partition debug have at most 2 (slurm.gpus at %s)", false},
		{"partition", map[string]string{"partition": "nosuch"}, "", "partition",
			"stages one and two ask for partition nosuch; the cluster has no such partition; its partitions are debug (the default) (slurm.partition at %s)", false},
		{"stagepart", nil, "gpuq", "stages[1].slurm.partition",
			"stage two asks for partition gpuq; the cluster has no such partition; its partitions are debug (the default) (stages[1].slurm.partition at %s)", false},
		{"account", map[string]string{"account": "nosuchacct"}, "", "account",
			"stages one and two ask for account nosuchacct; you have no association with it; your accounts are ", true},
		{"qos", map[string]string{"qos": "nosuchqos"}, "", "qos",
			"stages one and two ask for QOS nosuchqos; it is not among the QOS your association allows: ", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needs && !accounting {
				t.Skip("accounting is off: sacctmgr cannot say which accounts and QOS are yours")
			}
			dir := isolate(t)
			name := "pf" + c.name + fmt.Sprint(time.Now().UnixNano()%1e6)
			spec, pos := preflightSpec(t, dir, name, c.over, c.two)
			key := c.key
			if !strings.Contains(key, ".") {
				key = "slurm." + key
			}
			at := fmt.Sprintf("(%s at %s:%s)", key, spec, pos[c.key])
			want := c.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, spec+":"+pos[c.key])
			}
			start := time.Now()
			for _, dry := range []bool{true, false} {
				e, counts := counted()
				args := []string{"submit", spec}
				if dry {
					args = append(args, "--dry-run")
				}
				_, errs, code := hpctlWith(t, e, args...)
				if code != exitRefused {
					t.Fatalf("%v: exit %d, want %d (refused):\n%s", args, code, exitRefused, errs)
				}
				if !strings.Contains(errs, want) || !strings.Contains(errs, at) {
					t.Fatalf("%v: the refusal does not say %q at %s:\n%s", args, want, at, errs)
				}
				n := counts()
				if n["sbatch"] != 0 || n["sinfo"] != 1 || n["rm"] != 0 {
					t.Errorf("%v: commands run %v; want one sinfo, no sbatch", args, n)
				}
				if wantSh := map[bool]int{false: 1, true: 2}[c.needs]; n["sh"] != wantSh {
					t.Errorf("%v: %d sh calls (the data check, and sacctmgr's when an account or QOS is named); want %d", args, n["sh"], wantSh)
				}
			}
			if jobs := slurmJobsNamed(t, name, start); len(jobs) != 0 {
				t.Fatalf("a refused run has jobs: %v", jobs)
			}
			if runs := runsJSON(t); len(runs) != 0 {
				t.Fatalf("a refused run is recorded: %v", runs)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "runs")); len(ents) != 0 {
				t.Fatalf("a refused run left %d entries in the workdir", len(ents))
			}
		})
	}
}

// A request the cluster can run submits as before, with one sinfo call more and nothing
// else; with an account it costs one sacctmgr (through sh) more.
func TestPreflightSatisfiableCostsOneCall(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	spec, _ := preflightSpec(t, dir, "pfok", map[string]string{"gpus": "2", "cpus_per_task": "4", "mem": "1G", "partition": "debug"}, "")
	e, counts := counted()
	out, errs, code := hpctlWith(t, e, "submit", spec, "-o", "json")
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, errs)
	}
	var s submitted
	if err := json.Unmarshal([]byte(out), &s); err != nil || len(s.Jobs) != 2 {
		t.Fatalf("submit output %q: %v", out, err)
	}
	t.Cleanup(func() { hpctl(t, "cancel", s.RunID) })
	// Before pre-flight a submission ran sh (the data check) once and sbatch once per
	// stage; now sinfo once more, and nothing else.
	got := counts()
	t.Logf("commands of one submit: %v", got)
	want := map[string]int{"sh": 1, "sinfo": 1, "sbatch": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("commands of one submit: %v, want %v", got, want)
	}
	var res submitResult
	json.Unmarshal([]byte(out), &res)
	if len(res.Checked) != 1 || !strings.Contains(res.Checked[0], "partition debug (default): 1 node; per node at most 4 CPUs") {
		t.Errorf("submit -o json preflight: %q", res.Checked)
	}

	// The dry run shows what it checked against, with the same one call.
	e, counts = counted()
	out, errs, code = hpctlWith(t, e, "submit", spec, "--dry-run")
	if code != 0 || !strings.Contains(out, "pre-flight: every stage fits the cluster") || !strings.Contains(out, "2 GPUs") {
		t.Fatalf("dry run: exit %d:\n%s%s", code, out, errs)
	}
	if got := counts(); fmt.Sprint(got) != fmt.Sprint(map[string]int{"sh": 1, "sinfo": 1}) {
		t.Fatalf("commands of a dry run: %v", got)
	}

	if !testenv.AccountingEnabled() {
		return
	}
	acct, err := exec.Command("sh", "-c", `sacctmgr -n -P show assoc where user="$(id -un)" format=Account | head -1`).Output()
	if err != nil || strings.TrimSpace(string(acct)) == "" {
		t.Fatalf("this user's account: %q, %v", acct, err)
	}
	dir2 := filepath.Join(dir, "acct")
	spec, _ = preflightSpec(t, dir2, "pfacct", map[string]string{"account": strings.TrimSpace(string(acct))}, "")
	e, counts = counted()
	if out, errs, code := hpctlWith(t, e, "submit", spec, "--dry-run"); code != 0 {
		t.Fatalf("dry run with account %s: exit %d:\n%s%s", acct, code, out, errs)
	}
	if got := counts(); fmt.Sprint(got) != fmt.Sprint(map[string]int{"sh": 2, "sinfo": 1}) {
		t.Fatalf("commands of a dry run with an account: %v", got)
	}
}

// Where sinfo is forbidden (or fails), pre-flight is skipped with a warning; a stage that
// sbatch then refuses is reported with sbatch's whole message (every line), exit 6, the
// stage queued before it is cancelled, and no run is recorded nor its directory left.
func TestSbatchRefusalLeavesNothing(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	name := "pfsbatch" + fmt.Sprint(time.Now().UnixNano()%1e6)
	spec, _ := preflightSpec(t, dir, name, nil, "nosuchpart")
	var c *executortest.Counting
	e := &env{wrapTransport: func(t transport.Transport) transport.Transport {
		c = executortest.NewCounting(&executortest.Faulty{Transport: t, Prog: "sinfo", Fail: 1 << 30,
			Stderr: "sinfo: error: Access/permission denied"})
		return c
	}}
	start := time.Now()
	_, errs, code := hpctlWith(t, e, "submit", spec)
	t.Logf("stderr:\n%s", errs)
	if code != exitRefused {
		t.Fatalf("exit %d, want %d", code, exitRefused)
	}
	if !strings.Contains(errs, "hpctl: warning: pre-flight skipped") || !strings.Contains(errs, "Access/permission denied") {
		t.Errorf("no warning that pre-flight was skipped:\n%s", errs)
	}
	// sbatch's two lines, each whole on its own line.
	for _, l := range []string{"\n  sbatch: error: invalid partition specified: nosuchpart\n",
		"\n  sbatch: error: Batch job submission failed: Invalid partition name specified\n"} {
		if !strings.Contains(errs, l) {
			t.Errorf("sbatch's message is not kept whole: no line %q", l)
		}
	}
	if !strings.Contains(errs, "were cancelled") || !strings.Contains(errs, "no run was recorded") {
		t.Errorf("the error does not say that stage one's job was cancelled and no run recorded:\n%s", errs)
	}
	if n := c.Counts(); n["sbatch"] != 2 || n["scancel"] != 1 {
		t.Errorf("commands: %v; want two sbatch (one refused) and one scancel", n)
	}
	if runs := runsJSON(t); len(runs) != 0 {
		t.Fatalf("a refused run is recorded: %v", runs)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "runs")); len(ents) != 0 {
		t.Fatalf("a refused run left its run directory: %v", ents)
	}
	// Stage one was queued, then cancelled: no job of the run may be left alive.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var live []string
		for _, j := range slurmJobsNamed(t, name, start) {
			if !strings.Contains(j, "CANCELLED") {
				live = append(live, j)
			}
		}
		if len(live) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs of a refused run are left: %v", live)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// hpctl init sizes the starter for the cluster it reaches (sinfo here, or over ssh with
// --host), and otherwise writes modest values; either way the starter validates and a
// dry run of it passes pre-flight on the test cluster (4 CPUs, 22G, 2 GPUs), where the
// old starter's 8 CPUs and 32G never ran.
func TestInitStarterFitsTheCluster(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	t.Chdir(dir)
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	read := func(f string) string {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dryRun := func(f string) {
		t.Helper()
		if _, errs, code := hpctl(t, "validate", f); code != 0 {
			t.Fatalf("the starter %s does not validate: %s", f, errs)
		}
		e, counts := counted()
		out, errs, code := hpctlWith(t, e, "submit", f, "--dry-run", "--executor", "slurm")
		if code != 0 || !strings.Contains(out, "pre-flight: every stage fits the cluster") {
			t.Fatalf("dry run of the starter %s: exit %d:\n%s%s", f, code, out, errs)
		}
		if n := counts()["sinfo"]; n != 1 {
			t.Errorf("dry run of %s: %d sinfo calls, want 1", f, n)
		}
	}
	has := func(f, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s has no %q:\n%s", f, w, text)
			}
		}
	}

	// Here: sinfo on this machine, one call.
	e, counts := counted()
	if _, errs, code := hpctlWith(t, e, "init", "site"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	if n := counts(); n["sinfo"] != 1 || len(n) != 1 {
		t.Errorf("init ran %v; want one sinfo", n)
	}
	site := read("site.yaml")
	has("site.yaml", site, `partition: "debug"`, "gpus: 1 ", "cpus_per_task: 4\n", "mem: 16G ",
		"# Sized for partition debug, the default (sinfo on this machine", "On a typical GPU node")
	dryRun("site.yaml")

	// No cluster answers (sinfo fails as where a site forbids it): modest values, a note.
	noSinfo := &env{wrapTransport: func(t transport.Transport) transport.Transport {
		return &executortest.Faulty{Transport: t, Prog: "sinfo", Fail: 1 << 30, Stderr: "sinfo: error: Access/permission denied"}
	}}
	_, errs, code := hpctlWith(t, noSinfo, "init", "modest")
	if code != 0 || !strings.Contains(errs, "no cluster answered") {
		t.Fatalf("init without sinfo: exit %d: %s", code, errs)
	}
	modest := read("modest.yaml")
	has("modest.yaml", modest, `partition: ""`, "gpus: 1 ", "cpus_per_task: 4\n", "mem: 16G ", "No cluster was asked")
	if strings.Contains(modest, "cpus_per_task: 8") || strings.Contains(modest, "mem: 32G") {
		t.Errorf("the modest starter still asks 8 CPUs or 32G:\n%s", modest)
	}
	dryRun("modest.yaml")

	// --offline asks nothing.
	e, counts = counted()
	if _, errs, code := hpctlWith(t, e, "init", "off", "--offline"); code != 0 || len(counts()) != 0 {
		t.Fatalf("init --offline: exit %d, ran %v: %s", code, counts(), errs)
	}
	section := func(s string) string {
		i, j := strings.Index(s, "# What each stage"), strings.Index(s, "  nodes: 1\n")
		if i < 0 || j < i {
			t.Fatalf("no slurm: section:\n%s", s)
		}
		return s[i:j]
	}
	if off := read("off.yaml"); section(off) != section(modest) {
		t.Errorf("init --offline's slurm: differs from the modest starter's:\n%s", off)
	}
}

// Over ssh (--host, the same transport as every command), the starter says which host
// it was sized on.
func TestInitOverSSH(t *testing.T) {
	testenv.RequireSlurm(t)
	config, host := testenv.RequireSSH(t)
	dir := isolate(t)
	t.Setenv("HPCTL_SSH_CONFIG", config)
	t.Setenv("HPCTL_CONTROL_DIR", testenv.ControlDir(t))
	f := filepath.Join(dir, "s.yaml")
	if _, errs, code := hpctl(t, "--host", host, "init", "s", "--file", f); code != 0 || errs != "" {
		t.Fatalf("init --host %s: exit %d: %s", host, code, errs)
	}
	b, _ := os.ReadFile(f)
	if !strings.Contains(string(b), "(sinfo on "+host+" when") || !strings.Contains(string(b), `partition: "debug"`) {
		t.Fatalf("the starter was not sized on %s:\n%s", host, b)
	}
}

// The issue's own example: configs/urban.yaml, sized for a GPU node, on the 4-CPU test
// cluster is refused before anything is staged, with the sentence and the position.
func TestUrbanConfigRefusedOnTheTestCluster(t *testing.T) {
	testenv.RequireSlurm(t)
	src, err := filepath.Abs("../../configs/urban.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var at string
	for i, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "  cpus_per_task: "); ok && strings.HasPrefix(v, "8") {
			at = fmt.Sprintf("%s:%d:%d", src, i+1, len("  cpus_per_task: ")+1)
		}
	}
	if at == "" {
		t.Fatal("configs/urban.yaml sets no cpus_per_task: 8")
	}
	dir := isolate(t)
	t.Chdir(dir) // its data paths are relative
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	_, errs, code := hpctl(t, "submit", src, "--dry-run", "--executor", "slurm")
	want := "stages frozen and finetune ask for 8 CPUs per task; the largest node in partition debug has 4 (slurm.cpus_per_task at " + at + ")"
	if code != exitRefused || !strings.Contains(errs, want) {
		t.Fatalf("exit %d, want %d with %q:\n%s", code, exitRefused, want, errs)
	}
}
