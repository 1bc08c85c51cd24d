package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/weights"
)

func init() { register(70, weightsCommand) }

type weightsFetchOptions struct {
	spec   string
	mirror string
	json   bool
}

func weightsCommand(e *env) *cli.Command {
	mirror := &cli.StringFlag{Name: "mirror", Usage: "download from this base URL (a local mirror) instead of the published one"}
	return &cli.Command{
		Name:  "weights",
		Usage: "manage the backbone weights cache on the cluster",
		Subcommands: []*cli.Command{{
			Name:      "fetch",
			Usage:     "make sure the spec's backbone weights are in the cluster's weights cache",
			ArgsUsage: "SPEC",
			Description: `Compute nodes often have no internet, so the trainer reads the backbone's published
Keras ImageNet weights from model.weights_cache on the shared file system. This checks
the file there (one command, its checksum included); when it is missing or damaged,
downloads it here from the published Keras location, verifies the published MD5 (or
size), and places it in the cache through the same connection as submit, under a
temporary name renamed only once the cluster's copy checks out. A corrupt download is
refused and never reaches the cache. submit does the same before it submits.

Examples:
   hpctl weights fetch configs/urban.yaml
   hpctl weights fetch --host login.cluster.example configs/urban.yaml
   hpctl weights fetch --mirror https://mirror.example/keras configs/urban.yaml`,
			Flags: []cli.Flag{mirror, outputFlag()},
			Action: func(c *cli.Context) error {
				asJSON, err := checkOutput(c)
				if err != nil {
					return err
				}
				if c.NArg() != 1 {
					return usageError(errorf("weights fetch needs exactly one SPEC file"))
				}
				return runWeightsFetch(c.Context, e, weightsFetchOptions{spec: c.Args().First(), mirror: c.String("mirror"), json: asJSON})
			},
		}},
	}
}

func runWeightsFetch(ctx context.Context, e *env, o weightsFetchOptions) error {
	l, err := e.loadSpec(o.spec)
	if err != nil {
		return err
	}
	m := l.Spec.Model
	if !weights.Needed(l.Spec.Model.Weights) {
		if o.json {
			return writeJSON(e.stdout, weightsResult{Outcome: weights.Outcome{Backbone: m.Backbone}})
		}
		fmt.Fprintf(e.stdout, "%s: model.weights is %q, not imagenet: nothing to fetch\n", o.spec, m.Weights)
		return nil
	}
	t := e.newTransport(l.Spec.Cluster.Host)
	defer t.Close()
	bar := newProgress(e.stderr, m.Backbone+" weights", o.json)
	out, err := weights.Ensure(ctx, t, m.WeightsCache, m.Backbone, weights.Options{BaseURL: o.mirror, Progress: bar.update})
	bar.finish()
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, weightsResult{Outcome: out, Needed: true})
	}
	switch {
	case out.Present:
		fmt.Fprintf(e.stdout, "%s: %s is already in the cache (checksum verified on the cluster)\n", m.Backbone, out.Path)
	case out.Replaced:
		fmt.Fprintf(e.stdout, "%s: replaced a damaged %s with a verified download (%s from %s)\n", m.Backbone, out.Path, humanBytes(out.Bytes), out.URL)
	default:
		fmt.Fprintf(e.stdout, "%s: downloaded %s from %s, verified, placed at %s\n", m.Backbone, humanBytes(out.Bytes), out.URL, out.Path)
	}
	return nil
}

// weightsResult is weights fetch's JSON: one shape whether or not the spec needs weights.
type weightsResult struct {
	weights.Outcome
	// Needed is false when the spec's model.weights is not imagenet: nothing to fetch.
	Needed bool `json:"needed"`
}
