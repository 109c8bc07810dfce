package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/serve"
)

type serveOptions struct {
	Model, Addr, Provider, RuntimeLib, Layers string
	Heads                                     []string
	Sessions, Threads, MaxBatch               int
	GoProcs                                   int // GOMAXPROCS; 0: the GOMAXPROCS variable, else cores + sessions
	MaxTexts, MaxTextBytes                    int
	MaxBody                                   int64
	MaxWait, ShutdownTimeout                  time.Duration
	SplitCost, PackLen                        int
	NoBatching, AllowEmpty                    bool
	Spec                                      specFlags
	Threshold                                 float64 // multi-label heads: answer the labels with p >= Threshold
	ThresholdSet                              bool

	// ready, when set, is told the address the server listens on (tests).
	ready func(addr string)
}

func newServeCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "answer embed and classify requests over HTTP (JSON), merging concurrent requests into shared forwards",
		Description: "Endpoints: POST /v1/embed and POST /v1/classify with {\"texts\": [...]}, GET /healthz,\n" +
			"GET /metrics (Prometheus). Binds to 127.0.0.1 unless --addr names another host.\n" +
			"A multi-label head answers its label set in \"labels\" (probability >= --threshold) besides \"label\" and \"probs\".\n" +
			"SIGINT/SIGTERM stop accepting, let requests in flight finish (--shutdown-timeout) and exit 0.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "registry `NAME` or DIR (default: the backbone the heads record, found by name or by the directory they were trained from, with its sha256; without heads all-minilm-l6-v2)"},
			&cli.StringSliceFlag{Name: "head", Usage: "head `FILE` for /v1/classify; repeat for several heads (one backbone forward feeds them all)"},
			&cli.Float64Flag{Name: "threshold", Value: 0.5, Usage: "multi-label heads: answer in \"labels\" every label whose probability is at least `P`, in (0, 1)"},
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "`HOST:PORT` to listen on (port 0: any free port)"},
			&cli.IntFlag{Name: "sessions", Value: 1, Usage: "forwards run at once (all on one copy of the weights)"},
			&cli.IntFlag{Name: "threads", Usage: "onnxruntime intra-op threads per forward (0 = one per core, divided among sessions)"},
			&cli.StringFlag{Name: "provider", Value: "cpu", Usage: "cpu | cuda[:DEVICE] | auto"},
			&cli.StringFlag{Name: "ort-lib", EnvVars: []string{"HEADSTART_ORT_LIB"}, Usage: "onnxruntime shared library"},
			&cli.IntFlag{Name: "max-len", Usage: "truncate texts to this many tokens (default: the heads' max_len, else the model card's)"},
			&cli.StringFlag{Name: "pooling", Usage: "/v1/embed pooling: mean | cls | max | last (default: the model card's)"},
			&cli.StringFlag{Name: "prefix", Usage: "text prefix: a `ROLE` the model card names (e5: query, passage) or none (default: the heads', else the card's choice)"},
			&cli.StringFlag{Name: "layers", Value: "-1", Usage: "/v1/embed hidden states, comma-separated and concatenated"},
			&cli.BoolFlag{Name: "normalize", Usage: "/v1/embed: L2-normalise each vector (default: the model card's)"},
			&cli.IntFlag{Name: "max-batch", Value: 32, Usage: "most texts per backbone forward"},
			&cli.DurationFlag{Name: "max-wait", Value: 5 * time.Millisecond, Usage: "how long a forward with room waits for requests on their way"},
			&cli.IntFlag{Name: "split-cost", Value: 16, Usage: "fixed cost of a forward in token positions: without packing, the texts a session takes at once run in the forwards that minimise it plus the positions computed (padding included); -1: one forward"},
			&cli.IntFlag{Name: "pack-len", Value: 32, Usage: "sequence packing: the texts of at most `N` tokens a session takes at once share rows of N tokens in one forward, each attending only to itself (no padding, one fixed cost); 0: off"},
			&cli.BoolFlag{Name: "no-batching", Usage: "run each request in forwards of its own (no micro-batching)"},
			&cli.Int64Flag{Name: "max-body", Value: 1 << 20, Usage: "largest request body in bytes"},
			&cli.IntFlag{Name: "max-texts", Value: 256, Usage: "most texts per request"},
			&cli.IntFlag{Name: "max-text-bytes", Value: 16 << 10, Usage: "longest text in bytes (longer than --max-len tokens is truncated and reported)"},
			&cli.BoolFlag{Name: "allow-empty", Usage: "accept empty texts (as [CLS] [SEP])"},
			&cli.IntFlag{Name: "go-procs", Usage: "Go scheduler threads (GOMAXPROCS); 0: the GOMAXPROCS variable if set, else cores + sessions, so that HTTP work never queues behind forwards"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, Usage: "how long to wait for requests in flight on SIGINT/SIGTERM"},
		},
		Action: func(c *cli.Context) error {
			return runServe(c.Context, serveOptions{
				Model: c.String("model"), Heads: c.StringSlice("head"), Addr: c.String("addr"),
				Sessions: c.Int("sessions"), Threads: c.Int("threads"), Provider: c.String("provider"),
				RuntimeLib: c.String("ort-lib"), Spec: readSpecFlags(c),
				Layers: c.String("layers"), MaxBatch: c.Int("max-batch"),
				MaxWait: c.Duration("max-wait"), SplitCost: c.Int("split-cost"), PackLen: c.Int("pack-len"), NoBatching: c.Bool("no-batching"), MaxBody: c.Int64("max-body"),
				MaxTexts: c.Int("max-texts"), MaxTextBytes: c.Int("max-text-bytes"), AllowEmpty: c.Bool("allow-empty"),
				ShutdownTimeout: c.Duration("shutdown-timeout"), GoProcs: c.Int("go-procs"),
				Threshold: c.Float64("threshold"), ThresholdSet: c.IsSet("threshold"),
			}, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// check refuses flag values out of range, before anything loads.
func (o *serveOptions) check() error {
	switch {
	case o.Sessions < 1:
		return usagef("--sessions %d: want at least 1", o.Sessions)
	case o.Threads < 0:
		return usagef("--threads %d: want 0 (one per core) or more", o.Threads)
	case o.MaxBatch < 1:
		return usagef("--max-batch %d: want at least 1", o.MaxBatch)
	case o.MaxWait < 0:
		return usagef("--max-wait %v: want 0 or more", o.MaxWait)
	case o.MaxBody < 1 || o.MaxTexts < 1 || o.MaxTextBytes < 1:
		return usagef("--max-body %d, --max-texts %d, --max-text-bytes %d: want each at least 1", o.MaxBody, o.MaxTexts, o.MaxTextBytes)
	case o.Spec.MaxLen != nil && *o.Spec.MaxLen < 2:
		return usagef("--max-len %d: want at least 2 ([CLS] and [SEP])", *o.Spec.MaxLen)
	case (o.ThresholdSet || o.Threshold != 0) && !(o.Threshold > 0 && o.Threshold < 1):
		return usagef("--threshold %g: want a probability in (0, 1)", o.Threshold)
	case o.PackLen < 0:
		return usagef("--pack-len %d: want 0 (off) or more", o.PackLen)
	case o.GoProcs < 0:
		return usagef("--go-procs %d: want 0 (automatic) or more", o.GoProcs)
	}
	return nil
}

func runServe(ctx context.Context, o serveOptions, _, stderr io.Writer) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	if procs := serveProcs(o.GoProcs, o.Sessions, os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); procs > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return usagef("--addr %q: %v; want HOST:PORT such as 127.0.0.1:8080", o.Addr, err)
	}
	metrics := serve.NewMetrics()
	m, err := o.open(ctx, metrics)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Close()) }()
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintf(stderr, "serve: warning: listening on %s, reachable from other machines; the API has no authentication\n", addr)
	}
	o.logListening(m, addr, stderr)
	if o.ready != nil {
		o.ready(addr)
	}
	srv := serve.New(m, serve.Options{
		Limits:          serve.Limits{MaxBodyBytes: o.MaxBody, MaxTexts: o.MaxTexts, MaxTextBytes: o.MaxTextBytes, AllowEmpty: o.AllowEmpty},
		Metrics:         metrics,
		ShutdownTimeout: o.ShutdownTimeout,
		ErrorLog:        log.New(stderr, "serve: ", log.LstdFlags),
	})
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "serve: stopped")
	return nil
}

