package cli

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// CreateTokenOptions holds the parameters of "datasette-token create-token",
// which takes exactly the options of Datasette's "datasette create-token"
// (parsed the way click parses them) plus --issued-at.
type CreateTokenOptions struct {
	// ID is the actor ID (the "a" claim).
	ID string
	// Secret signs the token (--secret, $DATASETTE_SECRET or --secret-file);
	// empty means a random secret, as in Datasette.
	secretOptions
	// ExpiresAfter, All, Databases and Resources are -e, -a, -d and -r.
	restrictionOptions
	// Debug prints the decoded payload after the token.
	Debug bool
	// PluginsDir is --plugins-dir (checked to be a directory; plugins are
	// not loaded).
	PluginsDir string
	// IssuedAt is the "t" claim; --issued-at, or the current time.
	IssuedAt int64

	issuedAtSet bool
	IOStreams
	// DatasetteVersion and Profile are --datasette-version: the release whose create-token
	// to reproduce (its options, abbreviations, payload and warnings).
	releaseOption
}

// NewCreateTokenOptions returns CreateTokenOptions writing to streams.
func NewCreateTokenOptions(streams IOStreams) *CreateTokenOptions {
	return &CreateTokenOptions{IOStreams: streams}
}

// command declares create-token's parameters in Datasette's order (with
// --secret-file after --secret), bound to o.
func (o *CreateTokenOptions) command() *Command { return o.commandFor(nil) }

// commandFor declares the parameters of release p's create-token (nil: the newest
// release): without -a/-d/-r before 1.0a2 and without --plugins-dir before 1.0a2.
func (o *CreateTokenOptions) commandFor(p *dstoken.Profile) *Command {
	c := &Command{
		Path:         ProgramName + " create-token",
		UsagePieces:  "ID",
		Interspersed: true,
	}
	newest := p == nil
	params := append([]Param{
		&Argument{Metavar: "ID", Required: true, Set: func(v string) error { o.ID = v; return nil }},
	}, o.params(c)...)
	restrict := restrictionParams(&o.restrictionOptions)
	params = append(params, restrict[0]) // -e
	if newest || p.RestrictOptions {
		params = append(params, restrict[1:]...)
	}
	params = append(params, &Option{Names: []string{"--debug"}, Set: func([]string) error { o.Debug = true; return nil }})
	if newest || p.PluginsDirOption {
		params = append(params, &Option{Names: []string{"--plugins-dir"}, Nargs: 1, Set: existingDirSetter(&o.PluginsDir)})
	}
	c.Params = append(params,
		&Option{Names: []string{"--issued-at"}, Nargs: 1, Set: intSetter(&o.IssuedAt, &o.issuedAtSet)},
		o.releaseOption.param(),
		helpOption(createTokenHelp),
	)
	return c
}

// Complete parses the command line (without "create-token") into o and
// fills in defaults: the secret from $DATASETTE_SECRET or --secret-file,
// the issue time from the clock (truncated to whole seconds, as Datasette's
// int(time.time())).
func (o *CreateTokenOptions) Complete(args []string) error {
	pre := releaseArgProfile(args)
	if _, err := o.commandFor(pre).Parse(args, o.Getenv); err != nil {
		return err
	}
	if p := o.Profile; p.String() != pre.String() || p.IsNewest() != pre.IsNewest() {
		// --datasette-version was read as another option's value: parse again as the
		// release that was actually asked for.
		*o = CreateTokenOptions{IOStreams: o.IOStreams}
		if _, err := o.commandFor(p).Parse(args, o.Getenv); err != nil {
			return err
		}
	}
	if err := o.resolve(o.In); err != nil {
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
	if err := validSecret(o.Secret); err != nil {
		return err
	}
	if err := o.Claims().Validate(); err != nil {
		return fmt.Errorf("cannot mint a token Datasette could mint: %w", err)
	}
	return nil
}

// Claims returns the claims the token will carry.
func (o *CreateTokenOptions) Claims() dstoken.Claims {
	return dstoken.Claims{
		Actor:        o.ID,
		IssuedAt:     o.IssuedAt,
		ExpiresAfter: o.ExpiresAfter,
		Restrictions: o.Restrictions(),
		Profile:      o.Profile,
	}
}

// Run mints the token and prints it as Datasette (the release of
// --datasette-version) does: warnings on stderr ("  Unknown permission: NAME "
// for every action that is not one of the release's built-in actions, then
// one line of ours when the release would misread the token), the token on
// stdout, and with --debug a
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
	if err := o.warnUnknown(o.IOStreams, o.Profile); err != nil {
		return err
	}
	if err := warnMisread(o.Profile, o.Restrictions(), o.IOStreams); err != nil {
		return err
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
