package e2e

import (
	"bufio"
	"context"
	"fmt"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
)

// example says how the test runs one example of a command's --help or of the README.
// Most run exactly as written. Where an example needs what these machines cannot have
// (pyxis and the NVIDIA image, ImageNet weights from the internet, a real login host),
// run is the nearest command that can run here and why says what is missing; where it
// names a run id of the help's own, the run id of this test's run stands in.
type example struct {
	text string // as written, without its comment
	run  string // what runs instead; "" runs text
	why  string // why run differs from text
	// check, when set, must be in the output.
	check string
	// exit is the exit code it must end with (0 unless said).
	exit int
}

// helpRunID is the run id the help examples use.
const helpRunID = "urban-rural-20261129-054012-a3f9"

const (
	noPyxis = "configs/urban.yaml runs in pyxis with the NVIDIA 22.02 image on GPUs, and reads ImageNet weights: none of them is on these machines, so it runs as far as it can: --dry-run plans, renders, checks the data folders, and pre-flight refuses it (exit 6) because it asks 8 CPUs, a GPU node's share, of the test cluster's 4-CPU node"
	// tooSmall is what pre-flight says of urban.yaml on the test cluster.
	tooSmall  = "the largest node in partition debug has 4"
	noWeights = "the ImageNet weights come from storage.googleapis.com, which these machines cannot reach; validate reads what weights fetch reads (the spec) and the download itself is tested against a local server in cmd/hpctl/weights_test.go"
	ourRun    = "the help's run id is an example; the run this test submitted stands in"
)

