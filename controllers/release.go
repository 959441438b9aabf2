package controllers

import (
	"fmt"
	"strings"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// SignerRelease returns the Datasette release that tokens of a signer with these settings are
// minted for, as a profile: spec.datasetteVersion with spec.pluginActions. nil means the newest
// known release without plugin actions (the behaviour of tokens that name a signing Secret).
// An error is a signer whose release cannot be served: a version before 1.0a0 (no signed
// tokens), or plugin actions that clash; its message names the signer's field.
//
// This is the single place that says which release a signer's tokens are for: a signer that
// learns its instance's release another way extends it here.
func SignerRelease(settings datasettev1alpha1.SignerSettings) (*dstoken.Profile, error) {
	var p *dstoken.Profile
	if v := settings.DatasetteVersion; v != "" {
		var err error
		if p, err = dstoken.ProfileForVersion(v); err != nil {
			return nil, fmt.Errorf("spec.datasetteVersion %q: %w", v, err)
		}
	}
	if len(settings.PluginActions) == 0 {
		return p, nil
	}
	plugins := make([]dstoken.PluginAction, len(settings.PluginActions))
	for i, a := range settings.PluginActions {
		plugins[i] = dstoken.PluginAction{Name: a.Name, Abbr: a.Abbreviation}
	}
	q, err := p.WithPluginActions(plugins)
	if err != nil {
		return nil, fmt.Errorf("spec.pluginActions: %w", err)
	}
	return q, nil
}

// applyRelease finds the release the token is minted for (see SignerRelease) and makes the
// wanted claims that release's: its payload and abbreviations. Tokens that name a signing
// Secret keep the newest release.
func applyRelease(in *gathered) {
	s := &in.signing
	if !s.viaSigner || !s.signerFound {
		return
	}
	s.release, s.releaseErr = SignerRelease(s.settings)
	if s.releaseErr == nil {
		in.want.claims.Profile = s.release
	}
}

// releaseFailure says why the signer's Datasette release cannot be given the token, if it
// cannot: ok is false then, with reason UnsupportedByDatasette (Stalled: a person must change
// the token, the signer or the instance).
func releaseFailure(in *gathered) (r readiness, ok bool) {
	s := in.signing
	if s.releaseErr != nil {
		return notReady(stalled, datasettev1alpha1.ReasonUnsupportedByDatasette, fmt.Sprintf("%s: %v", s.source, s.releaseErr)), false
	}
	if s.unreadableRelease != "" && !in.want.claims.Restrictions.IsZero() {
		return notReady(stalled, datasettev1alpha1.ReasonUnsupportedByDatasette, fmt.Sprintf(
			"%s: its instance reports Datasette %q, a release the operator cannot read, so it cannot know that the instance "+
				"enforces restrictions: nothing restricted is minted until the instance reports a release such as 1.0a19",
			s.source, s.unreadableRelease)), false
	}
	if err := s.release.Check(in.want.claims.Restrictions); err != nil {
		return notReady(stalled, datasettev1alpha1.ReasonUnsupportedByDatasette, fmt.Sprintf(
			"%s is for %s: %v", s.source, s.release.Release, err)), false
	}
	return readiness{}, true
}

// unknownActionsNote is the UnknownAction event's note for actions the release does not know
// by name (they are written unabbreviated, as its create-token writes them), or "" when there
// are none.
func unknownActionsNote(release *dstoken.Profile, r dstoken.Restrictions) string {
	var unknown []string
	for _, a := range r.Actions() {
		if !release.KnowsName(a) {
			unknown = append(unknown, a)
		}
	}
	if len(unknown) == 0 {
		return ""
	}
	if release == nil {
		return "Actions " + strings.Join(unknown, ", ") +
			" are not Datasette built-ins: written unabbreviated, as datasette create-token does (fine for plugin actions)"
	}
	return "Actions " + strings.Join(unknown, ", ") + " are not known to " + release.String() +
		" (built-in or in the signer's pluginActions): written unabbreviated, as its datasette create-token does"
}
