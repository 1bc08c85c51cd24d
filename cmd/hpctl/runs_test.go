package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/transport"
)

// historyCmd writes a stage's own history.csv, as a command stage may, with these
// validation accuracies.
func historyCmd(accs ...string) string {
	rows := "epoch,loss,accuracy,val_loss,val_accuracy\\n"
	for i, a := range accs {
		rows += fmt.Sprintf("%d,1.0,0.5,%d.5,%s\\n", i+1, len(accs)-i, a)
	}
	return `printf '` + rows + `' > "$HPCTL_RUN_DIR/stages/$HPCTL_STAGE/history.csv"`
}

// hpctl runs shows each run's backbone and its last stage's best validation accuracy,
// with one squeue and at most one sacct for all runs; without the cluster, from
// fetched results.
func TestCLIRunsShowsBackboneAndBestValAccuracy(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	t.Setenv("HPCTL_RESULTS_DIR", filepath.Join(dir, "results"))
	s1 := submitJSON(t, slurmSpec(t, dir, historyCmd("0.9"), historyCmd("0.625", "0.75", "0.5")))
	waitEnded(t, s1.RunID)
	s2 := submitJSON(t, slurmSpec(t, dir, "true", "true"))
	waitEnded(t, s2.RunID)

	e, counts := counted()
	out, errs, code := hpctlWith(t, e, "runs", "-o", "json")
	if code != 0 {
		t.Fatalf("runs: exit %d: %s", code, errs)
	}
	if c := counts(); c["squeue"] > 1 || c["sacct"] > 1 {
		t.Errorf("runs of 2 runs ran %v", c)
	}
	var rows []runsRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("runs -o json: %v\n%s", err, out)
	}
	byID := map[string]runsRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	if r := byID[s1.RunID]; r.Backbone != "resnet50" || r.BestValAccuracy == nil || *r.BestValAccuracy != 0.75 {
		t.Errorf("run with a history: backbone %q, best %v", r.Backbone, r.BestValAccuracy)
	}
	if r := byID[s2.RunID]; r.BestValAccuracy != nil {
		t.Errorf("run without a history: best %v", *r.BestValAccuracy)
	}
	out, _, _ = hpctl(t, "runs")
	if !strings.Contains(out, "BEST VAL ACC") || !strings.Contains(out, "0.7500") || !strings.Contains(out, "resnet50") {
		t.Errorf("runs table:\n%s", out)
	}

	// A record without the backbone (written before hpctl recorded it), a cluster that
	// does not answer: fetched results fill both.
	if _, errs, code := hpctl(t, "fetch-results", s1.RunID, "--no-checkpoints"); code != 0 {
		t.Fatalf("fetch-results: exit %d: %s", code, errs)
	}
	ctx := context.Background()
	reg, err := registry.Open(ctx, filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := reg.Get(ctx, s1.RunID)
	r.Backbone = ""
	reg.Put(ctx, r)
	reg.Close()
	down := &env{wrapTransport: func(t transport.Transport) transport.Transport { return unreachable{t} }}
	out, errs, code = hpctlWith(t, down, "runs", "-o", "json")
	rows = nil
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 2 || !strings.Contains(errs, "states unknown") {
		t.Fatalf("runs with the cluster down: exit %d: %s\n%s", code, errs, out)
	}
	for _, r := range rows {
		if r.ID == s1.RunID && (r.Backbone != "resnet50" || r.BestValAccuracy == nil || *r.BestValAccuracy != 0.75) {
			t.Errorf("from fetched results: backbone %q, best %v", r.Backbone, r.BestValAccuracy)
		}
	}
}

// unreachable is a cluster that does not answer (a fault the test cluster cannot be
// made to produce for one process only).
type unreachable struct{ transport.Transport }

func (unreachable) Run(context.Context, []string, io.Reader) (transport.Result, error) {
	return transport.Result{}, fmt.Errorf("ssh: connect: %w", errkind.ErrUnreachable)
}
