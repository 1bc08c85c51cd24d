package trainer

import "testing"

// The table as the trainer's tests expect it; the trainer's model.py and data.py read the
// same file (tests/test_units.py builds each backbone at its minimum size).
func TestBackbonesTable(t *testing.T) {
	got, err := Backbones()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Backbone{
		"resnet50":       {Application: "ResNet50", Preprocessing: "caffe", MinImageSize: 32},
		"mobilenetv2":    {Application: "MobileNetV2", Preprocessing: "tf", MinImageSize: 32},
		"efficientnetb0": {Application: "EfficientNetB0", Preprocessing: "none", MinImageSize: 32},
		"tinycnn":        {Application: "", Preprocessing: "tf", MinImageSize: 8},
	}
	if len(got) != len(want) {
		t.Errorf("%d backbones, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %+v, want %+v", name, got[name], w)
		}
	}
}
