package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
)

// watchTimeout bounds the wait for the live run's first epochs (TensorFlow's start-up
// and the first epoch take a minute or two on the loaded test machine).
const watchTimeout = 8 * time.Minute

// TestStatusWatchOnATerminal runs `hpctl status --watch` in tmux on an 80x24 terminal,
// with 12 runs recorded in the registry (ended, their run directories as jobs leave
// them) and one live trainer run on the Slurm test cluster. On every frame captured no
// line is wider than the terminal; once the live run has finished an epoch the screen
// shows it RUNNING with its loss, validation accuracy, seconds per epoch and ETA; the
// screen never scrolled (tmux kept no history); Ctrl-C ends the watch with exit 130.
func TestStatusWatchOnATerminal(t *testing.T) {
	testenv.RequireSlurm(t)
	py := requirePython(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("no tmux for a terminal of a known size")
	}
	c := newCLI(t)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	// The quickstart's run, with epochs enough to be still training while watched.
	spec := strings.Replace(pipelineSpec(dir, py), fmt.Sprintf("epochs: %d\n", frozenEpochs), "epochs: 5000\n", 1)
	specFile := filepath.Join(dir, "watch.yaml")
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	live := c.submit(t, specFile)
	recordRuns(t, filepath.Join(c.dir, "state", "hpctl"), filepath.Join(dir, "recorded"), 12)

	// A private tmux server (its own socket), killed when the test ends.
	sock := fmt.Sprintf("hpctl-watch-%d", os.Getpid())
	tm := func(args ...string) (string, error) {
		cmd := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...)
		cmd.Env = c.env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { tm("kill-server") })
	script := filepath.Join(dir, "watch.sh")
	var sh strings.Builder
	sh.WriteString("cd " + shq(c.dir) + "\n")
	for _, kv := range c.env {
		if k, v, ok := strings.Cut(kv, "="); ok && (strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "HPCTL_") || k == "PATH" || k == "HOME") {
			sh.WriteString("export " + k + "=" + shq(v) + "\n")
		}
	}
	// hpctl's exit status goes to a file: tmux's pane_dead_status is set only once the tmux
	// server reaps the process, and it was seen leaving hpctl a zombie for over 30 s after
	// the pane closed. The shell's INT trap (a trap, not an ignore, so hpctl gets the
	// default disposition) keeps the shell alive to write the status after Ctrl-C.
	exitFile := filepath.Join(dir, "watch.exit")
	sh.WriteString("trap true INT\n")
	sh.WriteString(shq(c.bin) + " status --last 13 --watch --interval 1s\n")
	sh.WriteString("echo $? > " + shq(exitFile) + ".tmp && mv " + shq(exitFile) + ".tmp " + shq(exitFile) + "\n")
	if err := os.WriteFile(script, []byte(sh.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	// remain-on-exit keeps the pane, and the screen with it, once the script ends.
	if out, err := tm("new-session", "-d", "-s", "w", "-x", "80", "-y", "24", "sh "+shq(script), ";",
		"set-option", "-t", "w", "remain-on-exit", "on"); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	// exited is hpctl's exit status once it has ended ("" while it runs).
	exited := func() string {
		b, err := os.ReadFile(exitFile)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	var screen string
	frames := 0
	deadline := time.Now().Add(watchTimeout)
	for {
		time.Sleep(time.Second)
		// -J joins lines tmux wrapped, so a line wider than the terminal shows as one.
		out, err := tm("capture-pane", "-p", "-J", "-t", "w")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, out)
		}
		screen = out
		if strings.TrimSpace(screen) == "" {
			continue
		}
		frames++
		for _, l := range strings.Split(strings.TrimRight(screen, "\n"), "\n") {
			if n := len([]rune(strings.TrimRight(l, " "))); n > 80 {
				t.Fatalf("a line of %d columns on an 80-column terminal: %q\n%s", n, l, screen)
			}
		}
		if status := exited(); status != "" {
			t.Fatalf("the watch ended by itself (exit %s):\n%s", status, screen)
		}
		if strings.Contains(screen, live.RunID+" frozen: epoch") && strings.Contains(screen, "/5000\n  loss ") &&
			strings.Contains(screen, "ETA") && strings.Contains(screen, "s/epoch") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ETA for the live run after %s; the screen:\n%s", watchTimeout, screen)
		}
	}
	t.Logf("after %d frames, the screen:\n%s", frames, screen)
	lines := strings.Split(screen, "\n")
	if !strings.HasPrefix(lines[0], "every 1s: hpctl status") {
		t.Errorf("the screen's first line is %q, not the watch's header: it scrolled", lines[0])
	}
	recorded, liveRow := 0, false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 3 && strings.HasPrefix(f[0], "recorded-") && f[1] == "COMPLETED" {
			recorded++
		}
		if len(f) >= 3 && f[0] == live.RunID && f[1] == "RUNNING" && f[2] == "frozen" {
			liveRow = true
		}
	}
	if recorded != 12 || !liveRow {
		t.Errorf("%d recorded runs shown (want 12), the live run's line shown: %v", recorded, liveRow)
	}
	if h, err := tm("display-message", "-p", "-t", "w", "#{history_size}"); err != nil || strings.TrimSpace(h) != "0" {
		t.Errorf("tmux history holds %q lines (%v): the watch scrolled instead of redrawing", strings.TrimSpace(h), err)
	}

	// Ctrl-C stops watching (the run goes on) with 130.
	if out, err := tm("send-keys", "-t", "w", "C-c"); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	for end := time.Now().Add(30 * time.Second); ; {
		if status := exited(); status != "" {
			if status != "130" {
				t.Errorf("after Ctrl-C: exit %s, want 130", status)
			}
			break
		}
		if time.Now().After(end) {
			// Where it hangs: Go prints every goroutine's stack on SIGQUIT (hpctl is the
			// script shell's child).
			pid, _ := tm("display-message", "-p", "-t", "w", "#{pane_pid}")
			ps, _ := exec.Command("ps", "--ppid", strings.TrimSpace(pid), "-o", "pid,stat,args").CombinedOutput()
			_ = exec.Command("pkill", "-QUIT", "-P", strings.TrimSpace(pid)).Run()
			time.Sleep(2 * time.Second)
			dump, _ := tm("capture-pane", "-p", "-J", "-S", "-", "-t", "w")
			t.Fatalf("the watch did not end within 30s of Ctrl-C; the shell's children:\n%s\nthe screen after SIGQUIT:\n%s", ps, dump)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := c.status(t, live.RunID); st.State.Terminal() {
		t.Errorf("Ctrl-C of the watch ended the run: %s", st.State)
	}
}

// recordRuns writes n ended runs into the registry in stateDir, their run directories
// under root as the job scripts and trainer leave them (markers and a history), the
// newest an hour old.
func recordRuns(t *testing.T, stateDir, root string, n int) {
	t.Helper()
	ctx := context.Background()
	reg, err := registry.Open(ctx, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	now := time.Now()
	for i := 0; i < n; i++ {
		at := now.Add(-time.Duration(i+1) * time.Hour)
		id := fmt.Sprintf("recorded-%s-%02d", at.Format("20060102-150405"), i)
		runDir := filepath.Join(root, id)
		run := registry.Run{ID: id, SpecName: "recorded", SpecFile: "recorded.yaml", RunDir: runDir, Executor: "slurm",
			Status: registry.RunSubmitted, SubmittedAt: at, Backbone: "tinycnn"}
		for k, name := range []string{"frozen", "finetune"} {
			// Job ids far above the test cluster's, so the scheduler knows none of them.
			job := fmt.Sprint(900000000 + 2*i + k)
			st := registry.RunStage{Name: name, JobID: job, JobName: "recorded-" + name, Epochs: 3}
			if k == 1 {
				st.DependsOn = []string{"frozen"}
			}
			run.Stages = append(run.Stages, st)
			d := experiment.StageDir(runDir, name)
			start, end := at.Unix()+int64(60*k), at.Unix()+int64(60*k+50)
			files := map[string]string{
				filepath.Join(d, experiment.MarkerDir, experiment.StartedMarker):  fmt.Sprintf("job_id=%s\nhost=vm\nstart_time=%d\nattempt=1\n", job, start),
				filepath.Join(d, experiment.MarkerDir, experiment.FinishedMarker): fmt.Sprintf("job_id=%s\nexit_code=0\nstate=COMPLETED\nend_time=%d\n", job, end),
				filepath.Join(d, experiment.HistoryFile): "epoch,loss,accuracy,val_loss,val_accuracy,lr,time\n" +
					fmt.Sprintf("1,0.6,0.7,0.6,0.70,0.01,%d\n2,0.4,0.8,0.5,0.8%d,0.01,%d\n3,0.3,0.9,0.4,0.85,0.01,%d\n", start+20, i%10, start+35, end),
			}
			for p, body := range files {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := reg.Put(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
