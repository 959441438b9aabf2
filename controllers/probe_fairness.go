package controllers

import (
	"fmt"
	"sync"
	"time"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// probeSlots lets at most one probe per namespace run at a time, so that a tenant whose
// DatasetteSigners probe slow instances (each probe may take its whole 5 s timeout) holds at
// most one of the signer controller's workers, whatever it creates or edits; the other
// namespaces' signers keep the rest. ClusterDatasetteSigners (namespace "") are not limited:
// only the platform team writes them.
type probeSlots struct {
	mu   sync.Mutex
	busy map[string]bool
}

// probeSlotRetry is how soon a signer whose namespace has a probe in flight looks again.
const probeSlotRetry = time.Second

// take claims namespace's slot; false when a probe of that namespace is in flight.
func (s *probeSlots) take(namespace string) bool {
	if s == nil || namespace == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[namespace] {
		return false
	}
	if s.busy == nil {
		s.busy = map[string]bool{}
	}
	s.busy[namespace] = true
	return true
}

// give frees namespace's slot; the map holds only namespaces with a probe in flight.
func (s *probeSlots) give(namespace string) {
	if s == nil || namespace == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, namespace)
}

// holdSignerChange keeps the token while the claims changed from the signer's side only (its
// Datasette release, which a probe may discover anew at every interval, or its pluginActions),
// not from the token's own spec: such a re-issue waits for the renewal floor after the token's
// last mint, like a renewal. Otherwise an instance reporting another release at each probe
// would have every token of its signer re-minted (a Secret, a status and an event each) at every
// probe. It reports whether it held; p becomes "keep the token, Ready, look again at the end of
// the floor (or when the kept token expires)".
func holdSignerChange(in *gathered, p *plan, kept dstoken.Comparison, now time.Time) bool {
	tok := in.token
	if p.mint != mintIssue || in.floor <= 0 || !in.signing.viaSigner || !kept.Verified || kept.KeyIndex != 0 ||
		tok.Status.ObservedGeneration != tok.Generation {
		return false
	}
	next := time.Unix(kept.IssuedAt, 0).Add(in.floor)
	if !now.Before(next) {
		return false
	}
	claims, ok := in.want.claimsAt(time.Unix(kept.IssuedAt, 0))
	if !ok {
		return false
	}
	dates := in.want.datesOf(claims, durationOf(in.signing.settings.MaxSignedTokensTTL))
	if !dates.expiresAt.IsZero() && !now.Before(dates.expiresAt) {
		return false // the kept token has expired: replace it now
	}
	p.mint, p.claims, p.dates = noMint, claims, dates
	p.token = string(in.secret.Data[tokenKey])
	p.restart = restartPending(tok, noMint, kept.IssuedAt)
	p.revocationRemove = in.signing.settings.RevocationPolicy == datasettev1alpha1.RevocationPolicyRemove
	p.readiness = ready(ReasonIssued, fmt.Sprintf(
		"Secret %q holds a token for actor %q; the change of %s (its Datasette release or pluginActions) reaches it at %s: "+
			"the renewal floor (%s) spaces its mints", in.want.secretName, in.want.claims.Actor, in.signing.source,
		next.UTC().Format(time.RFC3339), in.floor))
	p.requeueAfter = next.Sub(now)
	if !dates.expiresAt.IsZero() {
		p.requeueAfter = min(p.requeueAfter, untilAfter(now, dates.expiresAt))
	}
	return true
}
