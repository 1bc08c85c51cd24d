package slurm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
)

// Pre-flight: what a stage asks for is checked against the cluster before anything is
// staged or queued. Slurm itself leaves a job that asks more CPUs than any node has
// PENDING forever (reason PartitionConfig), or sbatch refuses it only after earlier
// stages were queued. One sinfo call answers for every stage: each node of each
// partition (CPUs, memory, GPUs, state) with the partition's limits. An account or QOS
// costs one sacctmgr call more, made only when a stage asks for one.

// sinfoFormat: one line per node and partition (--Node). Size 0 prints a field whole
// (checked with Slurm 22.05; a given size truncates, as "Gres:3" prints "gpu"), and "|"
// ends each field. Partition carries a "*" on the default partition.
const sinfoFormat = "Partition:0|,NodeHost:0|,CPUs:0|,Memory:0|,Gres:0|,StateLong:0|,Time:0|,Size:0|,MaxCPUsPerNode:0|"

// SinfoArgv is the one command Check always runs (tests count it).
var SinfoArgv = []string{"sinfo", "--all", "--noheader", "--Node", "--Format=" + sinfoFormat}

type node struct {
	host  string
	cpus  int
	memMB int64
	gpus  int
	state string
}

type partition struct {
	name  string
	def   bool
	time  string // as sinfo prints it: infinite, 1-00:00:00, 30:00
	limit int64  // time in seconds; 0: none
	// maxNodes is the largest job the partition takes, in nodes (0: no limit);
	// maxCPUs its MaxCPUsPerNode (0: no limit).
	maxNodes, maxCPUs int
	nodes             []node
}

