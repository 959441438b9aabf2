package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// probeRunner runs signers' probes off the reconcile workers, so that a probe taking its whole
// timeout holds no worker, however few there are (--max-concurrent-reconciles=1 included): a
// reconcile that finds a probe due starts it and returns; the probe's end wakes the signer
// through wake (a channel source of its controller), and the next reconcile records the result.
// A namespace has at most one probe in flight, so that a tenant whose DatasetteSigners probe
// slow instances (each probe may take its whole 5 s timeout) has them probed one at a time,
// whatever it creates or edits. ClusterDatasetteSigners (namespace "") are limited only to one
// probe in flight each: only the platform team writes them.
type probeRunner struct {
	// wake receives a signer whose probe finished.
	wake chan event.GenericEvent
	// newObject returns an empty signer of the runner's kind, for wake.
	newObject func() client.Object

	mu sync.Mutex
	// busy holds the namespaces with a probe in flight.
	busy map[string]bool
	// running holds the signers with a probe in flight.
	running map[types.NamespacedName]bool
	// finished holds the results no reconcile has collected yet.
	finished map[types.NamespacedName]finishedProbe
}

// finishedProbe is a probe's result, with what it was made for.
type finishedProbe struct {
	// generation and keySince are the signer's generation and key the probe was made for.
	generation int64
	keySince   string
	// at is when the probe started.
	at     time.Time
	result dsprobe.Result
}

// Probe waits.
const (
	// probeSlotRetry is how soon a signer whose namespace has a probe in flight looks again.
	probeSlotRetry = time.Second
	// probeResultWait is how soon a signer whose probe is in flight looks again should its
	// wake be lost (the wake channel full): the probe's timeout, and a second.
	probeResultWait = dsprobe.DefaultTimeout + time.Second
	// wakeBuffer is how many finished probes may wait for the controller's channel source.
	wakeBuffer = 1024
)

// newProbeRunner returns a runner for signers made by newObject.
func newProbeRunner(newObject func() client.Object) *probeRunner {
	return &probeRunner{wake: make(chan event.GenericEvent, wakeBuffer), newObject: newObject,
		busy: map[string]bool{}, running: map[types.NamespacedName]bool{}, finished: map[types.NamespacedName]finishedProbe{}}
}

// collect returns, and forgets, signer's finished probe if it was made for generation and
// keySince; one made for an older spec or key is dropped.
func (p *probeRunner) collect(signer types.NamespacedName, generation int64, keySince string) (finishedProbe, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done, ok := p.finished[signer]
	delete(p.finished, signer)
	return done, ok && done.generation == generation && done.keySince == keySince
}

// start runs probe for signer, made for generation and keySince at at, unless one is in flight
// for it already. It reports false when another signer of its namespace has a probe in flight.
// The probe runs under ctx, the controller's: cancelled when the manager stops, not when the
// reconcile returns (no ReconciliationTimeout is set; one would cut probes short).
func (p *probeRunner) start(ctx context.Context, signer types.NamespacedName, generation int64, keySince string, at time.Time,
	probe func(context.Context) dsprobe.Result) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running[signer] {
		return true
	}
	if signer.Namespace != "" {
		if p.busy[signer.Namespace] {
			return false
		}
		p.busy[signer.Namespace] = true
	}
	p.running[signer] = true
	go func() {
		done := finishedProbe{generation: generation, keySince: keySince, at: at, result: probe(ctx)}
		p.mu.Lock()
		delete(p.running, signer)
		if signer.Namespace != "" {
			delete(p.busy, signer.Namespace)
		}
		p.finished[signer] = done
		p.mu.Unlock()
		obj := p.newObject()
		obj.SetNamespace(signer.Namespace)
		obj.SetName(signer.Name)
		select {
		case p.wake <- event.GenericEvent{Object: obj}:
		default: // full: the signer looks again after probeResultWait
		}
	}()
	return true
}

// forget drops signer's finished probe (it is gone, or probes no more).
func (p *probeRunner) forget(signer types.NamespacedName) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.finished, signer)
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
	p.readiness = ready(datasettev1alpha1.ReasonIssued, fmt.Sprintf(
		"Secret %q holds a token for actor %q; the change of %s (its Datasette release or pluginActions) reaches it at %s: "+
			"the renewal floor (%s) spaces its mints", in.want.secretName, in.want.claims.Actor, in.signing.source,
		next.UTC().Format(time.RFC3339), in.floor))
	p.requeueAfter = next.Sub(now)
	if !dates.expiresAt.IsZero() {
		p.requeueAfter = min(p.requeueAfter, untilAfter(now, dates.expiresAt))
	}
	return true
}
