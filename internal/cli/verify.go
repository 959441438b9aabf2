package cli

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// VerifyOptions holds the parameters of "datasette-token verify", which
// answers: would Datasette accept this token?
//
// Output: when Datasette would accept the token, the actor it would build
// (the dict its SignedTokenHandler returns: "id", "token", "_r" when present,
// "token_expires" when the token expires) as one line of compact JSON on
// stdout, exit status 0. Otherwise one line on stderr and exit status 1:
//
//	Datasette would reject this token (HTTP 401): <Datasette's message>
//	Datasette would fail with HTTP 500 (<exception>)
//	Datasette would ignore this token: it does not start with "dstok_" (the request would stay anonymous)
type VerifyOptions struct {
	// Token is the token as sent after "Authorization: Bearer " ("-": read
	// from standard input).
	Token string
	// Secret is Datasette's secret (--secret, $DATASETTE_SECRET or
	// --secret-file); empty means a random one, as in Datasette.
	secretOptions
	// MaxTTL is Datasette's max_signed_tokens_ttl setting (0: no cap; like
	// Datasette, any other value, even negative, applies).
	MaxTTL int64
	// At is the Unix time to verify at (fractional seconds allowed).
	At float64
	// NoSignedTokens answers as a Datasette with allow_signed_tokens off.
	NoSignedTokens bool

	atSet  bool
	atText string
	IOStreams
	// DatasetteVersion and Profile are --datasette-version: answer as that release.
	releaseOption
}

// NewVerifyOptions returns VerifyOptions writing to streams.
func NewVerifyOptions(streams IOStreams) *VerifyOptions {
	return &VerifyOptions{IOStreams: streams}
}

func (o *VerifyOptions) command() *Command {
	at := floatSetter(&o.At, &o.atSet)
	c := &Command{
		Path:         ProgramName + " verify",
		UsagePieces:  tokenMetavar,
		Interspersed: true,
	}
	c.Params = append(append([]Param{
		&Argument{Metavar: tokenMetavar, Required: true, Set: func(v string) error { o.Token = v; return nil }},
	}, o.params(c)...),
		&Option{Names: []string{"--max-ttl"}, Nargs: 1, Set: intSetter(&o.MaxTTL, nil)},
		&Option{Names: []string{"--at"}, Nargs: 1, Set: func(v []string) error {
			o.atText = v[0]
			return at(v)
		}},
		&Option{Names: []string{"--no-signed-tokens"}, Set: func([]string) error { o.NoSignedTokens = true; return nil }},
		o.releaseOption.param(),
		helpOption(verifyHelp),
	)
	return c
}

// Complete parses the command line (without "verify") into o and reads
// what comes from files or standard input: the secret (--secret-file) and a
// TOKEN of "-".
func (o *VerifyOptions) Complete(args []string) error {
	c := o.command()
	if _, err := c.Parse(args, o.Getenv); err != nil {
		return err
	}
	if o.Token == stdinName && o.fileGiven && o.File == stdinName {
		return &UsageError{Command: c, Message: "The token and the secret cannot both be read from standard input ('-')."}
	}
	if err := o.resolve(o.In); err != nil {
		return err
	}
	token, err := readToken(o.Token, o.In)
	if err != nil {
		return err
	}
	o.Token = token
	return nil
}

// Validate checks --at is a usable time and the secret is valid UTF-8.
func (o *VerifyOptions) Validate() error {
	if o.atSet && (math.IsNaN(o.At) || math.IsInf(o.At, 0) || math.Abs(o.At) >= 1<<62) {
		return &UsageError{Command: o.command(), Message: fmt.Sprintf(
			"Invalid value for '--at': %s is not a usable time (a finite number of seconds is needed).", pyRepr(o.atText))}
	}
	if err := validSecret(o.Secret); err != nil {
		return err
	}
	return nil
}

// now returns the verification time: --at, or the clock.
func (o *VerifyOptions) now() time.Time {
	if !o.atSet {
		return o.Now()
	}
	sec := math.Floor(o.At)
	nsec := math.Round((o.At - sec) * 1e9)
	if nsec >= 1e9 {
		sec, nsec = sec+1, nsec-1e9
	}
	return time.Unix(int64(sec), int64(nsec))
}

// Run verifies the token as Datasette's SignedTokenHandler would and reports
// the verdict (see VerifyOptions).
func (o *VerifyOptions) Run() error {
	secret := []byte(o.Secret)
	if o.Secret == "" {
		// Datasette replaces an empty secret with a random one, which no
		// token was signed with.
		secret = make([]byte, 32)
		if _, err := io.ReadFull(o.Rand, secret); err != nil {
			return fmt.Errorf("generate random secret: %w", err)
		}
		const warning = "Warning: the secret is empty, so (like Datasette) a random secret is used instead: no signature can match."
		if _, err := fmt.Fprintln(o.ErrOut, warning); err != nil {
			return fmt.Errorf("write to stderr: %w", err)
		}
	}
	verified, err := dstoken.NewVerifier(secret).Verify(o.Token, dstoken.VerifyOptions{
		Now:                  o.now(),
		MaxTTL:               o.MaxTTL,
		SignedTokensDisabled: o.NoSignedTokens,
	})
	if err == nil {
		actor, err := o.Profile.Actor(verified).MarshalJSON()
		if err != nil {
			return fmt.Errorf("encode actor: %w", err)
		}
		if _, err := fmt.Fprintf(o.Out, "%s\n", actor); err != nil {
			return fmt.Errorf("write actor: %w", err)
		}
		return o.warnRelease(verified)
	}
	if o.Profile != nil {
		return o.releaseVerdict(err)
	}
	var (
		invalid *dstoken.InvalidTokenError
		server  *dstoken.ServerError
		verdict string
	)
	switch {
	case errors.Is(err, dstoken.ErrNotDatasetteToken):
		verdict = `Datasette would ignore this token: it does not start with "dstok_" (the request would stay anonymous)`
	case errors.As(err, &invalid):
		verdict = "Datasette would reject this token (HTTP 401): " + invalid.Message
	case errors.As(err, &server):
		verdict = fmt.Sprintf("Datasette would fail with HTTP 500 (%s)", server.Exception)
	default:
		return fmt.Errorf("verify token: %w", err)
	}
	if _, err := fmt.Fprintln(o.ErrOut, verdict); err != nil {
		return fmt.Errorf("write verdict: %w", err)
	}
	return &ExitError{Code: 1}
}
