package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart/features"
)

func newFeaturesCommand() *cli.Command {
	return &cli.Command{
		Name:  "features",
		Usage: "inspect and merge feature stores",
		Subcommands: []*cli.Command{
			{
				Name:      "merge",
				Usage:     "join the shard stores of a sharded extract into the store a single run would write",
				ArgsUsage: "SHARD.safetensors ...",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "out", Required: true, Usage: "merged `FILE.safetensors`"}},
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usagef("features merge: name the shard files")
					}
					return runFeaturesMerge(c.Context, featuresMergeOptions{Out: c.String("out"), Shards: c.Args().Slice()}, c.App.Writer, c.App.ErrWriter)
				},
			},
			{
				Name:      "info",
				Usage:     "print a store's size, checksum and manifest as JSON",
				ArgsUsage: "FILE.safetensors",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("features info: name one store")
					}
					return runFeaturesInfo(c.Context, featuresInfoOptions{Store: c.Args().First()}, c.App.Writer, c.App.ErrWriter)
				},
			},
		},
	}
}

// featuresMergeOptions are features merge's: the merged store and its shards.
type featuresMergeOptions struct {
	Out    string
	Shards []string
}

func runFeaturesMerge(_ context.Context, o featuresMergeOptions, _, stderr io.Writer) error {
	if err := features.Merge(o.Out, o.Shards); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "features merge: %d shards -> %s\n", len(o.Shards), o.Out)
	return nil
}

// featuresInfoOptions are features info's: the store to describe.
type featuresInfoOptions struct{ Store string }

func runFeaturesInfo(_ context.Context, o featuresInfoOptions, stdout, _ io.Writer) error {
	s, err := features.OpenStore(o.Store)
	if err != nil {
		return err
	}
	info := map[string]any{"rows": s.N, "dim": s.D, "manifest": s.Manifest, "sha256": s.SHA256}
	if s.SHA256 == "" {
		info["sha256"] = "none: written before stores had a checksum, so not verified (extract it again to get one)"
	}
	if s.Manifest.MultiLabel {
		// Multi-label: how many rows carry each label, and how many carry none.
		k := len(s.Manifest.LabelNames)
		counts := make(map[string]int, k)
		unlabelled := 0
		for i := range s.N {
			n := 0
			for c, v := range s.LabelSet(i) {
				if v == 1 {
					counts[s.Manifest.LabelNames[c]]++
					n++
				}
			}
			if n == 0 {
				unlabelled++
			}
		}
		info["label_sets"] = map[string]any{"shape": []int{s.N, k}, "unlabelled_rows": unlabelled, "label_counts": counts}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(info)
}
