package experiment

import "testing"

// Pre-flight reports a refusal where the value was set: a stage's own override, the
// spec-wide key, or (for a default) where the key would go.
func TestPlanResourceKeys(t *testing.T) {
	src := `name: x
slurm:
  mem: 8G
stages:
  - name: a
    slurm: {cpus_per_task: 2}
  - name: b
    depends_on: [a]
`
	l, err := Parse("s.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := l.Plan("/home/u", "/home/u", "x-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stage int
		field string
		want  string
	}{
		{0, "cpus_per_task", "stages[0].slurm.cpus_per_task at s.yaml:6:28"},
		{1, "cpus_per_task", "slurm.cpus_per_task, not set (hpctl's default; set it at s.yaml:3:3)"},
		{0, "mem", "slurm.mem at s.yaml:3:8"},
		{1, "gpus", "slurm.gpus, not set (hpctl's default; set it at s.yaml:3:3)"},
		{1, "partition", "slurm.partition, not set (hpctl's default; set it at s.yaml:3:3)"},
	} {
		if got := p.Stages[c.stage].ResourceKeys[c.field].Where("s.yaml"); got != c.want {
			t.Errorf("stage %d %s: %q, want %q", c.stage, c.field, got, c.want)
		}
	}
	if len(p.Stages[0].ResourceKeys) != len(ResourceFields) {
		t.Errorf("keys %v, want one per %v", p.Stages[0].ResourceKeys, ResourceFields)
	}
}
