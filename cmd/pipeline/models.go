package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	headstart "github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
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
					return runModelsList(c.Context, modelsListOptions{}, c.App.Writer, c.App.ErrWriter)
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
					return runModelsPull(c.Context, modelsPullOptions{Names: c.Args().Slice(), Force: c.Bool("force"), HF: c.String("hf")}, c.App.Writer, c.App.ErrWriter)
				},
			},
			newModelsQuantizeCommand(),
		},
	}
}

func runModelsQuantize(_ context.Context, o headstart.QuantizeOptions, _, stderr io.Writer) error {
	r, err := headstart.QuantizeModel(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "models quantize: %d products quantised, %d left in float32; weights %.1f MB -> %.1f MB; %s (%.1f MB, was %.1f MB)\n",
		r.Summary.Quantized, len(r.Summary.Skipped), float64(r.Summary.FloatBytes)/1e6, float64(r.Summary.Int8Bytes)/1e6,
		r.Paths.Model, float64(r.Bytes)/1e6, float64(r.SourceBytes)/1e6)
	for _, s := range r.Summary.Skipped {
		fmt.Fprintf(stderr, "  skipped %s\n", s)
	}
	return nil
}

// modelsListOptions are models list's (none: it lists every registry model).
type modelsListOptions struct{}

func runModelsList(_ context.Context, _ modelsListOptions, stdout, _ io.Writer) error {
	ms, err := models.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDTYPE\tLAYERS\tHIDDEN\tPOOLING\tNORM\tMAX_LEN\tPREFIX\tSOURCE\tCACHED")
	for _, m := range ms {
		cached := "no"
		if _, err := models.Resolve(m.Name); err == nil {
			cached = "yes"
		}
		src := m.Source.Coordinates
		if m.Source.Kind == "hf" {
			src = m.Source.Repo + "@" + m.Source.Revision
		}
		// The default prefix role (its text quoted), then the other roles the card names.
		prefix := "-"
		if m.Prefix != "" {
			prefix = fmt.Sprintf("%s %q", m.Prefix, m.Prefixes[m.Prefix])
		}
		for _, r := range slices.Sorted(maps.Keys(m.Prefixes)) {
			if r != m.Prefix {
				prefix += " (" + r + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%t\t%d\t%s\t%s\t%s\n", m.Name, m.Dtype, m.Layers, m.HiddenSize, m.Pooling, m.Normalize, m.MaxLen, prefix, src, cached)
	}
	return tw.Flush()
}

type modelsPullOptions struct {
	Names []string
	Force bool
	HF    string // REPO@REVISION for an arbitrary hub model
}

func runModelsPull(ctx context.Context, opts modelsPullOptions, _, stderr io.Writer) error {
	log := stderr
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

// newModelsQuantizeCommand is `models quantize`.
func newModelsQuantizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "quantize",
		Usage:     "write an int8 copy of an fp32 encoder (dynamic quantisation of MatMul/Gemm weights) as a model directory",
		ArgsUsage: "NAME|DIR",
		Description: "Rewrites every MatMul and Gemm with a constant weight as onnxruntime.quantization.quantize_dynamic\n" +
			"does: the weight in int8 (symmetric, one scale per output column unless --per-tensor), the\n" +
			"activations quantised to uint8 at run time (DynamicQuantizeLinear, MatMulInteger). --out gets\n" +
			"model.onnx, the source's tokenizer.json and a manifest.json (dtype int8, sha256 of the files);\n" +
			"use it wherever a model is named: --model DIR.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "new model `DIR` (must not exist or be empty)"},
			&cli.StringFlag{Name: "name", Usage: "model name in the manifest (default: the base name of --out)"},
			&cli.BoolFlag{Name: "per-tensor", Usage: "one scale per weight matrix instead of one per output column"},
		},
		Action: func(c *cli.Context) error {
			o, err := quantizeArgs(c)
			if err != nil {
				return err
			}
			return runModelsQuantize(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// quantizeArgs reads models quantize's flags and its model. The flags may also follow
// the model (NAME --out DIR), where the flag parser stops.
func quantizeArgs(c *cli.Context) (headstart.QuantizeOptions, error) {
	o := headstart.QuantizeOptions{Out: c.String("out"), Name: c.String("name"), Quantize: onnx.QuantizeSettings{PerTensor: c.Bool("per-tensor")}}
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--out" || a == "-out" || a == "--name" || a == "-name":
			if i+1 == len(args) {
				return o, usagef("models quantize: %s needs a value", a)
			}
			if a[len(a)-3:] == "out" {
				o.Out = args[i+1]
			} else {
				o.Name = args[i+1]
			}
			i++
		case strings.HasPrefix(a, "--out="):
			o.Out = strings.TrimPrefix(a, "--out=")
		case strings.HasPrefix(a, "--name="):
			o.Name = strings.TrimPrefix(a, "--name=")
		case a == "--per-tensor":
			o.Quantize.PerTensor = true
		case strings.HasPrefix(a, "-"):
			return o, usagef("models quantize: flag %s unknown; want --out, --name, --per-tensor", a)
		case o.Model == "":
			o.Model = a
		default:
			return o, usagef("models quantize: one model, got %q and %q", o.Model, a)
		}
	}
	if o.Model == "" {
		return o, usagef("models quantize: name one model (registry NAME or DIR); known: %v", models.Names())
	}
	if o.Out == "" {
		return o, usagef("models quantize: --out DIR is required")
	}
	return o, nil
}
