package pipeline

import (
	"strings"
	"testing"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/jobs"
)

// TestPodmanVersionRefusal: podman before 4.0 asked for GPUs is refused with a message
// that says why and what to do; 4.x and 5.x, and an unreadable answer, pass (the CDI
// probe and podman itself have the last word).
func TestPodmanVersionRefusal(t *testing.T) {
	p := &experiment.Plan{Stages: []experiment.PlannedStage{{Name: "frozen", Resources: jobs.Resources{GPUs: 2}}}}
	p.Spec.Container.Runtime = "podman"
	rt, _ := containers.Lookup("podman")
	probes := gpuProbes(p, rt.Capabilities())
	if len(probes) != 2 || probes[0].kind != "version" || probes[1].kind != "cdi" {
		t.Fatalf("probes %+v", probes)
	}
	for answer, refused := range map[string]bool{
		"vpodman version 3.4.4": true, "vpodman version 4.3.1": false, "vpodman version 5.2.0": false, "v": false,
	} {
		msg := probes[0].judge(answer)
		if (msg != "") != refused {
			t.Errorf("%q: %q", answer, msg)
		}
		if refused && !strings.Contains(msg, "stage frozen asks for GPUs") || refused && !strings.Contains(msg, "(found 3.4)") {
			t.Errorf("%q: message %q", answer, msg)
		}
	}
	p.Stages[0].Resources.GPUs = 0
	if probes := gpuProbes(p, rt.Capabilities()); len(probes) != 0 {
		t.Errorf("no GPUs asked, probes %+v", probes)
	}
}
