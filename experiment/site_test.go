package experiment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSiteValuesFillOnlyWhatTheSpecLeavesOut(t *testing.T) {
	f := filepath.Join(t.TempDir(), "s.yaml")
	src := sweepBase + "slurm:\n  account: mine\nsweep:\n  grid:\n    seed: [1, 2, 3]\n"
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	from := "settings file /etc/x.yaml"
	l, err := LoadWith(f, []SiteValue{
		{Key: "slurm.partition", Value: "gpu", From: from},
		{Key: "slurm.account", Value: "theirs", From: from},
		{Key: "slurm.qos", Value: "", From: from},
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.Slurm.Partition != "gpu" || l.Spec.Slurm.Account != "mine" || l.Spec.Slurm.QOS != "" {
		t.Fatalf("slurm: %+v", l.Spec.Slurm)
	}
	if len(l.Site) != 1 || l.Site[0].Key != "slurm.partition" {
		t.Fatalf("recorded as filled: %+v", l.Site)
	}
	for _, tr := range l.Sweep.Trials {
		if tr.Spec.Slurm.Partition != "gpu" || tr.Spec.Slurm.Account != "mine" {
			t.Errorf("trial %d: %+v", tr.Index, tr.Spec.Slurm)
		}
	}
	p, err := l.Plan("/home/u", "/home/u", "x-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range p.Stages {
		if st.Resources.Partition != "gpu" {
			t.Errorf("stage %s plans partition %q", st.Name, st.Resources.Partition)
		}
	}
	if _, err := LoadWith(f, []SiteValue{{Key: "seed", Value: "1", From: from}}); err == nil || !strings.Contains(err.Error(), "not a spec key that settings can fill") {
		t.Errorf("an unknown site key: %v", err)
	}
}
