package cli

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// A small command-line parser that behaves like Python's click 8.4 (the
// library Datasette's CLI is built on), so datasette-token create-token
// accepts, rejects and reports exactly what datasette create-token does.
//
// Parsing has click's two phases:
//
//  1. Splitting (click's _OptionParser): options are recognised anywhere
//     before "--" (or only before the first positional word when
//     Interspersed is false). "--name=value" and "-nVALUE" attach a value; an
//     option taking N values consumes the next N words whatever they look
//     like; short flags combine ("-xy"); long options must be spelled in full
//     (no prefix matching), and an unknown "--name" gets click's difflib
//     suggestions. Leftover words fill the arguments in order.
//  2. Processing (click's Command.parse_args): eager options first, then the
//     parameters in the order they were first typed, then the untyped ones in
//     declaration order. Each is converted by its Set callback (for a repeated
//     non-Multiple option only the last occurrence counts), falling back to its
//     environment variable (if set and non-empty); a Required one that is
//     still missing is an error. Extra words are reported last.
//
// Errors are *UsageError values carrying click's exact message.

// Param is an *Option or an *Argument of a Command.
type Param interface {
	errorHint() string
}

// Option is a click option.
type Option struct {
	// Names are the spellings, e.g. "-e", "--expires-after"; they must start
	// with "-" (click's other prefixes, such as "+", are not supported). A
	// name with a one-character prefix and one character after it is short.
	Names []string
	// Nargs is how many values each occurrence takes; 0 makes a flag.
	Nargs int
	// Multiple keeps every occurrence instead of only the last one.
	Multiple bool
	// Required makes a missing option an error ("Missing option ...").
	Required bool
	// EnvVar, if set, supplies the value when the option is not given and the
	// variable is non-empty.
	EnvVar string
	// ShowEnvVar is click's show_envvar: error messages name the option
	// "'--secret' (env var: 'DATASETTE_SECRET')" (and help shows the
	// variable, which the help texts spell out).
	ShowEnvVar bool
	// FromEnv, if not nil, is set when the value came from EnvVar rather than
	// the command line, before Set is called (click's
	// ctx.get_parameter_source).
	FromEnv *bool
	// Waived, if not nil, is asked when a Required option is missing: true
	// lets it be missing (the callback of an option that an alternative
	// option can replace).
	Waived func() bool
	// MissingDetail is appended to the missing-option message.
	MissingDetail string
	// Eager options (--help, --version) are processed before all others.
	Eager bool
	// Set receives the values of one occurrence (nil for a flag). An error
	// made by invalidValue is reported as "Invalid value for ...: msg"; any
	// other error is returned from Parse unchanged.
	Set func(values []string) error
}

func (o *Option) errorHint() string {
	hints := make([]string, len(o.Names))
	for i, n := range o.Names {
		hints[i] = "'" + n + "'"
	}
	hint := strings.Join(hints, " / ")
	if o.ShowEnvVar && o.EnvVar != "" {
		hint += " (env var: '" + o.EnvVar + "')"
	}
	return hint
}

// Argument is a click positional argument taking one value.
type Argument struct {
	// Metavar is how usage and errors name it, e.g. "ID".
	Metavar string
	// Required makes a missing argument an error ("Missing argument ...").
	Required bool
	// MissingDetail is appended to the missing-argument message (click's
	// Choice lists its choices there).
	MissingDetail string
	// Set receives the value; errors are treated as for Option.Set.
	Set func(value string) error
}

func (a *Argument) errorHint() string { return "'" + a.Metavar + "'" }

// Command describes what a click command accepts.
type Command struct {
	// Path is the command as usage shows it, e.g. "datasette-token create-token".
	Path string
	// UsagePieces follows "[OPTIONS]" in the usage line, e.g. "ID".
	UsagePieces string
	// Params in declaration order (click's order for missing-value errors).
	Params []Param
	// Interspersed lets options follow positional words (true for commands;
	// false for groups, which stop at the subcommand name).
	Interspersed bool
	// AllowExtraArgs returns leftover words instead of failing (groups).
	AllowExtraArgs bool
}

// Usage returns click's usage line.
func (c *Command) Usage() string {
	u := "Usage: " + c.Path + " [OPTIONS]"
	if c.UsagePieces != "" {
		u += " " + c.UsagePieces
	}
	return u
}

// UsageError is a click usage error: exit status 2, and on stderr
//
//	Usage: <command> [OPTIONS] ...
//	Try '<command> --help' for help.
//
//	Error: <Message>
//
// where the first three lines are left out when Command is nil (click raises
// some parser errors without a context).
type UsageError struct {
	Command *Command
	Message string
}

// Error returns the message without "Error: ".
func (e *UsageError) Error() string { return e.Message }

// Format returns the text click prints to stderr, ending in a newline.
func (e *UsageError) Format() string {
	if e.Command == nil {
		return "Error: " + e.Message + "\n"
	}
	return fmt.Sprintf("%s\nTry '%s --help' for help.\n\nError: %s\n",
		e.Command.Usage(), e.Command.Path, e.Message)
}

