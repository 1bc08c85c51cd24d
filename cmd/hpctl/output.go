package main

import (
	"encoding/json"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// writeJSON is every command's -o json: indented, one document, newline-terminated.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal (not a pipe, file or test buffer): only
// there do commands redraw in place or draw progress bars.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
