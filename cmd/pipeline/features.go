package main

import (
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
					return runFeaturesMerge(c.String("out"), c.Args().Slice(), c.App.ErrWriter)
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
					return runFeaturesInfo(c.Args().First(), c.App.Writer)
				},
			},
		},
	}
}

func runFeaturesMerge(out string, shards []string, log io.Writer) error {
	if err := features.Merge(out, shards); err != nil {
		return err
	}
	fmt.Fprintf(log, "features merge: %d shards -> %s\n", len(shards), out)
	return nil
}

func runFeaturesInfo(path string, w io.Writer) error {
	s, err := features.OpenStore(path)
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
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(info)
}
