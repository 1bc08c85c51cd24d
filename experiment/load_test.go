package experiment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// extraSpec is a valid spec but for one slurm.extra entry, written on line 4 column 7.
func extraSpec(entry string) string {
	return "name: x\nslurm:\n  extra:\n    - '" + strings.ReplaceAll(entry, "'", "''") + "'\nstages: [{name: a}]\n"
}

// TestSlurmExtra checks each slurm.extra entry is one option that sbatch reads as written
// and that does not set what hpctl sets (sbatch takes abbreviations and short forms).
func TestSlurmExtra(t *testing.T) {
	const form = "; write one option per entry, as --name or --name=value"
	const shown = ", which sbatch does not read as written on an #SBATCH line (a space ends the option; quotes and '\\' are removed; '#' starts a comment)" + form
	for _, tc := range []struct{ entry, want string }{
		{"--comment=a --job-name=INJECTED", `"--comment=a --job-name=INJECTED" holds " "` + shown},
		{"--comment=hello world", `"--comment=hello world" holds " "` + shown},
		{"--comment=\"hello\"", `"--comment=\"hello\"" holds "\""` + shown},
		{"--comment='hi'", `"--comment='hi'" holds "'"` + shown},
		{`--comment=a\b`, `"--comment=a\\b" holds "\\"` + shown},
		{"--comment=a#b", `"--comment=a#b" holds "#"` + shown},
		{"--comment=", `"--comment=" has an empty value` + form},
		{"--constraint a100", `"--constraint a100" is not an sbatch option of the form --name or --name=value`},
		{"--job-name=INJ", `"--job-name=INJ" sets --job-name, which hpctl writes itself and a job must keep`},
		{"--job=INJ", `"--job=INJ" sets --job (sbatch reads it as --job-name), which hpctl writes itself and a job must keep`},
		{"--output=/tmp/x", `"--output=/tmp/x" sets --output, which hpctl writes itself and a job must keep`},
		{"--err=/tmp/x", `"--err=/tmp/x" sets --err (sbatch reads it as --error), which hpctl writes itself and a job must keep`},
		{"--dependency=afterok:1", `"--dependency=afterok:1" sets --dependency, which hpctl writes itself and a job must keep`},
		{"--array=1-3", `"--array=1-3" sets --array, which hpctl writes itself and a job must keep`},
		{"--ch=/tmp", `"--ch=/tmp" sets --ch (sbatch reads it as --chdir), which hpctl writes itself and a job must keep`},
		{"--signal=B:USR1@60", `"--signal=B:USR1@60" sets --signal, which hpctl writes itself; use slurm.signal_before instead`},
		{"--part=debug", `"--part=debug" sets --part (sbatch reads it as --partition), which hpctl writes itself; use slurm.partition instead`},
		{"--account=a", `"--account=a" sets --account, which hpctl writes itself; use slurm.account instead`},
		{"--qos=high", `"--qos=high" sets --qos, which hpctl writes itself; use slurm.qos instead`},
		{"--time=1:00:00", `"--time=1:00:00" sets --time, which hpctl writes itself; use slurm.time instead`},
		{"--gres=gpu:2", `"--gres=gpu:2" sets --gres, which hpctl writes itself; use slurm.gpus instead`},
		{"--gpus=2", `"--gpus=2" sets --gpus, which hpctl writes itself; use slurm.gpus instead`},
		{"--cpus=4", `"--cpus=4" sets --cpus (sbatch reads it as --cpus-per-task), which hpctl writes itself; use slurm.cpus_per_task instead`},
		{"--mem=8G", `"--mem=8G" sets --mem, which hpctl writes itself; use slurm.mem instead`},
		{"--mem-per-cpu=2G", `"--mem-per-cpu=2G" sets --mem-per-cpu, which hpctl writes itself; use slurm.mem instead`},
		{"--mem-per=2G", `"--mem-per=2G" abbreviates --mem-per-cpu, --mem-per-gpu, options that hpctl writes itself`},
		{"--nodes=2", `"--nodes=2" sets --nodes, which hpctl writes itself; use slurm.nodes instead`},
		{"--no-requeue", `"--no-requeue" sets --no-requeue, which hpctl writes itself; use slurm.requeue instead`},
		{"--requeue", `"--requeue" sets --requeue, which hpctl writes itself; use slurm.requeue instead`},
		{"--open-mode=truncate", `"--open-mode=truncate" sets --open-mode, which hpctl writes itself and a job must keep`},
		{"--c=1", `"--c=1" abbreviates --chdir, --cpus-per-task, options that hpctl writes itself`},
		{"-J", `"-J" sets -J (sbatch reads it as --job-name), which hpctl writes itself and a job must keep`},
		{"-JINJ", `"-JINJ" sets -J (sbatch reads it as --job-name), which hpctl writes itself and a job must keep`},
		{"-o /tmp/x", `"-o /tmp/x" sets -o (sbatch reads it as --output), which hpctl writes itself and a job must keep`},
		{"-e x", `"-e x" sets -e (sbatch reads it as --error), which hpctl writes itself and a job must keep`},
		{"-D /", `"-D /" sets -D (sbatch reads it as --chdir), which hpctl writes itself and a job must keep`},
		{"-a1", `"-a1" sets -a (sbatch reads it as --array), which hpctl writes itself and a job must keep`},
		{"-d afterok:1", `"-d afterok:1" sets -d (sbatch reads it as --dependency), which hpctl writes itself and a job must keep`},
		{"-p debug", `"-p debug" sets -p (sbatch reads it as --partition), which hpctl writes itself; use slurm.partition instead`},
		{"-A acct", `"-A acct" sets -A (sbatch reads it as --account), which hpctl writes itself; use slurm.account instead`},
		{"-q high", `"-q high" sets -q (sbatch reads it as --qos), which hpctl writes itself; use slurm.qos instead`},
		{"-t 10", `"-t 10" sets -t (sbatch reads it as --time), which hpctl writes itself; use slurm.time instead`},
		{"-N2", `"-N2" sets -N (sbatch reads it as --nodes), which hpctl writes itself; use slurm.nodes instead`},
		{"-c 4", `"-c 4" sets -c (sbatch reads it as --cpus-per-task), which hpctl writes itself; use slurm.cpus_per_task instead`},
		{"-C a100", `"-C a100" is a short option` + form},
		{"hetjob", `"hetjob" would split the job script into heterogeneous job components (sbatch reads hetjob/packjob on an #SBATCH line as a separator); hpctl submits one job per stage`},
		{"--comment=x-packjob", `"--comment=x-packjob" would split the job script into heterogeneous job components (sbatch reads hetjob/packjob on an #SBATCH line as a separator); hpctl submits one job per stage`},
	} {
		t.Run(tc.entry, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(extraSpec(tc.entry)))
			if err != nil {
				t.Fatal(err)
			}
			assertProblems(t, extraSpec(tc.entry), "4:7: slurm.extra[0]: "+tc.want)
		})
	}
	for _, ok := range []string{"--constraint=a100", "--exclusive", "--comment=50%_done", "--mail-type=END,FAIL",
		"--mail-user=a@b.c", "--time-min=1:00:00", "--gpu-bind=closest", "--export=ALL", "--nice=10", "--mem-bind=local"} {
		t.Run(ok, func(t *testing.T) { assertProblems(t, extraSpec(ok)) })
	}
	// The position is the entry's, in a list of several.
	assertProblems(t, "name: x\nslurm:\n  extra: [--exclusive, --job=x]\nstages: [{name: a}]\n",
		`3:24: slurm.extra[1]: "--job=x" sets --job (sbatch reads it as --job-name), which hpctl writes itself and a job must keep`)
}

