// Package templates holds the text templates hpctl renders, embedded in the binary so a
// release needs no files beside it. render parses them with template.ParseFS.
package templates

import "embed"

// FS holds every *.tmpl file of this directory.
//
//go:embed *.tmpl
var FS embed.FS
