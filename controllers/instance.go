package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// rotationRecheck is how soon a token held by a pending rotation looks again, besides the
// signer's status change that normally wakes it.
const rotationRecheck = 30 * time.Second

// applyInstance makes what the signer's probe learned part of the token's signing settings:
// the stricter of spec.datasetteVersion and the instance's release (see effectiveVersion), and
// the shorter of spec.maxSignedTokensTTL and the instance's max_signed_tokens_ttl.
func applyInstance(in *gathered) {
	s := &in.signing
	inst := s.instance
	if !s.viaSigner || !s.signerFound || inst == nil {
		return
	}
	s.settings.DatasetteVersion, s.unreadableRelease = effectiveVersion(s.settings.DatasetteVersion, inst.Version)
	if got := durationOf(inst.MaxSignedTokensTTL); got > 0 {
		if spec := durationOf(s.settings.MaxSignedTokensTTL); spec == 0 || got < spec {
			s.settings.MaxSignedTokensTTL = &metav1.Duration{Duration: got}
		}
	}
}

// effectiveVersion is the release a signer's tokens are for, given spec.datasetteVersion
// (declared) and the release its instance reported (discovered): the older of the two, which
// knows fewer actions and may not enforce restrictions at all, or the one that is known ("":
// neither, the newest). A discovered release the operator cannot read ("1.0a1+deb12") is
// returned as unreadable: the instance's release is then unknown, and only the declared one,
// if any, is used for what a token without restrictions looks like.
func effectiveVersion(declared, discovered string) (version, unreadable string) {
	if discovered == "" {
		return declared, ""
	}
	found, err := dstoken.ParseRelease(discovered)
	if err != nil {
		return declared, discovered
	}
	if want, err := dstoken.ParseRelease(declared); declared != "" && (err != nil || want.Compare(found) <= 0) {
		return declared, "" // older, or malformed: SignerRelease says so
	}
	return discovered, ""
}

// instanceFailure says whether the signer's instance rejects the current key and never
// accepted it: then nothing is minted (Ready=False, Reconciling: fixing the key or the
// instance fixes it). ok is false then.
func instanceFailure(in *gathered) (r readiness, ok bool) {
	s := in.signing
	if s.instance == nil || s.instance.KeyState != datasettev1alpha1.KeyStateRejected || s.instance.KeyResourceVersion != s.key.since {
		return readiness{}, true
	}
	return notReady(waiting, datasettev1alpha1.ReasonInstanceRejectsKey, fmt.Sprintf(
		"%s: its instance does not accept tokens signed with its key (see the signer's InstanceVerified condition); "+
			"nothing is minted until the signer's Secret and the instance's DATASETTE_SECRET agree",
		s.source)), false
}

// holdForRotation keeps the token signed with the previous key while the signer's instance
// does not yet accept the new one: p becomes "keep the token, Ready, RotationPending". It
// reports whether it held. A rotation goes ahead once the probe saw the new key accepted, once
// probe.rotationTimeout passed, for a signer without a probe, and when the kept token is no
// longer valid.
func holdForRotation(in *gathered, p *plan, kept dstoken.Comparison, now time.Time) bool {
	s := in.signing
	if p.mint != mintRotation || !s.probed || !kept.Verified || !kept.SameClaims {
		return false
	}
	// The kept token was signed with the previous key, so decide did not date it.
	claims, _ := in.want.claimsAt(time.Unix(kept.IssuedAt, 0))
	dates := in.want.datesOf(claims, durationOf(s.settings.MaxSignedTokensTTL))
	if !dates.expiresAt.IsZero() && !now.Before(dates.expiresAt) {
		return false
	}
	if inst := s.instance; inst != nil && inst.KeyResourceVersion == s.key.since &&
		(inst.KeyState == datasettev1alpha1.KeyStateAccepted || inst.KeyState == datasettev1alpha1.KeyStateRotationTimedOut) {
		return false
	}
	p.mint, p.restart, p.claims, p.dates = noMint, false, claims, dates
	p.token = string(in.secret.Data[tokenKey])
	p.readiness = ready(datasettev1alpha1.ReasonRotationPending, fmt.Sprintf(
		"%s has a new key that its instance does not accept yet: Secret %q keeps the token signed with the previous key until it does",
		s.source, in.want.secretName))
	p.requeueAfter = rotationRecheck
	if !p.dates.expiresAt.IsZero() {
		p.requeueAfter = min(p.requeueAfter, untilAfter(now, p.dates.expiresAt))
	}
	return true
}

// instanceChanged lets through a signer update whose status.instance changed in what tokens
// read (not merely probedAt).
type instanceChanged struct{ predicate.Funcs }

// Update reports whether the signer's instance facts changed.
func (instanceChanged) Update(e event.UpdateEvent) bool {
	return !equality.Semantic.DeepEqual(instanceFactsOf(e.ObjectOld), instanceFactsOf(e.ObjectNew))
}

// instanceFactsOf is a signer's status.instance without probedAt.
func instanceFactsOf(o any) *datasettev1alpha1.InstanceStatus {
	var inst *datasettev1alpha1.InstanceStatus
	switch s := o.(type) {
	case *datasettev1alpha1.DatasetteSigner:
		inst = s.Status.Instance
	case *datasettev1alpha1.ClusterDatasetteSigner:
		inst = s.Status.Instance
	}
	if inst == nil {
		return nil
	}
	c := inst.DeepCopy()
	c.ProbedAt = nil
	return c
}
