// Command hpctl turns one YAML experiment into a transfer-learning pipeline on a Slurm
// cluster: submit, status, logs, cancel and fetch-results.
package main

import "os"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}