// open parses the flags the library takes typed and opens the model: the backbone and
// the spec come from the heads or the model card, with the flags over them
// (headstart.SpecOverride.OpenSpec).
func (o *serveOptions) open(ctx context.Context, metrics *serve.Metrics) (_ *headstart.Model, err error) {
	provider, err := onnx.ParseProvider(o.Provider)
	if err != nil {
		return nil, usageError{err}
	}
	if _, err := features.ParsePooling(o.Spec.Pooling); err != nil {
		return nil, usageError{err}
	}
	layers, err := parseLayers(o.Layers)
	if err != nil {
		return nil, err
	}
	spec, err := o.Spec.OpenSpec(o.Model, o.Heads, layers)
	if errors.Is(err, headstart.ErrBadOption) {
		return nil, usageError{err}
	} else if err != nil {
		return nil, err
	}
	m, err := headstart.Open(ctx, headstart.OpenOptions{
		Model: o.Model, Heads: o.Heads, Sessions: o.Sessions, Threads: o.Threads, Provider: provider,
		RuntimeLib: o.RuntimeLib, Spec: spec, Exact: true,
		AllowEmpty: o.AllowEmpty, MaxBatch: o.MaxBatch, Batching: !o.NoBatching, MaxWait: o.MaxWait, SplitCost: o.SplitCost, PackLen: o.PackLen,
		Threshold: o.Threshold, OnBatch: metrics.ObserveBatch,
	})
	if err != nil {
		return nil, err
	}
	if o.ThresholdSet && !multiLabel(m.Heads()) {
		return nil, errors.Join(usagef("--threshold applies to multi-label heads (fit on a store extracted with --label-sep); none of the heads given is"), m.Close())
	}
	return m, nil
}

