package pipeline

import (
	"testing"

	"github.com/hpctl/hpctl/experiment"
)

// The registry's backbone: the spec's, or a sweep's distinct ones in trial order.
func TestBackbones(t *testing.T) {
	spec := func(b string) experiment.Spec { var s experiment.Spec; s.Model.Backbone = b; return s }
	if got := backbones(&experiment.Plan{Spec: spec("resnet50")}); got != "resnet50" {
		t.Errorf("one run: %q", got)
	}
	p := &experiment.Plan{Spec: spec("resnet50"), Trials: []experiment.PlannedTrial{
		{Spec: spec("mobilenetv2")}, {Spec: spec("tinycnn")}, {Spec: spec("mobilenetv2")}}}
	if got := backbones(p); got != "mobilenetv2,tinycnn" {
		t.Errorf("sweep: %q", got)
	}
}
