package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
)

func newExportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write one ONNX graph: token ids -> backbone -> pooling -> head -> probabilities",
		Description: "The graph takes input_ids, attention_mask and, where the model reads them, token_type_ids\n" +
			"(int64 [batch, seq], tokenized\n" +
			"with the model's tokenizer.json, truncated at the head's max_len, recorded in the metadata) and\n" +
			"outputs probabilities [batch, classes] and logits. Labels are in the metadata under \"labels\".\n" +
			"Beside OUT.onnx it writes OUT.tokenizer.json (the backbone's tokenizer) and OUT.manifest.json\n" +
			"(max_len, pooling, layers, normalize, prefix, labels, backbone), all a caller needs to use it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "registry `NAME` or DIR the head was trained on (default: the backbone the head records, found by name or by its directory, with its sha256)"},
			&cli.StringFlag{Name: "head", Required: true, Usage: "head `FILE` from fit-head"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "`FILE.onnx` to write"},
		},
		Action: func(c *cli.Context) error {
			return runExport(c.Context, headstart.ExportOptions{Model: c.String("model"), Head: c.String("head"), Out: c.String("out")}, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func runExport(ctx context.Context, o headstart.ExportOptions, _, stderr io.Writer) error {
	sum, err := headstart.Export(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "export: %s + %s head (%d classes) -> %s (%.1f MB; inputs %s; outputs probabilities, logits; max_len %d), with %s and %s beside it\n",
		sum.Backbone, sum.Kind, sum.Classes, o.Out, float64(sum.Bytes)/1e6, strings.Join(sum.Inputs, ", "), sum.MaxLen, filepath.Base(sum.Tokenizer), filepath.Base(sum.Manifest))
	return nil
}
