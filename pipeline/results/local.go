package results

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
)

// LocalFacts are what fetch-results left in <results-dir>/<run-id>/ says about a run,
// for commands that list runs without asking the cluster.
type LocalFacts struct {
	Backbone        string
	BestValAccuracy *num.Float
}

// Local reads run's fetched results under root: the backbone from the resolved spec (a
// sweep's first trial's), and the final stage's best validation accuracy (a sweep's best
// trial's score) from summary.json. Anything missing or unreadable is left zero.
func Local(root string, run registry.Run) LocalFacts {
	var lf LocalFacts
	if root == "" || run.ID == "" || run.ID != filepath.Base(run.ID) || strings.HasPrefix(run.ID, ".") {
		return lf
	}
	dir := filepath.Join(root, run.ID)
	for _, spec := range []string{experiment.ResolvedSpecFile, filepath.Join(filepath.FromSlash(experiment.TrialDir(0)), experiment.ResolvedSpecFile)} {
		var s struct {
			Model struct {
				Backbone string `json:"backbone"`
			} `json:"model"`
		}
		if b, err := os.ReadFile(filepath.Join(dir, spec)); err == nil && json.Unmarshal(b, &s) == nil && s.Model.Backbone != "" {
			lf.Backbone = s.Model.Backbone
			break
		}
	}
	var f Fetched
	if b, err := os.ReadFile(filepath.Join(dir, SummaryFile)); err == nil && json.Unmarshal(b, &f) == nil {
		for _, t := range f.Trials {
			if f.BestTrial != nil && t.Trial == *f.BestTrial {
				lf.BestValAccuracy = t.Score
			}
		}
		if n := len(f.Stages); n > 0 && f.Trials == nil {
			lf.BestValAccuracy = f.Stages[n-1].BestValAccuracy
		}
	}
	return lf
}