// invalidValueError is the message of a click BadParameter raised by a type.
type invalidValueError struct{ msg string }

// Error returns the type's message.
func (e *invalidValueError) Error() string { return e.msg }

// invalidValue returns an error that Parse reports as
// "Invalid value for <param>: <msg>".
func invalidValue(format string, args ...any) error {
	return &invalidValueError{msg: fmt.Sprintf(format, args...)}
}

// parseState is click's _ParsingState.
type parseState struct {
	opts  map[*Option][][]string
	largs []string
	rargs []string
	order []Param
}

// Parse parses args for c and applies the values through the parameters'
// Set callbacks. It returns the leftover words (only when AllowExtraArgs).
// getenv looks up environment variables (may be nil).
func (c *Command) Parse(args []string, getenv func(string) string) ([]string, error) {
	st := &parseState{opts: map[*Option][][]string{}, rargs: append([]string(nil), args...)}
	if err := c.splitOptions(st); err != nil {
		return nil, err
	}
	argValues := map[*Argument]*string{}
	rest := append(st.largs, st.rargs...)
	for _, p := range c.Params {
		a, ok := p.(*Argument)
		if !ok {
			continue
		}
		if len(rest) > 0 {
			v := rest[0]
			rest = rest[1:]
			argValues[a] = &v
		}
		st.order = append(st.order, a)
	}
	for _, p := range c.processingOrder(st.order) {
		var err error
		switch p := p.(type) {
		case *Option:
			err = c.processOption(p, st.opts[p], getenv)
		case *Argument:
			err = c.processArgument(p, argValues[p])
		}
		if err != nil {
			return nil, err
		}
	}
	if len(rest) > 0 && !c.AllowExtraArgs {
		noun := "argument"
		if len(rest) > 1 {
			noun = "arguments"
		}
		return nil, &UsageError{Command: c, Message: fmt.Sprintf("Got unexpected extra %s (%s)", noun, strings.Join(rest, " "))}
	}
	return rest, nil
}

// processingOrder is click's iter_params_for_processing: eager first, then
// by first appearance on the command line, then declaration order.
func (c *Command) processingOrder(invoked []Param) []Param {
	first := map[Param]int{}
	for i, p := range invoked {
		if _, seen := first[p]; !seen {
			first[p] = i
		}
	}
	key := func(p Param) (int, int) {
		eager := 1
		if o, ok := p.(*Option); ok && o.Eager {
			eager = 0
		}
		if i, ok := first[p]; ok {
			return eager, i
		}
		return eager, math.MaxInt
	}
	params := append([]Param(nil), c.Params...)
	sort.SliceStable(params, func(i, j int) bool {
		ei, ii := key(params[i])
		ej, ij := key(params[j])
		if ei != ej {
			return ei < ej
		}
		return ii < ij
	})
	return params
}

func (c *Command) wrapSetError(p Param, err error) error {
	var iv *invalidValueError
	if errors.As(err, &iv) {
		return &UsageError{Command: c, Message: fmt.Sprintf("Invalid value for %s: %s", p.errorHint(), iv.msg)}
	}
	return err
}

func (c *Command) processOption(o *Option, occurrences [][]string, getenv func(string) string) error {
	if len(occurrences) == 0 && o.EnvVar != "" && getenv != nil {
		if v := getenv(o.EnvVar); v != "" {
			occurrences = [][]string{{v}}
			if o.FromEnv != nil {
				*o.FromEnv = true
			}
		}
	}
	if len(occurrences) == 0 {
		if o.Required && (o.Waived == nil || !o.Waived()) {
			msg := fmt.Sprintf("Missing option %s.", o.errorHint())
			if o.MissingDetail != "" {
				msg += " " + o.MissingDetail
			}
			return &UsageError{Command: c, Message: msg}
		}
		return nil
	}
	if o.Nargs == 0 || !o.Multiple {
		occurrences = occurrences[len(occurrences)-1:]
	}
	for _, values := range occurrences {
		if o.Set == nil {
			continue
		}
		if err := o.Set(values); err != nil {
			return c.wrapSetError(o, err)
		}
	}
	return nil
}

func (c *Command) processArgument(a *Argument, value *string) error {
	if value == nil {
		if a.Required {
			msg := fmt.Sprintf("Missing argument %s.", a.errorHint())
			if a.MissingDetail != "" {
				msg += " " + a.MissingDetail
			}
			return &UsageError{Command: c, Message: msg}
		}
		return nil
	}
	if a.Set == nil {
		return nil
	}
	if err := a.Set(*value); err != nil {
		return c.wrapSetError(a, err)
	}
	return nil
}

// isShortName reports whether click treats an option name as short: a
// one-character prefix followed by exactly one character.
func isShortName(name string) bool {
	cps, _ := pyCodePoints(name)
	return len(cps) == 2 && !pyIsAlnum(cps[0]) && cps[1] != cps[0]
}

