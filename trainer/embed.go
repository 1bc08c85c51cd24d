// Package trainer embeds the Python trainer (train.py, its hpctl_trainer modules, weights.json
// and backbones.json) that hpctl stages into every run directory.
package trainer

import (
	"embed"
	"encoding/json"
	"fmt"
)

// FS holds train.py, hpctl_trainer/*.py, weights.json and backbones.json, at the same
// relative paths as in the repository.
//
//go:embed train.py weights.json backbones.json hpctl_trainer/*.py
var FS embed.FS

// Backbone is one entry of backbones.json: the table both hpctl's validation and the
// trainer's model and preprocessing code read, so the two cannot disagree on which
// backbones exist or how small an image each accepts.
type Backbone struct {
	// Application is the keras.applications model; empty for the trainer's own tinycnn.
	Application string `json:"application"`
	// Preprocessing is keras.applications' preprocess_input mode: caffe, tf or none.
	Preprocessing string `json:"preprocessing"`
	// MinImageSize is the smallest input side the backbone accepts without its top.
	MinImageSize int `json:"min_image_size"`
}

// Backbones reads the embedded backbones.json.
func Backbones() (map[string]Backbone, error) {
	b, err := FS.ReadFile("backbones.json")
	if err != nil {
		return nil, fmt.Errorf("backbones.json: %w", err)
	}
	var t map[string]Backbone
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("backbones.json: %w", err)
	}
	if len(t) == 0 {
		return nil, fmt.Errorf("backbones.json: no backbones")
	}
	for name, e := range t {
		switch e.Preprocessing {
		case "caffe", "tf", "none":
		default:
			return nil, fmt.Errorf("backbones.json: %s: preprocessing %q is not caffe, tf or none", name, e.Preprocessing)
		}
		if e.MinImageSize < 1 {
			return nil, fmt.Errorf("backbones.json: %s: min_image_size %d is not positive", name, e.MinImageSize)
		}
	}
	return t, nil
}
