// Command pipeline extracts activations from a frozen ONNX backbone and trains heads on them.
//
// Exit codes: 0 success; 1 an error (bad input, missing file, failed check); 2 wrong usage
// (unknown flag or command, invalid flag value); 130 interrupted (Ctrl-C / SIGTERM; with
// --resume the work done so far is kept).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
)

// version is the tool version recorded in every artifact's manifest.
const version = "0.1.0"

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// usageError marks errors caused by how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func newApp() *cli.App {
	app := &cli.App{
		Name:    "pipeline",
		Usage:   "frozen-backbone feature extraction and heads (headstart)",
		Version: version,
		Description: "Exit codes: 0 success; 1 error (bad input, missing file, failed check); " +
			"2 wrong usage; 130 interrupted (rerun with --resume to continue).",
		Commands: []*cli.Command{
			newExtractCommand(),
			newModelsCommand(),
			newFeaturesCommand(),
			newFitHeadCommand(),
			newEvalCommand(),
			newPredictCommand(),
			newExportCommand(),
			newServeCommand(),
			newExperimentCommand(),
		},
		OnUsageError:   func(c *cli.Context, err error, isSubcommand bool) error { return usageError{err} },
		ExitErrHandler: func(c *cli.Context, err error) {},
	}
	markUsageErrors(app.Commands)
	return app
}

// markUsageErrors makes flag parsing errors of every command usage errors (exit code 2).
func markUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
		markUsageErrors(c.Subcommands)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newApp().RunContext(ctx, os.Args)
	os.Exit(exitCode(ctx, err))
}

func exitCode(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "pipeline:", err)
	var ue usageError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "Required flag"), errors.Is(err, headstart.ErrMaxLen):
		return exitUsage
	default:
		return exitError
	}
}
