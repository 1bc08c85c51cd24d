package results

import (
	"fmt"
	"strconv"
	"strings"
)

// Report renders report.md: the stage table, the learning curves, each stage's
// evaluation on the validation set, and where the files are. It embeds the plot by its
// relative name, so the folder can be moved or shared as a whole.
func Report(f *Fetched) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", f.RunID)
	where := "this machine"
	if f.Host != "" {
		where = "`" + f.Host + "`"
	}
	fmt.Fprintf(&b, "Spec `%s`, fetched from %s at %s UTC.\n\n", f.SpecName, where, f.FetchedAt.Format("2006-01-02 15:04:05"))

	b.WriteString("## Stages\n\n")
	b.WriteString("| stage | state | job | epochs | best val acc (epoch) | best val loss | final val acc | final val loss | wall time | images/s | started from |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range f.Stages {
		best := Float(s.BestValAccuracy, 4)
		if best != "" && s.BestEpoch > 0 {
			best += " (" + strconv.Itoa(s.BestEpoch) + ")"
		}
		from := ""
		if s.InitFrom != "" {
			from = "`" + s.InitFrom + "` best checkpoint"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			md(s.Name), s.State, md(s.JobID), Epochs(s), best, Float(s.BestValLoss, 4),
			Float(s.FinalValAccuracy, 4), Float(s.FinalValLoss, 4), Duration(s.WallTimeSeconds),
			Rate(s.ImagesPerSecond, 1), from)
	}
	b.WriteString("\n")

	switch {
	case f.Plot != "":
		b.WriteString("## Learning curves\n\n")
		b.WriteString("Both stages on one epoch axis; the dashed vertical line marks where the next stage starts, ")
		b.WriteString("and a ring each stage's best epoch, whose checkpoint was kept.")
		if f.PlotSVG != "" {
			fmt.Fprintf(&b, " The same figure as SVG: [%s](%s).", PlotSVGFile, PlotSVGFile)
		}
		fmt.Fprintf(&b, "\n\n![Accuracy and loss per epoch](%s)\n\n", PlotFile)
	case f.PlotError != "":
		fmt.Fprintf(&b, "No learning curves: they could not be drawn (%s).\n\n", md(f.PlotError))
	default:
		b.WriteString("No stage has finished an epoch yet: no learning curves. Fetch again later.\n\n")
	}

	evaluated := false
	for _, s := range f.Stages {
		if s.EvalAccuracy == nil && len(s.ConfusionMatrix) == 0 {
			continue
		}
		if !evaluated {
			b.WriteString("## Evaluation on the validation set (best checkpoint)\n\n")
			evaluated = true
		}
		fmt.Fprintf(&b, "### %s\n\nAccuracy %s on %d images.\n\n", md(s.Name), Float(s.EvalAccuracy, 4), s.EvalImages)
		if len(s.ClassNames) > 0 && len(s.ConfusionMatrix) == len(s.ClassNames) {
			b.WriteString("| true \\ predicted |")
			for _, c := range s.ClassNames {
				b.WriteString(" " + md(c) + " |")
			}
			b.WriteString(" accuracy |\n|---|")
			b.WriteString(strings.Repeat("---|", len(s.ClassNames)+1) + "\n")
			for i, c := range s.ClassNames {
				b.WriteString("| " + md(c) + " |")
				for _, n := range s.ConfusionMatrix[i] {
					b.WriteString(" " + strconv.Itoa(n) + " |")
				}
				b.WriteString(" " + Float(s.PerClassAccuracy[c], 4) + " |\n")
			}
			b.WriteString("\n")
		}
	}

	warned := false
	for _, s := range f.Stages {
		if len(s.Warnings) == 0 {
			continue
		}
		if !warned {
			b.WriteString("## Warnings\n\n")
			b.WriteString("What could not be read was left out of the numbers above.\n\n")
			warned = true
		}
		for _, w := range s.Warnings {
			fmt.Fprintf(&b, "- %s: %s\n", md(s.Name), md(w))
		}
	}
	if warned {
		b.WriteString("\n")
	}

	b.WriteString("## Files\n\n")
	b.WriteString("This folder mirrors the run directory on the cluster: `spec.yaml` (as written), ")
	b.WriteString("`spec.resolved.json` (every default filled in), `logs/` (job output), and per stage ")
	b.WriteString("`stages/<stage>/history.csv`, `metrics.json`, `evaluation.json` and `checkpoints/`. ")
	b.WriteString("`summary.json` holds this report's numbers for scripts. Stages trained with ")
	b.WriteString("`training.tensorboard: true` have their event files in `stages/<stage>/tensorboard/`: ")
	b.WriteString("`tensorboard --logdir` on the results folder shows them.\n")
	return b.String()
}

// Epochs is "run/planned", or "run/-" when nothing declared how many (a command stage),
// the form `hpctl status` uses too.
func Epochs(s StageSummary) string {
	return EpochsOf(s.EpochsRun, s.Epochs)
}

// EpochsOf formats done of total epochs, total 0 meaning unknown.
func EpochsOf(done, total int) string {
	if total > 0 {
		return fmt.Sprintf("%d/%d", done, total)
	}
	return fmt.Sprintf("%d/-", done)
}

// md keeps table cells intact whatever a name holds.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace(s)
}