// assertProblems loads src from a file and compares its problems, without the file name.
func assertProblems(t *testing.T, src string, want ...string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(file)
	var got []string
	var se *SpecError
	if errors.As(err, &se) {
		for _, p := range se.Problems {
			got = append(got, strings.TrimPrefix(p.String(), file+":"))
		}
	} else if err != nil {
		t.Fatalf("Load returned %v, want a *SpecError", err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n got: %q\nwant: %q", got, want)
	}
}

// aliasBomb is a spec whose stages are n aliases of one stage with a command of words
// words: the file grows by 6 bytes an alias, the decoded spec by words strings.
func aliasBomb(n, words int) []byte {
	var b strings.Builder
	b.WriteString("name: x\nstages:\n  - &st\n    name: a\n    command: [")
	for i := range words {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("w")
	}
	b.WriteString("]\n")
	for range n {
		b.WriteString("  - *st\n")
	}
	return []byte(b.String())
}

// TestAliasBomb: aliases expanding to millions of values are refused at the alias where
// the budget ran out, with memory bounded; before the budget a 30 KB bomb took 30 s and
// 3 GB, and a 100 KB one ran out of memory.
func TestAliasBomb(t *testing.T) {
	for _, tc := range []struct {
		name          string
		aliases, word int
	}{
		{"30KB", 3000, 3000},
		{"100KB", 12000, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := aliasBomb(tc.aliases, tc.word)
			t.Logf("%d bytes", len(src))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			l, err := Parse("bomb.yaml", src)
			runtime.ReadMemStats(&after)
			if l != nil {
				t.Errorf("Parse returned a spec of %d stages", len(l.Spec.Stages))
			}
			var se *SpecError
			if !errors.As(err, &se) || len(se.Problems) != 1 {
				t.Fatalf("Parse: %v", err)
			}
			// Refused at an alias as written in the file, one of the `  - *st` lines.
			p := se.Problems[0]
			want := fmt.Sprintf("too many alias expansions (the aliases of this spec expand to more than %d values)", max(minAliasBudget, countNodesOf(t, src)))
			lines := strings.Split(string(src), "\n")
			if p.Pos.Line < 6 || p.Pos.Line > len(lines) || lines[p.Pos.Line-1] != "  - *st" || p.Pos.Col != 5 || !strings.HasPrefix(p.Msg, want) {
				t.Errorf("problem %v, want at an alias: %s", p, want)
			}
			t.Logf("decoding allocated %d KB", (after.TotalAlloc-before.TotalAlloc)>>10)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 200<<20 {
				t.Errorf("decoding allocated %d MB", alloc>>20)
			}
		})
	}
}

