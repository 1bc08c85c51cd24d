package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/pipeline/results"
)

// sweepFixture is a finished sweep of two trials (one stage each) on this machine, whose
// trials' resolved specs differ in seed.
func sweepFixture(t *testing.T, dir, id string) registry.Run {
	t.Helper()
	rd := filepath.Join(dir, "cluster", id)
	files := map[string]string{"spec.yaml": "name: sw\n", "spec.resolved.json": "{}\n"}
	for k := 0; k < 2; k++ {
		td := fmt.Sprintf("trials/%d/", k)
		files[td+"spec.resolved.json"] = fmt.Sprintf(`{"seed": %d, "model": {"backbone": "tinycnn"}}`, k+1)
		files[td+"stages/frozen/.hpctl/started"] = fmt.Sprintf("job_id=21_%d\nstart_time=1764395000\nattempt=1\n", k)
		files[td+"stages/frozen/.hpctl/finished"] = fmt.Sprintf("job_id=21_%d\nexit_code=0\nend_time=1764395060\nstate=COMPLETED\n", k)
		files[td+"stages/frozen/history.csv"] = fmt.Sprintf("epoch,loss,accuracy,val_loss,val_accuracy\n1,0.7,0.5,0.6,0.%d\n", 5+k)
	}
	for rel, data := range files {
		p := filepath.Join(rd, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := registry.Run{ID: id, SpecName: "sw", RunDir: rd, Executor: "local", Status: registry.RunSubmitted, SubmittedAt: time.Now(),
		Trials: 2, SweepKeys: []string{"seed"}, TrialValues: [][]string{{"1"}, {"2"}},
		Stages: []registry.RunStage{{Name: "frozen", JobID: "21", Epochs: 1, Arrays: []registry.ArrayJob{{JobID: "21", First: 0, Count: 2}}}}}
	reg, err := registry.Open(context.Background(), filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := reg.Put(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	return run
}

func TestCompareCommand(t *testing.T) {
	dir := isolate(t)
	a := fetchFixture(t, dir, "demo-20261129-054012-a3f9").ID
	b := fetchFixture(t, dir, "demo-20261129-064012-b3f9").ID
	sw := sweepFixture(t, dir, "sw-20261129-074012-c3f9").ID
	res := filepath.Join(dir, "res")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{a}, exitUsage, "two or more runs"},
		{[]string{a, a}, exitUsage, "given twice"},
		{[]string{a, "nope"}, exitNotFound, "nope"},
		{[]string{a + "/0", b}, exitUsage, "not a sweep"},
		{[]string{sw, a}, exitUsage, "compare its trials as " + sw + "/K"},
		{[]string{sw + "/2", a}, exitUsage, "trials 0 to 1"},
	} {
		_, errs, code := hpctl(t, append([]string{"compare", "--results-dir", res}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("compare %v: exit %d, want %d with %q: %s", c.args, code, c.code, c.want, errs)
		}
	}

	// Never fetched: compare fetches both, and their specs are the same.
	out, errs, code := hpctl(t, "compare", "--results-dir", res, a, b)
	if code != 0 || strings.Count(errs, "fetching") != 2 || !strings.Contains(out, "(same resolved spec)") || !strings.Contains(out, "frozen best val acc") {
		t.Fatalf("compare: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(res, a, "summary.json")); err != nil {
		t.Error(err)
	}

	// Two trials of a sweep: the swept key differs; the plot goes where --plot says.
	plot := filepath.Join(dir, "p", "seeds.svg")
	out, errs, code = hpctl(t, "compare", "--results-dir", res, sw+"/0", sw+"/1", "--plot", plot, "-o", "json")
	var c results.Compared
	if err := json.Unmarshal([]byte(out), &c); code != 0 || err != nil {
		t.Fatalf("compare trials: exit %d: %v\n%s\n%s", code, err, out, errs)
	}
	if len(c.Differs) != 1 || c.Differs[0].Key != "seed" || *c.Differs[0].Values[0] != "1" || *c.Differs[0].Values[1] != "2" {
		t.Errorf("differs: %+v", c.Differs)
	}
	if c.Runs[1].Label != sw+"/1" || *c.Runs[1].Trial != 1 || *c.Runs[1].Stages[0].BestValAccuracy != 0.6 {
		t.Errorf("trial 1: %+v", c.Runs[1])
	}
	for _, f := range []string{filepath.Join(dir, "p", "seeds.png"), plot} {
		if _, err := os.Stat(f); err != nil || (c.Plot != f && c.PlotSVG != f) {
			t.Errorf("plot %s: %v (answer: %q %q)", f, err, c.Plot, c.PlotSVG)
		}
	}
}
