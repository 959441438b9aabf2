// Package cli implements the datasette-token command: a standalone,
// fast-starting counterpart of Datasette's "datasette create-token" that also
// verifies and decodes Datasette signed API tokens (dstok_...) and prints the
// DatasetteToken manifest that mints a token in a cluster ([ManifestYAML]).
//
// Each subcommand follows kubectl's shape: an Options struct with Complete
// (parse the command line, click-style), Validate (checks beyond parsing)
// and Run (do the work), writing only to the injected IOStreams.
package cli

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
)

// ProgramName is the name usage lines and help show.
const ProgramName = "datasette-token"

// tokenMetavar names the TOKEN argument of verify and decode.
const tokenMetavar = "TOKEN"

// IOStreams are the process's outside world, injected so that commands are
// testable: output streams, environment, clock and randomness.
type IOStreams struct {
	// In is standard input, read for a TOKEN or --secret-file of "-" (nil:
	// reading it fails).
	In io.Reader
	// Out receives results (tokens, actors, help).
	Out io.Writer
	// ErrOut receives errors, warnings and notes.
	ErrOut io.Writer
	// ErrColor styles warnings with ANSI colour (click does so only when
	// stderr is a terminal).
	ErrColor bool
	// Getenv looks up an environment variable ("" when unset).
	Getenv func(string) string
	// Now is the current time.
	Now func() time.Time
	// Rand supplies random bytes (for the random secret that replaces an
	// empty one).
	Rand io.Reader
}

// SystemStreams returns IOStreams for the real process.
func SystemStreams() IOStreams {
	return IOStreams{
		In:       os.Stdin,
		Out:      os.Stdout,
		ErrOut:   os.Stderr,
		ErrColor: isTerminal(os.Stderr),
		Getenv:   os.Getenv,
		Now:      time.Now,
		Rand:     rand.Reader,
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// helpShown is returned by an eager --help or --version: the text goes to
// stdout and the command exits 0.
type helpShown struct{ text string }

// Error describes the pseudo-error.
func (h *helpShown) Error() string { return "help requested" }

// noArgsHelp is click's NoArgsIsHelpError: a group called with no arguments
// prints its help to stderr and exits 2.
type noArgsHelp struct{ text string }

// Error describes the pseudo-error.
func (h *noArgsHelp) Error() string { return "no arguments" }

// ExitError ends the command with Code after its message has been printed.
type ExitError struct{ Code int }

// Error returns "exit status N".
func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// helpOption is click's --help: eager, shows text on stdout.
func helpOption(text string) *Option {
	return &Option{Names: []string{"--help"}, Eager: true, Set: func([]string) error {
		return &helpShown{text: text}
	}}
}

// subcommand is what the root dispatches to.
type subcommand struct {
	name string
	run  func(args []string, s IOStreams) error
}

var subcommands = []subcommand{
	{"completion", func(args []string, s IOStreams) error { return runOptions(NewCompletionOptions(s), args) }},
	{"create-token", func(args []string, s IOStreams) error { return runOptions(NewCreateTokenOptions(s), args) }},
	{"decode", func(args []string, s IOStreams) error { return runOptions(NewDecodeOptions(s), args) }},
	{"manifest", func(args []string, s IOStreams) error { return runOptions(NewManifestOptions(s), args) }},
	{"verify", func(args []string, s IOStreams) error { return runOptions(NewVerifyOptions(s), args) }},
}

// options is the kubectl-style life cycle every subcommand implements.
type options interface {
	Complete(args []string) error
	Validate() error
	Run() error
}

func runOptions(o options, args []string) error {
	if err := o.Complete(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Run()
}

func rootCommand() *Command {
	return &Command{
		Path:           ProgramName,
		UsagePieces:    "COMMAND [ARGS]...",
		AllowExtraArgs: true,
		Params: []Param{
			&Option{Names: []string{"--version"}, Eager: true, Set: func([]string) error {
				return &helpShown{text: ProgramName + " " + version.String() + "\n"}
			}},
			helpOption(rootHelp),
		},
	}
}

// Main runs datasette-token with args (without the program name) and
// returns the process exit status: 0 success, 1 failure (including a token
// verify rejects), 2 command-line usage error.
func Main(args []string, s IOStreams) int {
	return report(dispatch(args, s), s)
}

func dispatch(args []string, s IOStreams) error {
	root := rootCommand()
	if len(args) == 0 {
		return &noArgsHelp{text: rootHelp}
	}
	rest, err := root.Parse(args, s.Getenv)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return &UsageError{Command: root, Message: "Missing command."}
	}
	name := rest[0]
	names := make([]string, len(subcommands))
	for i, sc := range subcommands {
		if sc.name == name {
			return sc.run(rest[1:], s)
		}
		names[i] = sc.name
	}
	// Like click: a word that looks like an option is parsed again, so its
	// own error shows.
	if cps, _ := pyCodePoints(name); len(cps) > 0 && !pyIsAlnum(cps[0]) {
		if _, err := root.Parse(rest, s.Getenv); err != nil {
			return err
		}
	}
	return &UsageError{Command: root, Message: fmt.Sprintf("No such command %s.%s",
		pyRepr(name), formatPossibilities(closeMatches(name, names)))}
}

func report(err error, s IOStreams) int {
	var (
		usage *UsageError
		help  *helpShown
		noArg *noArgsHelp
		exit  *ExitError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		if _, werr := io.WriteString(s.Out, help.text); werr != nil {
			return 1
		}
		return 0
	case errors.As(err, &noArg):
		_, _ = io.WriteString(s.ErrOut, noArg.text)
		return 2
	case errors.As(err, &usage):
		_, _ = io.WriteString(s.ErrOut, usage.Format())
		return 2
	case errors.As(err, &exit):
		return exit.Code
	default:
		_, _ = fmt.Fprintf(s.ErrOut, "Error: %s\n", strings.TrimSpace(err.Error()))
		return 1
	}
}