// parseSinfo reads sinfoFormat's lines into partitions, in the order sinfo lists them.
func parseSinfo(out string) ([]*partition, error) {
	var parts []*partition
	byName := map[string]*partition{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 9 {
			return nil, fmt.Errorf("sinfo: unexpected line %q", line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		name, def := strings.CutSuffix(f[0], "*")
		p := byName[name]
		if p == nil {
			p = &partition{name: name, def: def, time: f[6], limit: seconds(f[6]), maxCPUs: atoiOr0(f[8])}
			if _, max, ok := strings.Cut(f[7], "-"); ok {
				p.maxNodes = atoiOr0(max)
			}
			byName[name] = p
			parts = append(parts, p)
		}
		cpus, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("sinfo: CPUs %q of node %s", f[2], f[1])
		}
		mem, err := strconv.ParseInt(strings.TrimSuffix(f[3], "+"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("sinfo: memory %q of node %s", f[3], f[1])
		}
		p.nodes = append(p.nodes, node{host: f[1], cpus: cpus, memMB: mem, gpus: gresGPUs(f[4]), state: f[5]})
	}
	if len(parts) == 0 {
		return nil, errors.New("sinfo listed no partitions")
	}
	return parts, nil
}

// gresGPUs counts the GPUs of a node's Gres: "gpu:2", "gpu:a100:4(S:0-1)",
// "gpu:k80:2,gpu:p100:2,mps:400", "(null)".
func gresGPUs(g string) int {
	n := 0
	// A socket list "(S:0-1)" holds commas of its own; drop the parentheses first.
	var b strings.Builder
	depth := 0
	for _, r := range g {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	for _, item := range strings.Split(b.String(), ",") {
		f := strings.Split(item, ":")
		if f[0] != "gpu" || len(f) < 2 {
			continue
		}
		if c, err := strconv.Atoi(f[len(f)-1]); err == nil {
			n += c
		}
	}
	return n
}

func atoiOr0(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0 // UNLIMITED, infinite, N/A
	}
	return n
}

// seconds reads a Slurm time (sbatch's forms, which sinfo prints too: minutes,
// minutes:seconds, hours:minutes:seconds, days-hours[:minutes[:seconds]]); 0 for
// infinite, UNLIMITED or anything else it cannot read.
func seconds(v string) int64 {
	var days int64
	rest := v
	d, r, dashed := strings.Cut(v, "-")
	if dashed {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil {
			return 0
		}
		days, rest = n, r
	}
	var n []int64
	for _, f := range strings.Split(rest, ":") {
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0
		}
		n = append(n, x)
	}
	if len(n) > 3 {
		return 0
	}
	if dashed {
		for len(n) < 3 {
			n = append(n, 0)
		}
		return days*86400 + n[0]*3600 + n[1]*60 + n[2]
	}
	switch len(n) {
	case 1:
		return n[0] * 60
	case 2:
		return n[0]*60 + n[1]
	}
	return n[0]*3600 + n[1]*60 + n[2]
}

// memMB reads sbatch's --mem (a number of megabytes, or with a K, M, G or T suffix); 0
// means all of a node's memory, and anything unreadable is left to sbatch (-1).
func memMB(v string) int64 {
	if v == "" {
		return -1
	}
	mult := int64(1)
	num := v
	switch v[len(v)-1] {
	case 'K', 'k':
		mult, num = -1024, v[:len(v)-1]
	case 'M', 'm':
		num = v[:len(v)-1]
	case 'G', 'g':
		mult, num = 1024, v[:len(v)-1]
	case 'T', 't':
		mult, num = 1024*1024, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	if mult < 0 {
		return (n + 1023) / 1024
	}
	return n * mult
}

func fmtMB(mb int64) string {
	if mb >= 1024 {
		g := strconv.FormatFloat(float64(mb)/1024, 'f', 1, 64)
		return fmt.Sprintf("%sG (%dM)", strings.TrimSuffix(g, ".0"), mb)
	}
	return fmt.Sprintf("%dM", mb)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Check implements jobs.Checker: one sinfo call for every request, and one sacctmgr call
// when any request names an account or QOS. A Slurm controller that does not answer is
// an error wrapping errkind.ErrUnreachable (nothing else would work either); a site where
// sinfo is forbidden or fails otherwise is an error too, and the caller goes on without
// the check.
func (e *Executor) Check(ctx context.Context, rs []jobs.Resources) (jobs.Preflight, error) {
	var pf jobs.Preflight
	res, err := e.run(ctx, SinfoArgv)
	if err != nil {
		return pf, err
	}
	if res.ExitCode != 0 {
		return pf, fmt.Errorf("sinfo: exit %d: %s", res.ExitCode, message(res))
	}
	parts, err := parseSinfo(string(res.Stdout))
	if err != nil {
		return pf, err
	}
	byName := map[string]*partition{}
	var names []string
	var def *partition
	for _, p := range parts {
		byName[p.name] = p
		name := p.name
		if p.def {
			def = p
			name += " (the default)"
		}
		names = append(names, name)
	}
	known := strings.Join(names, ", ")
	checked := map[string]bool{}
	for i, r := range rs {
		var use []*partition
		switch {
		case r.Partition == "" && def == nil:
			pf.Refusals = append(pf.Refusals, jobs.Refusal{Index: i, Field: "partition", Asked: "no partition",
				Why: "the cluster has no default partition; its partitions are " + known})
		case r.Partition == "":
			use = []*partition{def}
		default:
			for _, name := range strings.Split(r.Partition, ",") {
				if p := byName[name]; p != nil {
					use = append(use, p)
					continue
				}
				pf.Refusals = append(pf.Refusals, jobs.Refusal{Index: i, Field: "partition", Asked: "partition " + name,
					Why: "the cluster has no such partition; its partitions are " + known})
				use = nil
				break
			}
		}
		if len(use) == 0 {
			continue
		}
		// A list of partitions is run in whichever can: the request fails only when it
		// fits none of them.
		var why []jobs.Refusal
		fits := false
		for _, p := range use {
			if !checked[p.name] {
				checked[p.name] = true
				pf.Checked = append(pf.Checked, p.describe())
			}
			ref, note := p.check(r)
			if len(ref) == 0 {
				fits = true
				if note != "" {
					pf.Notes = append(pf.Notes, note)
				}
				break
			}
			why = append(why, ref...)
		}
		if !fits {
			for _, w := range why {
				w.Index = i
				pf.Refusals = append(pf.Refusals, w)
			}
		}
	}
	if err := e.checkAssoc(ctx, rs, &pf); err != nil {
		if errors.Is(err, errkind.ErrUnreachable) {
			return pf, err
		}
		pf.Notes = append(pf.Notes, "the account and QOS were not checked: "+err.Error())
	}
	return pf, nil
}

func (p *partition) describe() string {
	maxCPU, maxMem, maxGPU := 0, int64(0), 0
	for _, n := range p.nodes {
		maxCPU, maxMem, maxGPU = max(maxCPU, n.cpus), max(maxMem, n.memMB), max(maxGPU, n.gpus)
	}
	name := "partition " + p.name
	if p.def {
		name += " (default)"
	}
	return fmt.Sprintf("%s: %s; per node at most %s, %s of memory, %s; time limit %s",
		name, plural(len(p.nodes), "node", "nodes"), plural(maxCPU, "CPU", "CPUs"), fmtMB(maxMem), plural(maxGPU, "GPU", "GPUs"), p.time)
}

// check returns why r can never run in p (nothing when it can), and a note when every
// node it fits on is down or drained.
func (p *partition) check(r jobs.Resources) ([]jobs.Refusal, string) {
	var out []jobs.Refusal
	refuse := func(field, asked, why string) {
		out = append(out, jobs.Refusal{Field: field, Asked: asked, Why: why})
	}
	maxCPU, maxMem, maxGPU := 0, int64(0), 0
	for _, n := range p.nodes {
		maxCPU, maxMem, maxGPU = max(maxCPU, n.cpus), max(maxMem, n.memMB), max(maxGPU, n.gpus)
	}
	cpus := max(r.CPUsPerTask, 1)
	mem := memMB(r.Mem)
	switch {
	case cpus > maxCPU:
		refuse("cpus_per_task", plural(cpus, "CPU per task", "CPUs per task"),
			fmt.Sprintf("the largest node in partition %s has %d", p.name, maxCPU))
	case p.maxCPUs > 0 && cpus > p.maxCPUs:
		refuse("cpus_per_task", plural(cpus, "CPU per task", "CPUs per task"),
			fmt.Sprintf("partition %s lets a job use at most %d CPUs per node (MaxCPUsPerNode)", p.name, p.maxCPUs))
	}
	if mem > maxMem {
		refuse("mem", r.Mem+" of memory per node", fmt.Sprintf("the largest node in partition %s has %s", p.name, fmtMB(maxMem)))
	}
	if r.GPUs > maxGPU {
		why := fmt.Sprintf("the nodes of partition %s have at most %d", p.name, maxGPU)
		if maxGPU == 0 {
			why = fmt.Sprintf("no node of partition %s has a GPU (gres gpu); set slurm.gpus: 0 or a GPU partition", p.name)
		}
		refuse("gpus", plural(r.GPUs, "GPU", "GPUs"), why)
	}
	if t := seconds(r.Time); p.limit > 0 && t > p.limit {
		refuse("time", "a time limit of "+r.Time, fmt.Sprintf("partition %s allows at most %s", p.name, p.time))
	}
	nodes := max(r.Nodes, 1)
	if p.maxNodes > 0 && nodes > p.maxNodes {
		refuse("nodes", plural(nodes, "node", "nodes"), fmt.Sprintf("partition %s allows at most %d per job", p.name, p.maxNodes))
	}
	if len(out) > 0 {
		return out, ""
	}
	// Each limit alone fits some node; the job needs nodes that fit all of them at once.
	var fit []node
	for _, n := range p.nodes {
		if n.cpus >= cpus && n.memMB >= mem && n.gpus >= r.GPUs && (p.maxCPUs == 0 || cpus <= p.maxCPUs) {
			fit = append(fit, n)
		}
	}
	want := fmt.Sprintf("%s, %s of memory and %s", plural(cpus, "CPU", "CPUs"), r.Mem, plural(r.GPUs, "GPU", "GPUs"))
	switch {
	case len(fit) == 0:
		refuse("cpus_per_task", want+" on one node", fmt.Sprintf("no node of partition %s has all of them", p.name))
		return out, ""
	case len(fit) < nodes:
		refuse("nodes", fmt.Sprintf("%s with %s each", plural(nodes, "node", "nodes"), want),
			fmt.Sprintf("partition %s has %d such", p.name, len(fit)))
		return out, ""
	}
	up := 0
	var states []string
	for _, n := range fit {
		s := strings.ToLower(strings.TrimRight(n.state, "*~#!%$@^-"))
		if s == "down" || strings.HasPrefix(s, "drain") || s == "fail" || s == "failing" || s == "inval" || s == "future" {
			if !slices.Contains(states, n.host+" "+n.state) {
				states = append(states, n.host+" "+n.state)
			}
			continue
		}
		up++
	}
	if up < nodes {
		return nil, fmt.Sprintf("every node of partition %s that fits %s is down or drained now (%s): the job will wait until one is back",
			p.name, want, strings.Join(states, ", "))
	}
	return nil, ""
}

// assocScript prints the user's associations (account|partition|qos list), one a line.
// The user's name comes from id(1) on the cluster side, where it may differ from the
// local one.
const assocScript = `exec sacctmgr --noheader --parsable2 show associations where user="$(id -un)" format=Account,Partition,QOS`

// checkAssoc checks the accounts and QOS the requests name against the user's
// associations, with one sacctmgr call, made only when a request names one.
func (e *Executor) checkAssoc(ctx context.Context, rs []jobs.Resources, pf *jobs.Preflight) error {
	need := false
	for _, r := range rs {
		need = need || r.Account != "" || r.QOS != ""
	}
	if !need {
		return nil
	}
	res, err := e.run(ctx, []string{"sh", "-c", assocScript})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("sacctmgr: exit %d: %s", res.ExitCode, message(res))
	}
	qosOf := map[string][]string{} // account (lower case, as Slurm keeps them) -> QOS
	var accounts, allQOS []string
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		acct := strings.ToLower(f[0])
		if _, ok := qosOf[acct]; !ok {
			accounts = append(accounts, acct)
			qosOf[acct] = nil
		}
		for _, q := range strings.Split(f[2], ",") {
			if q != "" && !slices.Contains(qosOf[acct], q) {
				qosOf[acct] = append(qosOf[acct], q)
			}
			if q != "" && !slices.Contains(allQOS, q) {
				allQOS = append(allQOS, q)
			}
		}
	}
	if len(accounts) == 0 {
		return errors.New("sacctmgr lists no association for this user (accounting not enforced here?)")
	}
	for i, r := range rs {
		valid := allQOS
		if r.Account != "" {
			q, ok := qosOf[strings.ToLower(r.Account)]
			if !ok {
				pf.Refusals = append(pf.Refusals, jobs.Refusal{Index: i, Field: "account", Asked: "account " + r.Account,
					Why: "you have no association with it; your accounts are " + strings.Join(accounts, ", ")})
				continue
			}
			valid = q
		}
		if r.QOS != "" && !slices.Contains(valid, r.QOS) {
			pf.Refusals = append(pf.Refusals, jobs.Refusal{Index: i, Field: "qos", Asked: "QOS " + r.QOS,
				Why: "it is not among the QOS your association allows: " + strings.Join(valid, ", ")})
		}
	}
	return nil
}

// Partition is what sinfo says of one partition, for a starter spec that fits the site.
type Partition struct {
	Name    string
	Default bool
	Nodes   int
	// CPUs, MemMB and GPUs are one node's: the partition's best for training (most GPUs,
	// then CPUs, then memory), so that a request of them all fits one real node.
	CPUs  int
	MemMB int64
	GPUs  int
	// Time is the partition's time limit as sinfo prints it (infinite, 2:00:00),
	// TimeSeconds the same in seconds (0: none).
	Time        string
	TimeSeconds int64
	// MaxCPUsPerNode is the partition's cap on a job's CPUs per node (0: none).
	MaxCPUsPerNode int
}

// Partitions lists the cluster's partitions with one sinfo call (the one Check makes).
func (e *Executor) Partitions(ctx context.Context) ([]Partition, error) {
	res, err := e.run(ctx, SinfoArgv)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("sinfo: exit %d: %s", res.ExitCode, message(res))
	}
	parts, err := parseSinfo(string(res.Stdout))
	if err != nil {
		return nil, err
	}
	var out []Partition
	for _, p := range parts {
		var best node
		for _, n := range p.nodes {
			if n.gpus > best.gpus || (n.gpus == best.gpus && (n.cpus > best.cpus || (n.cpus == best.cpus && n.memMB > best.memMB))) {
				best = n
			}
		}
		out = append(out, Partition{Name: p.name, Default: p.def, Nodes: len(p.nodes), CPUs: best.cpus, MemMB: best.memMB,
			GPUs: best.gpus, Time: p.time, TimeSeconds: p.limit, MaxCPUsPerNode: p.maxCPUs})
	}
	return out, nil
}
