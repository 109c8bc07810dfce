package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/tokenize"
)

type tokenizeOptions struct {
	Model, Data, Out, TextCol string
	MaxLen, Limit             int
}

func newTokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokenize",
		Usage: "show what the model sees: ids, tokens, offsets and truncation of each text, as JSON lines",
		Description: "Each output line is one row: {\"row\": N, \"ids\": [...], \"type_ids\": [...], \"tokens\": [...],\n" +
			"\"offsets\": [[start, end], ...], \"num_tokens\": N, \"truncated\": BOOL}. Offsets count characters\n" +
			"(code points) of the row's text, as Python tokenizers reports them; special tokens have [0, 0].\n" +
			"num_tokens is the length before truncation, special tokens included.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: models.Default, Usage: "registry `NAME`, DIR holding tokenizer.json, or a tokenizer.json file"},
			&cli.StringFlag{Name: "data", Required: true, Usage: "texts: `FILE` (.csv, .tsv, .jsonl) or - for CSV on stdin"},
			&cli.StringFlag{Name: "text-col", Value: "text", Usage: "column (or JSON key) holding the text"},
			&cli.IntFlag{Name: "max-len", Usage: "truncate to `N` tokens, special tokens included (default: tokenizer.json's truncation, else 512)"},
			&cli.StringFlag{Name: "out", Value: "-", Usage: "`FILE`.jsonl or - for stdout"},
			&cli.IntFlag{Name: "limit", Usage: "read at most N rows (0 = all)"},
		},
		Action: func(c *cli.Context) error {
			return runTokenize(c.Context, tokenizeOptions{
				Model: c.String("model"), Data: c.String("data"), Out: c.String("out"), TextCol: c.String("text-col"),
				MaxLen: c.Int("max-len"), Limit: c.Int("limit"),
			}, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// tokenizeRecord is one output line.
type tokenizeRecord struct {
	Row       int64    `json:"row"`
	IDs       []int64  `json:"ids"`
	TypeIDs   []int64  `json:"type_ids"`
	Tokens    []string `json:"tokens"`
	Offsets   [][2]int `json:"offsets"`
	NumTokens int      `json:"num_tokens"`
	Truncated bool     `json:"truncated"`
}

func runTokenize(ctx context.Context, o tokenizeOptions, stdout, stderr io.Writer) (err error) {
	if o.MaxLen < 0 {
		return usagef("--max-len %d: want 0 (the tokenizer's own) or more", o.MaxLen)
	}
	if o.Limit < 0 {
		return usagef("--limit %d: want 0 (all) or more", o.Limit)
	}
	if o.Out != "-" && !strings.HasSuffix(o.Out, ".jsonl") && !strings.HasSuffix(o.Out, ".ndjson") {
		return usagef("--out %s: tokenize writes JSON lines; want a .jsonl file or -", o.Out)
	}
	var lock *fileio.Locked // nil (nothing to release) when writing to stdout
	if o.Out != "-" {
		if lock, err = fileio.Claim(o.Out, o.Data); err != nil {
			return err
		}
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	path, err := models.ResolveTokenizer(o.Model)
	if err != nil {
		return err
	}
	if o.Out != "-" {
		if err := fileio.CheckOutput(o.Out, path); err != nil {
			return err
		}
	}
	tok, err := tokenize.Load(path, tokenize.Options{MaxLen: o.MaxLen})
	if err != nil {
		return err
	}
	r, err := features.OpenContext(ctx, o.Data, features.ReaderOptions{TextCol: o.TextCol, Limit: o.Limit})
	if err != nil {
		return err
	}
	defer r.Close()

	// Output: stdout, or a temporary file renamed into place when everything succeeded.
	bw, err := openStream(o.Out, stdout)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, bw.abort())
		}
	}()
	start := time.Now()
	n, err := writeTokenized(ctx, bw, r, tok, o.Data)
	if err != nil {
		return err
	}
	if err := bw.commit(); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stderr, "tokenize: %d rows, %d tokens, %d truncated at %d, %.0f rows/s (%s)\n",
		n.rows, n.tokens, n.truncated, tok.MaxLen(), float64(n.rows)/max(el.Seconds(), 1e-9), filepath.Base(path))
	return nil
}

// tokenizeCounts are what tokenize reports at the end.
type tokenizeCounts struct{ rows, tokens, truncated int }

// writeTokenized writes a JSON line per row of r (data names it in errors).
func writeTokenized(ctx context.Context, w io.Writer, r *features.Reader, tok *tokenize.Tokenizer, data string) (n tokenizeCounts, err error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var charOf []int // code point index of each byte of the text
	for r.Next() {
		if n.rows%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
		}
		row := r.Row()
		e, d, err := tok.EncodeDetailed(row.Text)
		if err != nil {
			return n, fmt.Errorf("%s: row %d: %w", data, row.Index, err)
		}
		// Byte offsets to code point offsets.
		charOf = charOf[:0]
		for i, c := range []rune(row.Text) {
			for range utf8.RuneLen(c) {
				charOf = append(charOf, i)
			}
		}
		for i := range d.Offsets {
			if d.Sequence[i] >= 0 {
				d.Offsets[i] = charOffsets(charOf, d.Offsets[i])
			}
		}
		rec := tokenizeRecord{Row: row.Index, IDs: e.IDs, TypeIDs: e.TypeIDs, Tokens: d.Tokens, Offsets: d.Offsets,
			NumTokens: e.NumTokens, Truncated: e.Truncated}
		if err := enc.Encode(rec); err != nil {
			return n, err
		}
		n.rows++
		n.tokens += len(e.IDs)
		if e.Truncated {
			n.truncated++
		}
	}
	return n, r.Err()
}

// charOffsets converts a byte span to code points as tokenizers does
// (BytesToCharOffsetConverter): the start is the code point holding its byte,
// the end one past the code point holding the byte before it.
func charOffsets(charOf []int, sp [2]int) [2]int {
	conv := func(b int, end bool) int {
		switch {
		case end && b == 0:
			return 0
		case end:
			b--
		}
		if b >= len(charOf) {
			if len(charOf) == 0 {
				return 0
			}
			return charOf[len(charOf)-1] + 1
		}
		if end {
			return charOf[b] + 1
		}
		return charOf[b]
	}
	return [2]int{conv(sp[0], false), conv(sp[1], true)}
}