func countNodesOf(t *testing.T, src []byte) int {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	return countNodes(&doc)
}

// TestAliasesWithinBudget: ordinary aliases (a shared block reused by a few stages) decode.
func TestAliasesWithinBudget(t *testing.T) {
	src := "name: x\nstages:\n  - name: a\n    slurm: &s {time: '1:00:00', mem: 8G}\n    command: &c [python3, -c, 'print(1)']\n  - name: b\n    slurm: *s\n    command: *c\n"
	l, err := Parse("s.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Spec.Stages[1]; got.Slurm.Mem != "8G" || len(got.Command) != 3 {
		t.Errorf("stage b: %+v", got)
	}
}

// TestSpecOnlyFromRegularFiles: /dev/zero would be read without end, a FIFO would block
// until a writer came; both are refused at once, as is a file over the size cap.
func TestSpecOnlyFromRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("name: x\n"+strings.Repeat("# padding\n", MaxSpecBytes/10)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"/dev/zero", "/dev/zero: cannot read the spec: not a regular file (a character device); hpctl reads specs from files only"},
		{fifo, fifo + ": cannot read the spec: not a regular file (a named pipe); hpctl reads specs from files only"},
		{dir, dir + ": cannot read the spec: not a regular file (a directory); hpctl reads specs from files only"},
		{big, fmt.Sprintf("%s: cannot read the spec: the spec is %d bytes, over the limit of 256 KiB for a spec file", big, 8+MaxSpecBytes/10*10)},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := Load(tc.file); done <- err }()
			select {
			case err := <-done:
				if err == nil || err.Error() != tc.want {
					t.Errorf("Load: %v\nwant: %s", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load blocked") // the goroutine stays blocked; the test binary ends
			}
		})
	}
	// Parse, which the fuzzer drives, has the same cap.
	if _, err := Parse("s.yaml", make([]byte, MaxSpecBytes+1)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("Parse of a too big spec: %v", err)
	}
}