// lookup finds the option spelled name among c's short or long names.
func (c *Command) lookup(name string, short bool) *Option {
	for _, p := range c.Params {
		o, ok := p.(*Option)
		if !ok {
			continue
		}
		for _, n := range o.Names {
			if n == name && isShortName(n) == short {
				return o
			}
		}
	}
	return nil
}

func (c *Command) longNames() []string {
	var names []string
	for _, p := range c.Params {
		if o, ok := p.(*Option); ok {
			for _, n := range o.Names {
				if !isShortName(n) {
					names = append(names, n)
				}
			}
		}
	}
	return names
}

// splitOptions is click's _process_args_for_options.
func (c *Command) splitOptions(st *parseState) error {
	for len(st.rargs) > 0 {
		arg := st.rargs[0]
		st.rargs = st.rargs[1:]
		switch {
		case arg == "--":
			return nil
		case len(arg) > 1 && arg[0] == '-':
			if err := c.processOpts(arg, st); err != nil {
				return err
			}
		case c.Interspersed:
			st.largs = append(st.largs, arg)
		default:
			st.rargs = append([]string{arg}, st.rargs...)
			return nil
		}
	}
	return nil
}

// noSuchOption is click's NoSuchOption error, with suggestions for long names.
func (c *Command) noSuchOption(name string, suggest bool) error {
	msg := fmt.Sprintf("No such option %s.", pyRepr(name))
	if suggest {
		msg += formatPossibilities(closeMatches(name, c.longNames()))
	}
	return &UsageError{Command: c, Message: msg}
}

// formatPossibilities is click's "Did you mean" suffix (with its leading space).
func formatPossibilities(possibilities []string) string {
	if len(possibilities) == 0 {
		return ""
	}
	sorted := append([]string(nil), possibilities...)
	sort.Strings(sorted)
	quoted := make([]string, len(sorted))
	for i, p := range sorted {
		quoted[i] = pyRepr(p)
	}
	if len(quoted) == 1 {
		return " Did you mean " + quoted[0] + "?"
	}
	return " (Did you mean one of: " + strings.Join(quoted, ", ") + "?)"
}

// processOpts is click's _process_opts: try the whole word (up to any "=")
// as a long option, then, unless it starts with "--", as short options.
func (c *Command) processOpts(arg string, st *parseState) error {
	name, explicit, hasExplicit := strings.Cut(arg, "=")
	if o := c.lookup(name, false); o != nil {
		return c.matchLong(o, name, explicit, hasExplicit, st)
	}
	if !strings.HasPrefix(arg, "--") {
		return c.matchShort(arg, st)
	}
	return c.noSuchOption(name, true)
}

func (c *Command) matchLong(o *Option, name, explicit string, hasExplicit bool, st *parseState) error {
	var values []string
	if o.Nargs > 0 {
		if hasExplicit {
			st.rargs = append([]string{explicit}, st.rargs...)
		}
		var err error
		if values, err = takeValues(name, o, st); err != nil {
			return err
		}
	} else if hasExplicit {
		return &UsageError{Message: fmt.Sprintf("Option %s does not take a value.", pyRepr(name))}
	}
	record(o, values, st)
	return nil
}

// matchShort is click's _match_short_opt: each character after the prefix
// is a short option; one that takes values takes the rest of the word as
// its first value.
func (c *Command) matchShort(arg string, st *parseState) error {
	_, texts := pyCodePoints(arg)
	prefix := texts[0]
	for i := 1; i < len(texts); i++ {
		name := prefix + texts[i]
		o := c.lookup(name, true)
		if o == nil {
			return c.noSuchOption(name, false)
		}
		var values []string
		stop := false
		if o.Nargs > 0 {
			if i+1 < len(texts) {
				st.rargs = append([]string{strings.Join(texts[i+1:], "")}, st.rargs...)
				stop = true
			}
			var err error
			if values, err = takeValues(name, o, st); err != nil {
				return err
			}
		}
		record(o, values, st)
		if stop {
			break
		}
	}
	return nil
}

// takeValues is click's _get_value_from_state.
func takeValues(name string, o *Option, st *parseState) ([]string, error) {
	n := o.Nargs
	if len(st.rargs) < n {
		msg := fmt.Sprintf("Option %s requires %d arguments.", pyRepr(name), n)
		if n == 1 {
			msg = fmt.Sprintf("Option %s requires an argument.", pyRepr(name))
		}
		return nil, &UsageError{Message: msg}
	}
	values := append([]string(nil), st.rargs[:n]...)
	st.rargs = st.rargs[n:]
	return values, nil
}

func record(o *Option, values []string, st *parseState) {
	if o.Multiple {
		st.opts[o] = append(st.opts[o], values)
	} else {
		st.opts[o] = [][]string{values}
	}
	st.order = append(st.order, o)
}
