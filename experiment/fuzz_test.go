package experiment

import (
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the spec loader: it must never panic, and whatever it
// accepts must validate without panicking and plan when valid.
func FuzzParse(f *testing.F) {
	// Each input stays cheap: a sweep of thousands of trials validates thousands of specs,
	// and a slow input stalled the bounded run in CI (context deadline exceeded).
	old := trialLimit
	trialLimit = 64
	f.Cleanup(func() { trialLimit = old })
	for _, tc := range malformed {
		f.Add([]byte(tc.src))
	}
	for _, tc := range badSweeps {
		f.Add([]byte(tc.src))
	}
	for _, c := range []string{"../configs/urban.yaml", "../configs/urban-sweep.yaml"} {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b)
		}
	}
	// Aliases: a bomb over the budget, ordinary reuse, aliases of aliases, an aliased
	// mapping of unknown keys (reported once per alias), an alias where a string goes.
	f.Add(aliasBomb(50, 300))
	f.Add([]byte("name: x\nstages:\n  - name: a\n    slurm: &s {time: '1:00:00', mem: 8G}\n    command: &c [python3, -c, 'print(1)']\n  - name: b\n    slurm: *s\n    command: *c\n"))
	f.Add([]byte("name: &n x\nx: &l [*n, *n, *n]\nstages: [{name: a, command: *l}, {name: b, command: *l, depends_on: *l}]\n"))
	f.Add([]byte("name: x\nslurm: &m {a: 1, b: 2, c: 3}\ncontainer: *m\nstages: [{name: a, slurm: *m, optimizer: *m}]\n"))
	f.Add([]byte("name: x\nstages: [&s {name: a}, *s, *s]\nslurm: {extra: [*s]}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		l, err := Parse("fuzz.yaml", src)
		if l != nil {
			// What decoding builds is bounded by the input (itself capped by Parse) and the
			// alias budget: at most six strings a node (an empty stage) and the top's.
			nodes := 2*len(src) + 2
			if n, limit := len(StringFieldPointers(&l.Spec)), 20+6*(nodes+max(minAliasBudget, nodes)); n > limit {
				t.Fatalf("%d bytes decoded to %d strings, over %d", len(src), n, limit)
			}
		}
		if err != nil {
			if _, ok := err.(*SpecError); !ok {
				t.Fatalf("Parse returned %T, want *SpecError", err)
			}
			return
		}
		if err := l.Validate(); err != nil {
			se, ok := err.(*SpecError)
			if !ok || len(se.Problems) == 0 {
				t.Fatalf("Validate returned %v", err)
			}
			for _, p := range se.Problems {
				if p.Pos.Line < 1 || p.Pos.Col < 1 {
					t.Fatalf("problem without a position: %v", p)
				}
			}
			return
		}
		p, err := l.Plan("/home/u", "/proj", "r")
		if err != nil {
			t.Fatalf("valid spec does not plan: %v", err)
		}
		if _, err := p.ResolvedJSON(); err != nil {
			t.Fatal(err)
		}
		for _, tr := range p.Trials {
			if _, err := p.TrialJSON(tr); err != nil {
				t.Fatal(err)
			}
		}
	})
}