// manyProblems is a spec with n problems found decoding (list items where strings go) and
// n found validating (slurm.extra entries that are not options).
func manyProblems(n int) []byte {
	return []byte("name: x\nslurm:\n  extra: [" + strings.Repeat("a,", n) + "]\nstages:\n  - name: a\n    command: [" + strings.Repeat("[],", n) + "]\n")
}

// TestManyProblems: a spec with 40,000 problems is reported whole, and quickly: each
// validation problem is looked up among the decoding problems that may cover it in a set
// (the command's empty program, left so by the undecodable command[0], is covered), not
// by scanning them all, which took seconds (see BenchmarkManyProblems).
func TestManyProblems(t *testing.T) {
	const n = 20000
	file := filepath.Join(t.TempDir(), "many.yaml")
	if err := os.WriteFile(file, manyProblems(n), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(file)
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	if len(se.Problems) != 2*n {
		t.Errorf("%d problems, want %d", len(se.Problems), 2*n)
	}
	for _, i := range []int{0, n - 1, n, 2*n - 1} {
		t.Logf("%s", se.Problems[i])
	}
	if got := se.Problems[n].String(); got != file+`:6:15: stages[0].command[0]: expected a string, found a list` {
		t.Errorf("problem %d: %s", n, got)
	}
}

// missingDependencies is a spec of n stages each depending on a stage that is not there.
func missingDependencies(n int) []byte {
	var b strings.Builder
	b.WriteString("name: x\nstages:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: s%d, depends_on: [x]}\n", i)
	}
	return []byte(b.String())
}

// TestManyMissingDependencies: thousands of stages each naming a missing dependency are
// reported without a "did you mean" (each compared with every stage name took 13 s for
// 7000); a pipeline's worth of stages still gets one (see the malformed cases).
func TestManyMissingDependencies(t *testing.T) {
	const n = 7000
	file := filepath.Join(t.TempDir(), "deps.yaml")
	if err := os.WriteFile(file, missingDependencies(n), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(file)
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	if len(se.Problems) != n {
		t.Errorf("%d problems, want %d", len(se.Problems), n)
	}
	if got := se.Problems[0].String(); got != file+`:3:29: stages[0].depends_on[0]: no stage is called "x"` {
		t.Errorf("first problem %s", got)
	}
}

func BenchmarkManyProblems(b *testing.B) {
	for name, src := range map[string][]byte{
		"decoded-and-validated": manyProblems(20000),
		"missing-dependencies":  missingDependencies(7000),
	} {
		b.Run(name, func(b *testing.B) {
			file := filepath.Join(b.TempDir(), "many.yaml")
			if err := os.WriteFile(file, src, 0o644); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := Load(file); err == nil {
					b.Fatal("no problems")
				}
			}
		})
	}
}

// TestCoveredByDecodingProblems: a validation problem is dropped when a decoding problem
// is at its path or above it, and only then.
func TestCoveredByDecodingProblems(t *testing.T) {
	s := decodedPaths([]Problem{{path: "stages[1].slurm"}, {path: "data.train"}})
	for path, want := range map[string]bool{
		"stages[1].slurm": true, "stages[1].slurm.time": true, "data.train": true,
		"stages[1]": false, "stages[10].slurm": false, "stages[1].slurmx": false,
		"data.train_x": false, "data": false, "stages[0].slurm.time": false,
	} {
		if got := s.covers(path); got != want {
			t.Errorf("covers(%q) = %v, want %v", path, got, want)
		}
	}
	if !decodedPaths([]Problem{{path: ""}}).covers("name") {
		t.Error("a problem with the whole spec covers every path")
	}
}
