package experiment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/trainer"
)

// Every backbone in trainer/backbones.json (the table the trainer builds its models from)
// is accepted by validation at its minimum image size and refused one pixel below it.
func TestBackbonesTableAcceptedByValidation(t *testing.T) {
	table, err := trainer.Backbones()
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != len(Backbones) {
		t.Fatalf("experiment.Backbones has %d entries, backbones.json %d", len(Backbones), len(table))
	}
	for name, b := range table {
		t.Run(name, func(t *testing.T) {
			load := func(side int) error {
				src := fmt.Sprintf("name: x\ndata:\n  image_size: [%d, %d]\nmodel:\n  backbone: %s\n  weights: none\nstages: [{name: a}]\n",
					side, b.MinImageSize, name)
				file := filepath.Join(t.TempDir(), "spec.yaml")
				if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
				_, err := Load(file)
				return err
			}
			if err := load(b.MinImageSize); err != nil {
				t.Errorf("at its minimum size %d: %v", b.MinImageSize, err)
			}
			err := load(b.MinImageSize - 1)
			var se *SpecError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), fmt.Sprintf("below %s's minimum of %d pixels", name, b.MinImageSize)) {
				t.Errorf("one pixel below its minimum: %v, want a SpecError naming the minimum", err)
			}
		})
	}
}