// examples runs in this order: the first runs are submitted along the way, and later
// examples look at them ("latest").
var examples = []example{
	{text: "hpctl version"},
	{text: "hpctl version -o json", check: `"go_version"`},
	{text: "hpctl init urban-rural"},
	{text: "hpctl --host login.cluster init flowers --file configs/flowers.yaml", run: "hpctl --host hpctl-test init flowers --file configs/flowers.yaml",
		why: "login.cluster is an example; the test sshd on 127.0.0.1 (ssh alias hpctl-test) is a login node of the test cluster", check: "flowers.yaml"},
	{text: "hpctl validate configs/urban.yaml"},
	{text: "hpctl validate configs/*.yaml", check: "flowers"},
	{text: "hpctl render configs/urban.yaml"},
	{text: "hpctl render configs/urban.yaml --out /tmp/urban-scripts", run: "hpctl render configs/urban.yaml --out urban-scripts",
		why: "a folder of the test's own: render refuses one that exists, and /tmp is shared"},
	{text: "hpctl render configs/urban.yaml --run-id urban-test && less hpctl-render/urban-test/stages/frozen/job.sh", check: "#SBATCH"},
	{text: "hpctl weights fetch configs/urban.yaml", run: "hpctl validate configs/urban.yaml", why: noWeights},
	{text: "hpctl weights fetch --host login.cluster.example configs/urban.yaml", run: "hpctl validate configs/urban.yaml",
		why: noWeights + "; login.cluster.example is not a host"},
	{text: "hpctl weights fetch --mirror https://mirror.example/keras configs/urban.yaml", run: "hpctl validate configs/urban.yaml",
		why: noWeights + "; mirror.example is not a host"},
	{text: "hpctl submit configs/urban.yaml", run: "hpctl submit configs/urban.yaml --dry-run", why: noPyxis, exit: 6, check: tooSmall},
	{text: "hpctl submit configs/urban.yaml --dry-run", why: noPyxis, exit: 6, check: tooSmall},
	{text: "hpctl submit configs/urban.yaml -o json | jq -r .run_id", run: "hpctl submit configs/urban.yaml --dry-run -o json | jq -r .run_id",
		why: noPyxis, exit: 6, check: tooSmall},
	// The run that the examples below look at: the quickstart's two stages.
	{text: "hpctl submit configs/demo.yaml --executor local", check: "submitted run demo-"},
	{text: "hpctl status latest --watch", check: "COMPLETED"},
	{text: "hpctl status"},
	{text: "hpctl status --watch"},
	{text: "hpctl status " + helpRunID, run: "hpctl status latest", why: ourRun, check: "finetune"},
	{text: "hpctl status --last 50 -o json | jq '.[] | {id: .run.id, state}'", check: `"COMPLETED"`},
	{text: "hpctl logs latest"},
	{text: "hpctl logs latest --follow", check: "== finetune (job "},
	{text: "hpctl logs latest --tail 20"},
	{text: "hpctl logs " + helpRunID + " --stage finetune --follow", run: "hpctl logs latest --stage finetune --follow", why: ourRun},
	{text: "hpctl logs latest --stage frozen --err"},
	{text: "hpctl runs", check: "demo-"},
	{text: "hpctl runs --state FAILED"},
	{text: "hpctl runs --state running -o json"},
	{text: "hpctl fetch-results", check: "finetune"},
	{text: "hpctl fetch-results " + helpRunID, run: "hpctl fetch-results latest", why: ourRun},
	{text: "hpctl fetch-results --no-checkpoints latest"},
	{text: "hpctl fetch-results --all-checkpoints"},
	{text: "hpctl fetch-results -o json | jq '.[0].stages[] | {name, best_val_accuracy}'", check: "best_val_accuracy"},
	// photos/ holds street.jpg (a square) and field.jpg (a circle), JPEG (writePhotos).
	{text: "hpctl predict latest photos/street.jpg photos/field.jpg", check: "PROBABILITY"},
	{text: `hpctl predict latest photos/ -o json | jq -r '.predictions[] | "\(.image) \(.label)"'`, check: "photos/street.jpg squares"},
	{text: "hpctl predict latest --stage frozen --remote 'photos/*.jpg'", check: "photos/field.jpg"},
	{text: "hpctl predict results/demo-20261203-101500-1a2b/stages/finetune/checkpoints/best.keras photos/",
		run: "hpctl predict results/demo-*/stages/finetune/checkpoints/best.* photos/",
		why: "the help's run id is an example; the checkpoint of the run this test fetched stands in (best.h5 when the test's TensorFlow is Keras 2)", check: "photos/field.jpg"},
	{text: "hpctl retry " + helpRunID + " --stage finetune", run: "hpctl retry latest --stage finetune", why: ourRun, check: "finetune"},
	{text: "hpctl status latest --watch --interval 1s", why: "not an example: waits for the retried fine-tune", check: "attempt 2"},
	{text: "hpctl cancel " + helpRunID, run: "hpctl cancel latest", why: ourRun, check: "already ended"},
	// A second run of the quickstart, cancelled while it runs, then retried.
	{text: "hpctl submit configs/demo.yaml --executor local", check: "submitted run demo-"},
	{text: "hpctl cancel latest"},
	{text: "hpctl retry latest", check: "frozen"},
	{text: "hpctl status latest --watch --interval 1s", why: "not an example: waits for the retried run", check: "COMPLETED"},
	// The two quickstart runs, side by side (the second one not fetched yet).
	{text: "hpctl compare $(hpctl runs -o json | jq -r '.[0:2][].id')", check: "finetune best val acc"},
	{text: "hpctl compare demo-20261203-101500-1a2b demo-20261203-104010-9f8e", run: "hpctl compare $(hpctl runs -o json | jq -r '.[0:2][].id')",
		why: "the help's run ids are examples; the two quickstart runs this test submitted stand in", check: "results/compare/demo-"},
	{text: "hpctl compare demo-20261203-101500-1a2b demo-20261203-104010-9f8e -o json | jq '.differs[].key'",
		run: "hpctl compare $(hpctl runs -o json | jq -r '.[0:2][].id') -o json | jq -e '.differs | length == 0'",
		why: "the help's run ids are examples; the two quickstart runs this test submitted stand in (same spec: no key differs)", check: "true"},
	// A sweep of eight trials for the sweep examples (sweepExamplesSpec).
	{text: "hpctl submit sweep8.yaml --executor local", why: "not an example: the sweep the next examples look at", check: "submitted run sweep8-"},
	{text: "hpctl status latest --watch --interval 1s", why: "not an example: waits for the sweep to end"},
	{text: "hpctl status latest --trials", check: "trial"},
	{text: "hpctl logs latest --trial 3 --stage finetune", check: "finetune of trial 3"},
	{text: "hpctl cancel latest --trial 3 --trial 7"},
	{text: "hpctl compare latest/0 latest/1 --plot seeds.png", check: "seed"},
	// clean, last: it removes runs.
	{text: "hpctl clean --state failed,cancelled --dry-run"},
	{text: "hpctl clean --older-than 30d --remote --yes", check: "no runs match"},
	{text: "hpctl clean latest --yes", check: "removed sweep8-"},
	{text: "hpctl completion fish | source", run: `fish -c 'hpctl completion fish | source; complete -C "hpctl sta"'`,
		why: "fish's own syntax: the example is a line of ~/.config/fish/config.fish", check: "status"},
}

// sweepExamplesSpec is eight trials of two command stages on this machine: the sweep
// examples need a sweep of at least eight trials, not TensorFlow.
const sweepExamplesSpec = `name: sweep8
workdir: .work/runs
executor: local
data: {train: data/train, val: data/val}
container: {runtime: none}
stages:
  - name: frozen
    command: [bash, -c, 'echo "frozen of trial $HPCTL_TRIAL"']
  - name: finetune
    depends_on: [frozen]
    command: [bash, -c, 'echo "finetune of trial $HPCTL_TRIAL"']
sweep:
  grid:
    seed: [1, 2, 3, 4, 5, 6, 7, 8]
`

