package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// releaseOptionName is the option naming the Datasette release to answer as.
const releaseOptionName = "--datasette-version"

// releaseOption is --datasette-version VERSION, which create-token, verify and manifest
// take: the Datasette release whose behaviour to reproduce (default: the newest known).
type releaseOption struct {
	// DatasetteVersion is the release as given ("" when not given).
	DatasetteVersion string
	// Profile is that release's profile; nil means the newest release.
	Profile *dstoken.Profile
}

// param declares --datasette-version, bound to r.
func (r *releaseOption) param() Param {
	return &Option{Names: []string{releaseOptionName}, Nargs: 1, Set: func(v []string) error {
		p, err := releaseProfile(v[0])
		if err != nil {
			return invalidValue("%s", err.Error())
		}
		r.DatasetteVersion, r.Profile = v[0], p
		return nil
	}}
}

// releaseProfile returns the profile of version, with the message click's callback in
// testdata/clickref.py gives for a version it refuses.
func releaseProfile(version string) (*dstoken.Profile, error) {
	p, err := dstoken.ProfileForVersion(version)
	switch {
	case errors.Is(err, dstoken.ErrNoSignedTokens):
		return nil, fmt.Errorf("Datasette %s has no signed API tokens (they arrived in 1.0a0).", version) //nolint:staticcheck // a click message, shown as is
	case err != nil:
		return nil, fmt.Errorf("%s is not a Datasette release such as 1.0a19.", pyRepr(version)) //nolint:staticcheck // a click message, shown as is
	}
	return p, nil
}

// releaseArg returns the value of the last --datasette-version in args before "--" (""
// when there is none), read before parsing: the release decides which options
// create-token has.
func releaseArg(args []string) string {
	version := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return version
		case a == releaseOptionName && i+1 < len(args):
			version = args[i+1]
			i++
		case strings.HasPrefix(a, releaseOptionName+"="):
			version = a[len(releaseOptionName)+1:]
		}
	}
	return version
}

// releaseArgProfile is the profile named by releaseArg(args), or nil (the newest release)
// when there is none or it is not one (the parse then reports it).
func releaseArgProfile(args []string) *dstoken.Profile {
	v := releaseArg(args)
	if v == "" {
		return nil
	}
	p, err := releaseProfile(v)
	if err != nil {
		return nil
	}
	return p
}

// warnMisread prints, for a release that would misread the restrictions, one line saying
// so: a release that ignores "_r" (create-token cannot be asked for restrictions there, but
// manifest can), or one that answers HTTP 500 to every request made with a token naming an
// action it does not know.
func warnMisread(p *dstoken.Profile, r dstoken.Restrictions, s IOStreams) error {
	if p == nil || r.IsZero() {
		return nil
	}
	var line string
	switch {
	case !p.EnforcesRestrictions:
		line = fmt.Sprintf("Warning: Datasette %s ignores token restrictions: it would accept this token with all of its actor's permissions.", p.Release)
	case p.UnknownActionsBreak:
		unknown := p.UnknownNames(r)
		if len(unknown) == 0 {
			return nil
		}
		line = fmt.Sprintf("Warning: Datasette %s does not know %s, so it would answer HTTP 500 to every request made with this token.",
			p.Release, theActions(unknown))
	default:
		return nil
	}
	if _, err := fmt.Fprintln(s.ErrOut, line); err != nil {
		return fmt.Errorf("write to stderr: %w", err)
	}
	return nil
}

// theActions writes `the action "a"` or `the actions "a", "b"`.
func theActions(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 1 {
		return "the action " + q[0]
	}
	return "the actions " + strings.Join(q, ", ")
}

// warnRelease prints, for --datasette-version, one line on stderr when the release would
// misread the accepted token's restrictions: ignore them (1.0a0–1.0a1), or fail with HTTP
// 500 on an action it does not know (1.0a5–1.0a19).
func (o *VerifyOptions) warnRelease(v *dstoken.Verified) error {
	p := o.Profile
	if p == nil || v.Actor.Restrictions == nil {
		return nil
	}
	var line string
	switch {
	case !p.EnforcesRestrictions:
		line = fmt.Sprintf("Warning: Datasette %s ignores this token's restrictions (\"_r\"): it accepts it with all of its actor's permissions.", p.Release)
	case p.UnknownActionsBreak:
		unknown := p.UnknownInRestrictionsJSON(v.Actor.Restrictions)
		if len(unknown) == 0 {
			return nil
		}
		line = fmt.Sprintf("Warning: Datasette %s does not know %s in this token's restrictions, so it answers HTTP 500 to every request made with it.",
			p.Release, theActions(unknown))
	default:
		return nil
	}
	if _, err := fmt.Fprintln(o.ErrOut, line); err != nil {
		return fmt.Errorf("write to stderr: %w", err)
	}
	return nil
}

// releaseVerdict reports, for --datasette-version, what the release does with a token
// [dstoken.Verifier.Verify] refused with err: one line on stderr and exit status 1.
func (o *VerifyOptions) releaseVerdict(err error) error {
	p := o.Profile
	var (
		invalid *dstoken.InvalidTokenError
		server  *dstoken.ServerError
		verdict string
	)
	name := "Datasette " + p.Release.String()
	switch outcome := p.Outcome(err); {
	case errors.Is(err, dstoken.ErrNotDatasetteToken):
		verdict = name + ` would ignore this token: it does not start with "dstok_" (the request would stay anonymous)`
	case errors.As(err, &invalid) && outcome == dstoken.OutcomeUnauthorized:
		verdict = name + " would reject this token (HTTP 401): " + invalid.Message
	case errors.As(err, &invalid):
		verdict = name + " would ignore this token (the request would stay anonymous): " + invalid.Message
	case errors.As(err, &server):
		verdict = fmt.Sprintf("%s would fail with HTTP 500 (%s)", name, server.Exception)
	default:
		return fmt.Errorf("verify token: %w", err)
	}
	if _, err := fmt.Fprintln(o.ErrOut, verdict); err != nil {
		return fmt.Errorf("write verdict: %w", err)
	}
	return &ExitError{Code: 1}
}

// DatasetteVersionAnnotation records, on a DatasetteToken that manifest writes with
// --datasette-version, the release it was written for. The operator mints for the release
// of the signer (its spec.datasetteVersion); the annotation tells a reader which one the
// restrictions were checked against.
const DatasetteVersionAnnotation = "datasette.io/datasette-version"

// applyRelease records --datasette-version on the manifest and refuses restrictions the
// operator would refuse for a signer of that release (reason UnsupportedByDatasette), with
// the same message.
func (o *ManifestOptions) applyRelease(obj *manifestObject) error {
	if o.Profile == nil {
		return nil
	}
	if err := o.Profile.Check(o.Restrictions()); err != nil {
		return fmt.Errorf("a signer of this release would refuse this token (UnsupportedByDatasette): %w", err)
	}
	obj.Metadata.Annotations = map[string]string{DatasetteVersionAnnotation: o.Profile.Release.String()}
	return nil
}
