package results_test

import (
	"bytes"
	"context"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hpctl/hpctl/pipeline/results"
)

func TestFlattenSpec(t *testing.T) {
	got, err := results.FlattenSpec([]byte(`{"name": "a", "seed": 1e-05, "data": {"image_size": [64, 64], "cache": false},
		"model": {}, "stages": [{"name": "frozen", "epochs": 2, "command": []}, {"name": "finetune", "init_from": ""}],
		"tags": [{"x": 1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"name": "a", "seed": "1e-05", "data.image_size": "[64,64]", "data.cache": "false", "model": "{}",
		"stages.frozen.name": "frozen", "stages.frozen.epochs": "2", "stages.frozen.command": "[]",
		"stages.finetune.name": "finetune", "stages.finetune.init_from": "", "tags": `[{"x":1}]`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// Two fetched runs whose resolved specs differ in one key and one run's lack of another:
// exactly those keys are listed, in order, with null for the missing one; the plot is a
// PNG and an SVG.
func TestCompareFetchedRuns(t *testing.T) {
	root := t.TempDir()
	a := fixture{frozenEpochs: 3, finetuneEpochs: 3, finetuneStarted: true, finetuneDone: true}.write(t, filepath.Join(root, "a"))
	b := fixture{frozenEpochs: 2, finetuneEpochs: 4, finetuneStarted: true, finetuneDone: true}.write(t, filepath.Join(root, "b"))
	os.WriteFile(filepath.Join(a.RunDir, "spec.resolved.json"), []byte(`{"name": "u", "model": {"backbone": "resnet50", "dropout": 0.2}}`), 0o644)
	os.WriteFile(filepath.Join(b.RunDir, "spec.resolved.json"), []byte(`{"name": "u", "model": {"backbone": "mobilenetv2"}}`), 0o644)
	c, err := results.Compare([]results.CompareInput{{Label: "a", Run: a, Dir: a.RunDir}, {Label: "b", Run: b, Dir: b.RunDir}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Differs) != 2 || c.Differs[0].Key != "model.backbone" || *c.Differs[0].Values[1] != "mobilenetv2" ||
		c.Differs[1].Key != "model.dropout" || *c.Differs[1].Values[0] != "0.2" || c.Differs[1].Values[1] != nil {
		t.Errorf("differs: %+v", c.Differs)
	}
	if s := c.Stage(1, "finetune"); s == nil || s.EpochsRun != 4 || s.WallTimeSeconds == nil || *s.WallTimeSeconds != 125.5 {
		t.Errorf("b's finetune: %+v", s)
	}
	png, svg, err := results.ComparePlot(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if _, format, err := image.Decode(bytes.NewReader(png)); err != nil || format != "png" {
		t.Errorf("png: %s %v", format, err)
	}
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte(">a<")) {
		t.Errorf("svg without its legend: %.300s", svg)
	}
	if out := os.Getenv("HPCTL_TEST_KEEP_PLOT"); out != "" {
		os.WriteFile(out, png, 0o644)
	}
}
