package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/homepath"
	"github.com/hpctl/hpctl/transport"
)

// clusterCheckScript answers one line per probe. Its arguments come in threes, KIND A B,
// never inside the script text, so no quoting of user input is involved:
//
//	dir PATH -        "missing", "notdir" or the number of non-hidden subdirectories
//	file PATH -       "ok", "notfile" or "missing"; homefile: PATH follows $HOME
//	bin NAME -        "ok" when NAME is a command on PATH, else "missing"
//	flag NAME FLAG    "ok" when `NAME --help` lists FLAG, else "missing"
//	version NAME -    "v" and the first line of `NAME --version`
//	cdi KIND -        "ok" when a CDI spec in /etc/cdi or /var/run/cdi declares KIND
const clusterCheckScript = `while [ $# -ge 3 ]; do
	k=$1 a=$2 b=$3
	shift 3
	case $k in
	dir)
		if [ ! -e "$a" ]; then echo missing; continue; fi
		if [ ! -d "$a" ]; then echo notdir; continue; fi
		n=0
		for c in "$a"/*/; do [ -d "$c" ] && n=$((n+1)); done
		echo "$n" ;;
	file|homefile)
		[ "$k" = homefile ] && a=$HOME$a
		if [ -f "$a" ]; then echo ok; elif [ -e "$a" ]; then echo notfile; else echo missing; fi ;;
	bin) if command -v -- "$a" >/dev/null 2>&1; then echo ok; else echo missing; fi ;;
	flag) if "$a" --help 2>&1 | grep -q -F -e "$b"; then echo ok; else echo missing; fi ;;
	version) v=$("$a" --version 2>/dev/null | head -n 1); echo "v$v" ;;
	cdi) if cat /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json 2>/dev/null | grep -q -F -e "$a"; then echo ok; else echo missing; fi ;;
	*) echo unknown ;;
	esac
done`

// probe is one fact to check on the cluster and what to say when it does not hold.
type probe struct {
	kind, a, b string
	// judge returns the problem that answer shows, "" when there is none.
	judge func(answer string) string
	key   string
	pos   experiment.Pos
}

// checkCluster checks on the cluster, in one command, what the spec needs there and can be
// checked cheaply before anything is staged or queued: data.train and data.val exist and
// each holds at least two class folders; the container runtime's program is on PATH (and
// srun knows pyxis's --container-image); an image that is a file exists; a runtime asked
// for GPUs can be given them in the way hpctl passes them. Each problem is reported at
// its spec position, as validation does. The check runs where the jobs are submitted
// (the login node for Slurm).
//
// A dry run reports the runtime's problems as warnings (what submit would refuse) and
// only the data's as errors: a spec is often tried on a workstation that has neither the
// cluster's runtime nor its images. So does a submission told that the submit host is no
// judge of the compute nodes (SubmitOptions.NoRuntimeCheck).
func checkCluster(ctx context.Context, t transport.Transport, p *experiment.Plan, mode clusterCheckMode, more ...experiment.Problem) ([]string, error) {
	probes := dataProbes(p.DataChecks)
	nData := len(probes)
	probes = append(probes, runtimeProbes(p)...)
	problems, err := runProbes(ctx, t, probes)
	if err != nil {
		return nil, err
	}
	var warnings []string
	se := &experiment.SpecError{Problems: more}
	for _, pr := range problems {
		prob := experiment.Problem{File: p.SpecFile, Pos: pr.pos, Msg: pr.key + ": " + pr.msg}
		if pr.index >= nData {
			switch {
			case mode.dryRun && mode.noRuntime:
				warnings = append(warnings, "submit --no-runtime-check would go on although: "+prob.String())
				continue
			case mode.dryRun:
				warnings = append(warnings, "submit would refuse this: "+prob.String())
				continue
			case mode.noRuntime:
				warnings = append(warnings, "--no-runtime-check: submitted although: "+prob.String())
				continue
			}
		}
		se.Problems = append(se.Problems, prob)
	}
	if len(se.Problems) == 0 {
		return warnings, nil
	}
	return warnings, se
}

// clusterCheckMode says what becomes of the runtime's problems: refusals unless this is a
// dry run or the submission was told not to judge the runtime by the submit host.
type clusterCheckMode struct{ dryRun, noRuntime bool }

func dataProbes(checks []experiment.DataCheck) []probe {
	var probes []probe
	for _, c := range checks {
		path := c.Path
		probes = append(probes, probe{kind: "dir", a: path, b: "-", key: c.Key, pos: c.Pos, judge: func(l string) string {
			switch l {
			case "missing":
				return path + " does not exist on the cluster"
			case "notdir":
				return path + " is not a directory"
			}
			if n, _ := strconv.Atoi(l); n < 2 {
				return fmt.Sprintf("%s holds %d class folder(s); it needs at least two (one folder of images per class)", path, n)
			}
			return ""
		}})
	}
	return probes
}

