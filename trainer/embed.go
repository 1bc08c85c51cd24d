// Package trainer embeds the Python trainer (train.py, its hpctl_trainer modules and weights.json) that hpctl stages into every run directory.
package trainer

import "embed"

// FS holds train.py, hpctl_trainer/*.py and weights.json, at the same relative paths as in the repository.
//
//go:embed train.py weights.json hpctl_trainer/*.py
var FS embed.FS
