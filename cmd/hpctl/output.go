package main

import (
	"encoding/json"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"golang.org/x/term"
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

// termSize is the size of the terminal w is, in columns and lines; 0, 0 when w is no
// terminal (a pipe or file gets full lines, as gh prints them).
func termSize(w io.Writer) (width, height int) {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(w) {
		return 0, 0
	}
	width, height, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 || height <= 0 {
		return 0, 0
	}
	return width, height
}
