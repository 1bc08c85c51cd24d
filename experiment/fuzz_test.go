package experiment

import (
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the spec loader: it must never panic, and whatever it
// accepts must validate without panicking and plan when valid.
func FuzzParse(f *testing.F) {
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
	f.Fuzz(func(t *testing.T, src []byte) {
		l, err := Parse("fuzz.yaml", src)
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
