package render

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
)

// hostile values: each would run something, split, glob or expand if it reached the shell
// unquoted.
var hostile = []string{
	"x$(touch PWNED)",
	"`touch PWNED`",
	"'; touch PWNED; '",
	`"$(id)"`,
	"a b",
	"$HOME",
	"*",
	`\`,
	"ünï cødé ✓",
	"$(touch PWNED)x;touch PWNED&",
	"~/x y",
	"-n",
}

// TestInjection puts hostile text into every string field of a valid spec. A value that
// validation rejects must be reported with a position; a value it accepts is rendered, and
// each stage script runs with bash against stand-in launchers: nothing may run, and the
// launcher must receive exactly the intended words.
func TestInjection(t *testing.T) {
	requireTool(t, "bash")
	runtimes := []string{"pyxis", "apptainer", "docker", "none", "podman", "singularity"}
	base := parse(t, "testdata/inject.yaml")
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	fields := experiment.StringFieldPointers(&base.Spec)
	accepted, rejected := 0, 0
	for fi, f := range fields {
		values := slices.Clone(hostile)
		switch {
		case strings.HasPrefix(f.Path, "container.mounts"):
			for _, h := range hostile {
				values = append(values, h+":/mnt/"+h)
			}
		case strings.HasPrefix(f.Path, "slurm.extra"):
			for _, h := range hostile {
				values = append(values, "--comment="+h)
			}
		}
		for k, v := range values {
			if testing.Short() && k%3 != 0 {
				continue
			}
			rt := runtimes[(fi+k)%len(runtimes)]
			t.Run(fmt.Sprintf("%s/%d/%s", f.Path, k, rt), func(t *testing.T) {
				l := parse(t, "testdata/inject.yaml")
				l.Spec.Container.Runtime = rt
				if rt != "none" {
					l.Spec.Container.Image = "nvcr.io/nvidia/tensorflow:22.02-tf2-py3"
				}
				setField(t, &l.Spec, f.Path, v)
				if err := l.Validate(); err != nil {
					rejected++
					assertPositioned(t, err, f.Path)
					return
				}
				accepted++
				runHostile(t, l, rt)
			})
		}
	}
	t.Logf("%d fields: %d hostile values rendered and run, %d rejected by validation", len(fields), accepted, rejected)
	if accepted == 0 || rejected == 0 {
		t.Errorf("expected some values accepted and some rejected: %d, %d", accepted, rejected)
	}
}

func setField(t *testing.T, s *experiment.Spec, path, v string) {
	t.Helper()
	for _, f := range experiment.StringFieldPointers(s) {
		if f.Path == path {
			*f.Ptr = v
			return
		}
	}
	t.Fatalf("no field %s", path)
}

func assertPositioned(t *testing.T, err error, path string) {
	t.Helper()
	var se *experiment.SpecError
	if !errors.As(err, &se) || len(se.Problems) == 0 {
		t.Fatalf("rejected without a SpecError: %v", err)
	}
	found := false
	for _, p := range se.Problems {
		if p.Pos.Line == 0 {
			t.Errorf("problem without a position: %s", p)
		}
		found = found || strings.HasPrefix(p.Msg, path+":")
	}
	if !found {
		t.Errorf("no problem names %s: %v", path, err)
	}
}

func runHostile(t *testing.T, l *experiment.Loaded, runtime string) {
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	p := planOf(t, l, home, filepath.Join(tmp, "base"))
	files, err := Render(p)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if err := WriteDir(files, p.RunDir); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "bin")
	standIns(t, bin, launchers...)
	if runtime == "none" {
		// The command's program is the hostile text itself: give bash a stand-in of that
		// exact name, found where bash will look for it.
		for _, st := range p.Stages {
			prog := st.Command[0]
			dir := bin
			if strings.Contains(prog, "/") {
				dir = p.RunDir
			}
			standIns(t, filepath.Join(dir, filepath.Dir(prog)), filepath.Base(prog))
		}
	}
	argvDir := filepath.Join(tmp, "argv")
	env := []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + home, "HPCTL_ARGV_DIR=" + argvDir,
		"HPCTL_JOB_ID=job-1", "CUDA_VISIBLE_DEVICES=0", "LANG=C.UTF-8"}
	for _, st := range p.Stages {
		if err := os.RemoveAll(argvDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(argvDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", experiment.ScriptPath(p.RunDir, st.Name))
		cmd.Dir = tmp
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("stage %s: %v\n%s", st.Name, err, out)
		}
		words, err := LaunchWords(p, st)
		if err != nil {
			t.Fatal(err)
		}
		want := evalWords(t, words, env, home)
		var got [][]string
		for _, r := range records(t, argvDir) {
			got = append(got, r...)
		}
		if rt, _ := containers.Lookup(p.Spec.Container.Runtime); rt.Capabilities().Signals == containers.SignalViaCLI && len(got) == 2 {
			// The job script removes the named container on exit, whatever ended it.
			name := containers.ContainerName(p.RunID, st.Name).String()
			name = strings.ReplaceAll(name, "$HPCTL_JOB_ID", "job-1")
			name = strings.ReplaceAll(name, `"`, "")
			if rm := []string{rt.Capabilities().Program, "rm", "-f", "--", name}; !slices.Equal(got[1], rm) {
				t.Fatalf("stage %s: second launcher call %q, want %q", st.Name, got[1], rm)
			}
			got = got[:1]
		}
		if len(got) != 1 || !slices.Equal(got[0], want) {
			t.Fatalf("stage %s: launcher calls\n got %q\nwant %q", st.Name, got, want)
		}
		if tail := got[0][len(got[0])-len(st.Command):]; !slices.Equal(tail[1:], st.Command[1:]) {
			t.Errorf("stage %s: command words %q, want %q", st.Name, tail, st.Command)
		}
		_, finished := (&stageRun{t: t, runDir: p.RunDir}).markers(st.Name)
		if finished["state"] != "COMPLETED" || finished["job_id"] != "job-1" {
			t.Errorf("stage %s: finished = %v", st.Name, finished)
		}
	}
	err = filepath.WalkDir(tmp, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "PWNED" {
			t.Errorf("PWNED created: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