// multiLabel reports whether any of heads is multi-label.
func multiLabel(heads []*head.Head) bool {
	for _, h := range heads {
		if h.MultiLabel {
			return true
		}
	}
	return false
}

// logListening writes the line that says the server is up and how it batches.
func (o *serveOptions) logListening(m *headstart.Model, addr string, stderr io.Writer) {
	batching := fmt.Sprintf("micro-batching up to %d texts, max wait %v", o.MaxBatch, o.MaxWait)
	if o.NoBatching {
		batching = "no micro-batching"
	}
	if packing, why := m.Packing(); packing {
		batching += fmt.Sprintf(", packing texts of up to %d tokens", o.PackLen)
	} else if why != nil {
		fmt.Fprintf(stderr, "serve: warning: --pack-len %d ignored: %v\n", o.PackLen, why)
	}
	heads := count(len(m.HeadNames()), "head", "heads")
	if multiLabel(m.Heads()) {
		heads += fmt.Sprintf(", label sets at p >= %g", m.Threshold())
	}
	fmt.Fprintf(stderr, "serve: listening on http://%s (model %s, %s, %s on %s, %s, GOMAXPROCS %d)\n",
		addr, m.Backbone().Name, heads, count(m.Sessions(), "session", "sessions"), m.Provider(), batching, runtime.GOMAXPROCS(0))
}

// serveProcs is the GOMAXPROCS pipeline serve runs with, or 0 to leave it as it is.
// A session's goroutine keeps its scheduler P while onnxruntime computes a forward (a
// cgo call) until the runtime's monitor takes it back, which under load can be
// milliseconds later; with as many Ps as cores, requests that are ready to be decoded,
// queued or answered wait for the forwards to end, batches stay small and the latency
// tail grows (BENCHMARKS.md, serving design choices). One P per session on top of the
// default avoids that. An explicit --go-procs wins, then the GOMAXPROCS environment
// variable.
func serveProcs(flag, sessions int, env string, current int) int {
	if flag > 0 {
		return flag
	}
	if _, err := strconv.Atoi(env); err == nil {
		return 0 // the user's GOMAXPROCS, already applied by the runtime
	}
	return current + sessions
}
