// Package templates embeds the text templates hpctl renders: the sbatch stage script and
// the starter spec written by `hpctl init`.
package templates

import "embed"

// FS holds every *.tmpl file of this folder.
//
//go:embed *.tmpl
var FS embed.FS