// runtimeProbes are the container runtime's checks (none for runtime none).
func runtimeProbes(p *experiment.Plan) []probe {
	c := p.Spec.Container
	rt, err := containers.Lookup(c.Runtime)
	if err != nil {
		return nil
	}
	caps := rt.Capabilities()
	var probes []probe
	if caps.Program != "" {
		prog := caps.Program
		probes = append(probes, probe{kind: "bin", a: prog, b: "-", key: "container.runtime", pos: p.RuntimePos, judge: func(l string) string {
			if l != "ok" {
				return fmt.Sprintf("runtime %s: %s is not on PATH where the jobs are submitted (%s); install it, load its module in the shell's startup files, or choose another runtime", c.Runtime, prog, checkedWhere)
			}
			return ""
		}})
		if flag := caps.ProgramFlag; flag != "" {
			probes = append(probes, probe{kind: "flag", a: prog, b: flag, key: "container.runtime", pos: p.RuntimePos, judge: func(l string) string {
				if l != "ok" {
					return fmt.Sprintf("runtime %s: `%s --help` does not list %s: the %s plugin is not installed on this cluster (%s); choose another runtime", c.Runtime, prog, flag, c.Runtime, checkedWhere)
				}
				return ""
			}})
		}
	}
	if containers.ImageFile(caps, c.Image) {
		kind, path := "file", c.Image
		if rest, home := homepath.Split(c.Image); home {
			kind, path = "homefile", rest
		}
		probes = append(probes, probe{kind: kind, a: path, b: "-", key: "container.image", pos: p.ImagePos, judge: func(l string) string {
			switch l {
			case "missing":
				return fmt.Sprintf("%s does not exist on the cluster (%s reads the image from this file; import it there first, e.g. enroot import / apptainer build)", c.Image, c.Runtime)
			case "notfile":
				return c.Image + " is not a file on the cluster"
			}
			return ""
		}})
	}
	return append(probes, gpuProbes(p, caps)...)
}

// gpuProbes refuse a runtime that is asked for GPUs and cannot be given them in the way
// hpctl passes them: the stage would otherwise train on the CPU, or fail late.
func gpuProbes(p *experiment.Plan, caps containers.Capabilities) []probe {
	var gpuStages []string
	for _, st := range p.Stages {
		if st.Resources.GPUs > 0 {
			gpuStages = append(gpuStages, st.Name)
		}
	}
	if len(gpuStages) == 0 {
		return nil
	}
	rt := p.Spec.Container.Runtime
	asks := "stage " + strings.Join(gpuStages, ", ") + " asks for GPUs"
	if len(gpuStages) > 1 {
		asks = "stages " + strings.Join(gpuStages, ", ") + " ask for GPUs"
	}
	switch caps.GPUs {
	case containers.GPUDevicesFlag:
		// docker run --gpus goes through the NVIDIA Container Toolkit's hook, which
		// calls nvidia-container-cli; without it docker refuses the flag at run time.
		return []probe{{kind: "bin", a: "nvidia-container-cli", b: "-", key: "container.runtime", pos: p.RuntimePos, judge: func(l string) string {
			if l != "ok" {
				return fmt.Sprintf("runtime %s: %s, which %s gives with --gpus through the NVIDIA Container Toolkit, and nvidia-container-cli is not on PATH (%s); install the toolkit, or set slurm.gpus: 0", rt, asks, rt, checkedWhere)
			}
			return ""
		}}}
	case containers.GPUCDI:
		return []probe{
			{kind: "version", a: caps.Program, b: "-", key: "container.runtime", pos: p.RuntimePos, judge: func(l string) string {
				if major, minor, ok := version(l); ok && (major < 4) {
					return fmt.Sprintf("runtime %s: %s, and %s here is older than 4.0, which hpctl knows no working way to give GPUs (hpctl passes them as CDI devices, --device nvidia.com/gpu=all, from podman 4.0; podman's --gpus adds no devices before 5.0, so the stage would train on the CPU); upgrade podman, use docker or apptainer, or set slurm.gpus: 0 (found %d.%d)", rt, asks, caps.Program, major, minor)
				}
				return ""
			}},
			{kind: "cdi", a: "nvidia.com/gpu", b: "-", key: "container.runtime", pos: p.RuntimePos, judge: func(l string) string {
				if l != "ok" {
					return fmt.Sprintf("runtime %s: %s, which hpctl gives podman as the CDI devices nvidia.com/gpu, and no CDI spec in /etc/cdi or /var/run/cdi declares them (%s), so podman would refuse the devices; generate one with `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`, or set slurm.gpus: 0", rt, asks, checkedWhere)
				}
				return ""
			}},
		}
	}
	return nil
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)`)

// version reads the first major.minor of a --version line ("vpodman version 4.3.1").
func version(line string) (major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(line)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// checkedWhere says where the checks ran, for messages: on Slurm the login node, whose
// PATH may differ from the compute nodes'.
const checkedWhere = "checked on the machine hpctl submits to; if only the compute nodes have it, submit with --no-runtime-check"

type foundProblem struct {
	key, msg string
	pos      experiment.Pos
	index    int // the probe's
}

func runProbes(ctx context.Context, t transport.Transport, probes []probe) ([]foundProblem, error) {
	if len(probes) == 0 {
		return nil, nil
	}
	argv := []string{"sh", "-c", clusterCheckScript, "sh"}
	for _, pr := range probes {
		argv = append(argv, pr.kind, pr.a, pr.b)
	}
	res, err := t.Run(ctx, argv, nil)
	if err != nil {
		return nil, fmt.Errorf("check the data folders and container runtime on the cluster: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("check the data folders and container runtime on the cluster: exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	for sc.Scan() {
		lines = append(lines, strings.TrimSpace(sc.Text()))
	}
	if len(lines) != len(probes) {
		return nil, fmt.Errorf("check the data folders and container runtime on the cluster: unexpected answer %q", res.Stdout)
	}
	var problems []foundProblem
	for i, l := range lines {
		if msg := probes[i].judge(l); msg != "" {
			problems = append(problems, foundProblem{key: probes[i].key, msg: msg, pos: probes[i].pos, index: i})
		}
	}
	return problems, nil
}
