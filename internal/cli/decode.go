package cli

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/internal/textsafe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// DecodeOptions holds the parameters of "datasette-token decode", which
// shows a token's claims without checking its signature.
type DecodeOptions struct {
	// Token is the token to decode ("-": read from standard input).
	Token string
	IOStreams
}

// NewDecodeOptions returns DecodeOptions writing to streams.
func NewDecodeOptions(streams IOStreams) *DecodeOptions {
	return &DecodeOptions{IOStreams: streams}
}

func (o *DecodeOptions) command() *Command {
	return &Command{
		Path:         ProgramName + " decode",
		UsagePieces:  tokenMetavar,
		Interspersed: true,
		Params: []Param{
			&Argument{Metavar: tokenMetavar, Required: true, Set: func(v string) error { o.Token = v; return nil }},
			helpOption(decodeHelp),
		},
	}
}

// Complete parses the command line (without "decode") into o and reads a
// TOKEN of "-" from standard input.
func (o *DecodeOptions) Complete(args []string) error {
	if _, err := o.command().Parse(args, o.Getenv); err != nil {
		return err
	}
	token, err := readToken(o.Token, o.In)
	if err != nil {
		return err
	}
	o.Token = token
	return nil
}

// Validate has nothing to check beyond parsing.
func (o *DecodeOptions) Validate() error { return nil }

// Run prints the claims, marked UNVERIFIED, e.g.
//
//	UNVERIFIED: the signature was not checked; anyone can forge these claims.
//	actor:        "root"
//	issued at:    2023-11-14T22:13:20Z (1700000000)
//	expires:      2023-11-14T23:13:20Z (1700003600: 3600 seconds after issue)
//	restrictions:
//	  all:        "view-instance"
//	  database:   "db": "create-table"
//	  resource:   "db" / "t": "insert-row"
//	payload:      {"a":"root","t":1700000000,"d":3600,"_r":{...}}
//
// Times are RFC 3339 in UTC; actions are shown with their full names. Anyone
// can forge the claims, so every string is quoted with its non-printable
// characters escaped (see textsafe.Quote), and so is the payload: a token cannot
// write terminal escape sequences, carriage returns or bidirectional
// controls to the terminal. A token over dstoken.MaxTokenSize is refused unread.
func (o *DecodeOptions) Run() error {
	if len(o.Token) > dstoken.MaxTokenSize {
		return fmt.Errorf("token is too large to decode (%d bytes; the limit is %d)", len(o.Token), dstoken.MaxTokenSize)
	}
	decoded, err := dstoken.Decode(o.Token)
	if err != nil {
		return fmt.Errorf("decode token: %w", err)
	}
	c := decoded.Claims
	var b strings.Builder
	b.WriteString("UNVERIFIED: the signature was not checked; anyone can forge these claims.\n")
	fmt.Fprintf(&b, "actor:        %s\n", textsafe.Quote(c.Actor))
	fmt.Fprintf(&b, "issued at:    %s (%d)\n", rfc3339(c.IssuedAt), c.IssuedAt)
	if c.ExpiresAfter == 0 {
		b.WriteString("expires:      never (no \"d\" claim)\n")
	} else if c.ExpiresAfter > 0 && c.IssuedAt > math.MaxInt64-c.ExpiresAfter ||
		c.ExpiresAfter < 0 && c.IssuedAt < math.MinInt64-c.ExpiresAfter {
		fmt.Fprintf(&b, "expires:      %d seconds after issue (beyond 64-bit time)\n", c.ExpiresAfter)
	} else {
		at := c.IssuedAt + c.ExpiresAfter
		fmt.Fprintf(&b, "expires:      %s (%d: %d seconds after issue)\n", rfc3339(at), at, c.ExpiresAfter)
	}
	r := c.Restrictions
	switch {
	case r.IsZero() && decoded.Restricted():
		b.WriteString("restrictions: \"_r\" is present but grants nothing\n")
	case r.IsZero():
		b.WriteString("restrictions: none (the token may do anything its actor may)\n")
	default:
		b.WriteString("restrictions:\n")
		if len(r.All) > 0 {
			fmt.Fprintf(&b, "  all:        %s\n", quoteList(r.All))
		}
		for _, d := range r.Databases {
			fmt.Fprintf(&b, "  database:   %s: %s\n", textsafe.Quote(d.Database), quoteList(d.Actions))
		}
		for _, res := range r.Resources {
			fmt.Fprintf(&b, "  resource:   %s / %s: %s\n", textsafe.Quote(res.Database), textsafe.Quote(res.Resource), quoteList(res.Actions))
		}
	}
	fmt.Fprintf(&b, "payload:      %s\n", textsafe.Escape(string(decoded.Payload)))
	if _, err := io.WriteString(o.Out, b.String()); err != nil {
		return fmt.Errorf("write claims: %w", err)
	}
	return nil
}

// rfc3339 formats Unix seconds as RFC 3339 in UTC.
func rfc3339(sec int64) string {
	t := time.Unix(sec, 0).UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return "(outside RFC 3339's years 0000-9999)"
	}
	return t.Format(time.RFC3339)
}

// quoteList quotes each string and joins them with ", ".
func quoteList(list []string) string {
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = textsafe.Quote(s)
	}
	return strings.Join(quoted, ", ")
}