// TestEveryExampleRuns runs every example of every command's --help and of the README,
// in a scratch directory holding the repository's configs and generated data, with
// hpctl and the test's python (as python3) first on PATH.
func TestEveryExampleRuns(t *testing.T) {
	testenv.RequireSlurm(t)
	sshConfig, _ := testenv.RequireSSH(t)
	py := requirePython(t)
	c := newCLI(t)
	c.useSSH(sshConfig)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	found := helpExamples(t, c)
	for _, e := range readmeExamples(t, filepath.Join(root, "README.md")) {
		found[e] = "README.md"
	}
	known := map[string]bool{}
	for _, e := range examples {
		known[e.text] = true
		if e.run != "" && e.why == "" {
			t.Errorf("example %q runs as %q without saying why", e.text, e.run)
		}
	}
	for e, where := range found {
		if !known[e] {
			t.Errorf("%s shows %q, which no test runs: add it to examples in e2e/examples_test.go", where, e)
		}
	}
	for _, e := range examples {
		if _, ok := found[e.text]; !ok && !strings.HasPrefix(e.why, "not an example") {
			t.Errorf("examples lists %q, which no --help or README shows any more", e.text)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The scratch directory: the configs, the quickstart's data as both data/ (urban.yaml)
	// and demo-data/ (demo.yaml), python3 and hpctl on PATH.
	dir := c.dir
	cp := exec.Command("cp", "-r", filepath.Join(root, "configs"), dir)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copy configs: %v\n%s", err, out)
	}
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	if err := os.Symlink("data", filepath.Join(dir, "demo-data")); err != nil {
		t.Fatal(err)
	}
	writePhotos(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "sweep8.yaml"), []byte(sweepExamplesSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, ".bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// A wrapper, not a symlink: a venv's python finds its packages from its own path.
	shim := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\"\n", py)
	if err := os.WriteFile(filepath.Join(bin, "python3"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(c.bin, filepath.Join(bin, "hpctl")); err != nil {
		t.Fatal(err)
	}
	env := append(slices.Clone(c.env), "PATH="+bin+":"+os.Getenv("PATH"), "PAGER=cat", "LESS=")

	for _, e := range examples {
		line := e.text
		if e.run != "" {
			line = e.run
		}
		ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
		cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", line)
		cmd.Dir, cmd.Env, cmd.WaitDelay = dir, env, 5*time.Second
		start := time.Now()
		out, err := cmd.CombinedOutput()
		cancel()
		if code := cmd.ProcessState.ExitCode(); code != e.exit {
			t.Fatalf("example %q (ran: %s): exit %d, want %d (%v)\n%s", e.text, line, code, e.exit, err, tail(string(out), 40))
		}
		if e.check != "" && !strings.Contains(string(out), e.check) {
			t.Fatalf("example %q (ran: %s): output lacks %q:\n%s", e.text, line, e.check, tail(string(out), 40))
		}
		note := ""
		if e.why != "" {
			note = " (" + e.why + ")"
		}
		t.Logf("ok %.1fs: %s%s", time.Since(start).Seconds(), line, note)
	}
}

// helpExample is an example line of a description, which urfave indents by six.
var helpExample = regexp.MustCompile(`^ {5,}(hpctl .*)$`)

// helpExamples walks every command's --help (the app's, each command's, each
// subcommand's) and returns its example lines, each with the help it is from.
func helpExamples(t *testing.T, c *cli) map[string]string {
	t.Helper()
	found := map[string]string{}
	var walk func(path []string)
	walk = func(path []string) {
		out, _, code := c.run(t, append(path, "--help")...)
		if code != 0 {
			t.Fatalf("hpctl %s --help: exit %d", strings.Join(path, " "), code)
		}
		where := strings.Join(append(append([]string{"hpctl"}, path...), "--help"), " ")
		inCommands := false
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "COMMANDS:"):
				inCommands = true
				continue
			case line == "" || !strings.HasPrefix(line, " "):
				inCommands = false
			}
			if inCommands {
				name := strings.TrimSuffix(strings.Fields(line)[0], ",")
				if name != "help" && name != "h" {
					walk(append(slices.Clone(path), name))
				}
				continue
			}
			// The usage lines ("hpctl status - show ...", "hpctl status [command
			// options] [RUN...]") are not examples.
			if m := helpExample.FindStringSubmatch(line); m != nil && !strings.Contains(m[1], " - ") &&
				!strings.Contains(m[1], "[command options]") && !strings.Contains(m[1], "[global options]") {
				found[stripComment(m[1])] = where
			}
		}
	}
	walk(nil)
	return found
}

// readmeExamples returns the hpctl lines of the README's shell blocks.
func readmeExamples(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inBlock := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock && strings.TrimPrefix(line, "```") == "sh"
			continue
		}
		if inBlock && strings.HasPrefix(line, "hpctl ") {
			out = append(out, stripComment(line))
		}
	}
	return out
}

// stripComment drops a trailing "# comment" (outside quotes: the examples' jq programs
// hold none) and the spaces before it.
func stripComment(s string) string {
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// writePhotos makes the predict examples' photos/: street.jpg from a square and
// field.jpg from a circle of the quickstart's val set, as JPEG (what photos are).
func writePhotos(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "photos"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"street.jpg": "data/val/squares/square_000.png", "field.jpg": "data/val/circles/circle_000.png"} {
		f, err := os.Open(filepath.Join(dir, src))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, "photos", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(out, img, &jpeg.Options{Quality: 95}); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
