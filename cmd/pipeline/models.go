package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart/models"
)

func newModelsCommand() *cli.Command {
	return &cli.Command{
		Name:  "models",
		Usage: "list known models and fetch them into the cache",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list known models and whether each is in the cache",
				Action: func(c *cli.Context) error {
					return runModelsList(c.App.Writer)
				},
			},
			{
				Name:      "pull",
				Usage:     "fetch models into the cache, verifying checksums",
				ArgsUsage: "NAME [NAME ...]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Usage: "fetch again even if a verified copy is cached"},
					&cli.StringFlag{Name: "hf", Usage: "pull an arbitrary HuggingFace Hub repository `REPO@REVISION` (files onnx/model.onnx and tokenizer.json) under NAME"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usagef("models pull: name at least one model; known: %v", models.Names())
					}
					return runModelsPull(c.Context, modelsPullOptions{Names: c.Args().Slice(), Force: c.Bool("force"), HF: c.String("hf")}, c.App.ErrWriter)
				},
			},
		},
	}
}

func runModelsList(w io.Writer) error {
	ms, err := models.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDTYPE\tLAYERS\tHIDDEN\tPOOLING\tSOURCE\tCACHED")
	for _, m := range ms {
		cached := "no"
		if _, err := models.Resolve(m.Name); err == nil {
			cached = "yes"
		}
		src := m.Source.Coordinates
		if m.Source.Kind == "hf" {
			src = m.Source.Repo + "@" + m.Source.Revision
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", m.Name, m.Dtype, m.Layers, m.HiddenSize, m.Pooling, src, cached)
	}
	return tw.Flush()
}

type modelsPullOptions struct {
	Names []string
	Force bool
	HF    string // REPO@REVISION for an arbitrary hub model
}

func runModelsPull(ctx context.Context, opts modelsPullOptions, log io.Writer) error {
	if log == nil {
		log = os.Stderr
	}
	for _, name := range opts.Names {
		var m models.Manifest
		if opts.HF != "" {
			m = models.HubManifest(name, opts.HF)
		} else {
			var err error
			if m, err = models.Lookup(name); err != nil {
				return usageError{err}
			}
		}
		if _, err := models.Pull(ctx, m, models.Dir(name), models.PullOptions{Force: opts.Force, Log: log}); err != nil {
			return err
		}
	}
	return nil
}
