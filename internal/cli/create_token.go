package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// CreateTokenOptions holds the parameters of "datasette-token create-token",
// which takes exactly the options of Datasette's "datasette create-token"
// (parsed the way click parses them) plus --issued-at.
type CreateTokenOptions struct {
	// ID is the actor ID (the "a" claim).
	ID string
	// Secret signs the token; empty means a random secret, as in Datasette.
	Secret string
	// ExpiresAfter is -e/--expires-after in seconds; 0 means no "d" claim.
	ExpiresAfter int64
	// All holds the -a/--all actions in command-line order.
	All []string
	// Databases holds one entry per -d/--database DB ACTION.
	Databases []dstoken.DatabaseActions
	// Resources holds one entry per -r/--resource DB RESOURCE ACTION.
	Resources []dstoken.ResourceActions
	// Debug prints the decoded payload after the token.
	Debug bool
	// PluginsDir is --plugins-dir (checked to be a directory; plugins are
	// not loaded).
	PluginsDir string
	// IssuedAt is the "t" claim; --issued-at, or the current time.
	IssuedAt int64

	issuedAtSet     bool
	expiresAfterSet bool
	IOStreams
}

// NewCreateTokenOptions returns CreateTokenOptions writing to streams.
func NewCreateTokenOptions(streams IOStreams) *CreateTokenOptions {
	return &CreateTokenOptions{IOStreams: streams}
}

// command declares create-token's parameters in Datasette's order, bound to o.
func (o *CreateTokenOptions) command() *Command {
	return &Command{
		Path:         ProgramName + " create-token",
		UsagePieces:  "ID",
		Interspersed: true,
		Params: []Param{
			&Argument{Metavar: "ID", Required: true, Set: func(v string) error { o.ID = v; return nil }},
			&Option{Names: []string{"--secret"}, Nargs: 1, Required: true, EnvVar: "DATASETTE_SECRET",
				Set: func(v []string) error { o.Secret = v[0]; return nil }},
			&Option{Names: []string{"-e", "--expires-after"}, Nargs: 1, Set: intSetter(&o.ExpiresAfter, &o.expiresAfterSet)},
			&Option{Names: []string{"-a", "--all"}, Nargs: 1, Multiple: true,
				Set: func(v []string) error { o.All = append(o.All, v[0]); return nil }},
			&Option{Names: []string{"-d", "--database"}, Nargs: 2, Multiple: true, Set: func(v []string) error {
				o.Databases = append(o.Databases, dstoken.DatabaseActions{Database: v[0], Actions: []string{v[1]}})
				return nil
			}},
			&Option{Names: []string{"-r", "--resource"}, Nargs: 3, Multiple: true, Set: func(v []string) error {
				o.Resources = append(o.Resources, dstoken.ResourceActions{Database: v[0], Resource: v[1], Actions: []string{v[2]}})
				return nil
			}},
			&Option{Names: []string{"--debug"}, Set: func([]string) error { o.Debug = true; return nil }},
			&Option{Names: []string{"--plugins-dir"}, Nargs: 1, Set: existingDirSetter(&o.PluginsDir)},
			&Option{Names: []string{"--issued-at"}, Nargs: 1, Set: intSetter(&o.IssuedAt, &o.issuedAtSet)},
			helpOption(createTokenHelp),
		},
	}
}

// Complete parses the command line (without "create-token") into o and
// fills in defaults: the secret from $DATASETTE_SECRET, the issue time from
// the clock (truncated to whole seconds, as Datasette's int(time.time())).
func (o *CreateTokenOptions) Complete(args []string) error {
	if _, err := o.command().Parse(args, o.Getenv); err != nil {
		return err
	}
	if !o.issuedAtSet {
		o.IssuedAt = o.Now().Unix()
	}
	return nil
}

// Validate rejects what Datasette could not encode: text that is not valid
// UTF-8 (Python holds undecodable argument bytes as lone surrogates and then
// fails to encode them).
func (o *CreateTokenOptions) Validate() error {
	if !utf8.ValidString(o.Secret) {
		return fmt.Errorf("the secret %s is not valid UTF-8, which Datasette cannot encode", pyRepr(o.Secret))
	}
	if err := o.Claims().Validate(); err != nil {
		return fmt.Errorf("cannot mint a token Datasette could mint: %w", err)
	}
	return nil
}

// actions lists the actions as Datasette checks them: every -a, then every
// -d, then every -r.
func (o *CreateTokenOptions) actions() []string {
	actions := append([]string(nil), o.All...)
	for _, d := range o.Databases {
		actions = append(actions, d.Actions...)
	}
	for _, r := range o.Resources {
		actions = append(actions, r.Actions...)
	}
	return actions
}

// Restrictions returns the token restrictions the options ask for.
func (o *CreateTokenOptions) Restrictions() dstoken.Restrictions {
	return dstoken.Restrictions{All: o.All, Databases: o.Databases, Resources: o.Resources}
}

// Claims returns the claims the token will carry.
func (o *CreateTokenOptions) Claims() dstoken.Claims {
	return dstoken.Claims{
		Actor:        o.ID,
		IssuedAt:     o.IssuedAt,
		ExpiresAfter: o.ExpiresAfter,
		Restrictions: o.Restrictions(),
	}
}

// Run mints the token and prints it as Datasette does: warnings on stderr
// ("  Unknown permission: NAME " for every action that is not one of
// Datasette's built-in actions), the token on stdout, and with --debug a
// blank line, "Decoded:", a blank line and the payload as Python's
// json.dumps(payload, indent=2).
func (o *CreateTokenOptions) Run() error {
	secret := o.Secret
	if secret == "" {
		random := make([]byte, 32)
		if _, err := io.ReadFull(o.Rand, random); err != nil {
			return fmt.Errorf("generate random secret: %w", err)
		}
		secret = hex.EncodeToString(random)
		if err := o.warnf("Warning: the secret is empty, so (like Datasette) a random secret is used instead: " +
			"nothing will be able to verify this token.\n"); err != nil {
			return err
		}
	}
	if o.PluginsDir != "" {
		if err := o.warnf("Note: datasette-token cannot load Datasette plugins from --plugins-dir %s: "+
			"actions defined by plugins are written unabbreviated (in full), which Datasette accepts, "+
			"and may be reported below as unknown.\n", o.PluginsDir); err != nil {
			return err
		}
	}
	for _, action := range o.actions() {
		if _, builtin := dstoken.Abbreviate(action); builtin {
			continue
		}
		line := "  Unknown permission: " + action + " "
		if o.ErrColor {
			line = "\x1b[31m" + line + "\x1b[0m" // click.secho(fg="red")
		}
		if err := o.warnf("%s\n", line); err != nil {
			return err
		}
	}

	claims := o.Claims()
	if _, err := fmt.Fprintln(o.Out, dstoken.NewMinter([]byte(secret)).Mint(claims)); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	if !o.Debug {
		return nil
	}
	// The payload the token signs, which Datasette's --debug unsigns.
	rendered, err := dstoken.IndentPayload(claims.PayloadJSON(), 2)
	if err != nil {
		return fmt.Errorf("render decoded payload: %w", err)
	}
	if _, err := fmt.Fprintf(o.Out, "\nDecoded:\n\n%s\n", rendered); err != nil {
		return fmt.Errorf("write decoded payload: %w", err)
	}
	return nil
}

func (o *CreateTokenOptions) warnf(format string, args ...any) error {
	if _, err := fmt.Fprintf(o.ErrOut, format, args...); err != nil {
		return fmt.Errorf("write to stderr: %w", err)
	}
	return nil
}
