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
	"reflect"
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

// missingFlagsError says which required flags a command was called without.
type missingFlagsError struct {
	command string   // "predict", "features merge"
	flags   []string // flag names as declared ("data", "C")
}

func (e missingFlagsError) Error() string {
	names := make([]string, len(e.flags))
	for i, f := range e.flags {
		names[i] = flagName(f)
	}
	verb := "is"
	if len(names) > 1 {
		verb = "are"
	}
	list := strings.Join(names, ", ")
	if n := len(names); n > 1 {
		list = strings.Join(names[:n-1], ", ") + " and " + names[n-1]
	}
	return fmt.Sprintf("%s: %s %s required (every flag: pipeline %s --help)", e.command, list, verb, e.command)
}

// flagName writes a flag's name as it is typed: --data, -C.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

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
			newTokenizeCommand(),
		},
		OnUsageError:   func(c *cli.Context, err error, isSubcommand bool) error { return usageError{err} },
		ExitErrHandler: func(c *cli.Context, err error) {},
		// Without a command: the help. With an unknown one: a usage error (cli's default
		// says "No help topic" and the exit code would be 1).
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				var names []string
				for _, cmd := range c.App.Commands {
					names = append(names, cmd.Name)
				}
				return usagef("unknown command %q; want one of %s (pipeline --help)", c.Args().First(), strings.Join(names, ", "))
			}
			return cli.ShowAppHelp(c)
		},
	}
	markUsageErrors(app.Commands, "")
	return app
}

// markUsageErrors makes flag parsing errors of every command usage errors (exit code 2),
// and checks its required flags itself: cli's own check prints the whole help before a
// message recognisable only by its text, where a missing flag should get one line, typed
// (missingFlagsError, a usageError).
func markUsageErrors(cmds []*cli.Command, parent string) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
		name := strings.TrimSpace(parent + " " + c.Name)
		var required []string
		for _, f := range c.Flags {
			if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
				required = append(required, f.Names()[0])
				unrequire(f)
			}
		}
		if len(required) > 0 {
			before := c.Before
			c.Before = func(ctx *cli.Context) error {
				var missing []string
				for _, n := range required {
					if !ctx.IsSet(n) {
						missing = append(missing, n)
					}
				}
				if len(missing) > 0 {
					return usageError{missingFlagsError{command: name, flags: missing}}
				}
				if before != nil {
					return before(ctx)
				}
				return nil
			}
		}
		markUsageErrors(c.Subcommands, name)
	}
}

// unrequire clears a flag's Required field (markUsageErrors checks it instead). Every
// cli flag type has the field; a flag without it is a programming error.
func unrequire(f cli.Flag) {
	v := reflect.ValueOf(f)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	field := v.FieldByName("Required")
	if !field.IsValid() || field.Kind() != reflect.Bool || !field.CanSet() {
		panic(fmt.Sprintf("pipeline: flag %s of type %T has no settable Required field", f.Names()[0], f))
	}
	field.SetBool(false)
}

func main() {
	oneMallocArena()
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
	case errors.As(err, &ue), errors.Is(err, headstart.ErrMaxLen):
		return exitUsage
	default:
		return exitError
	}
}
