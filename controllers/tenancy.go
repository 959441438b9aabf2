package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Tenancy: what keeps one tenant from walking around a signer's policy, from writing faster
// than the renewal floor, and from restarting workloads in a storm.

// policyInvalid says what makes p's actor patterns unusable, or returns "": one is malformed,
// or together they are longer than the CRD allows (a signer admitted by an older CRD).
func policyInvalid(p *datasettev1alpha1.SigningPolicy) string {
	if p == nil || p.Actors == nil {
		return ""
	}
	const unusable = "; nothing is minted with this signer until it is fixed"
	if total := actorPatternBytes(p.Actors); total > datasettev1alpha1.MaxActorPatternBytes {
		return fmt.Sprintf("policy.actors: the patterns, allowed and denied, are %d bytes long together, more than the %d allowed%s",
			total, datasettev1alpha1.MaxActorPatternBytes, unusable)
	}
	for _, list := range []struct {
		field    string
		patterns []datasettev1alpha1.ActorPattern
	}{{"denied", p.Actors.Denied}, {"allowed", p.Actors.Allowed}} {
		for _, pattern := range list.patterns {
			if err := checkActorPattern(string(pattern)); err != nil {
				return fmt.Sprintf("policy.actors.%s: %v%s", list.field, err, unusable)
			}
		}
	}
	return ""
}

// actorPatternBytes is the length in bytes of all of a's patterns, as the CRD's rule counts it.
func actorPatternBytes(a *datasettev1alpha1.ActorPolicy) int {
	total := 0
	for _, list := range [][]datasettev1alpha1.ActorPattern{a.Allowed, a.Denied} {
		for _, pattern := range list {
			total += len(pattern)
		}
	}
	return total
}

// renewalFloor is the shortest time between two renewals of a token signed under settings:
// the operator's floor, or the signer's when larger.
func renewalFloor(operator time.Duration, settings datasettev1alpha1.SignerSettings) time.Duration {
	if p := settings.Policy; p != nil {
		return max(operator, durationOf(p.MinRenewalInterval))
	}
	return operator
}

// renewalTooFrequent says why a token issued with claims would be renewed sooner than floor
// after its issue, or returns "".
func renewalTooFrequent(want desiredToken, claims dstoken.Claims, maxTTL, floor time.Duration) string {
	if floor <= 0 {
		return ""
	}
	dates := want.datesOf(claims, maxTTL)
	if dates.renewAt.IsZero() {
		return ""
	}
	every := dates.renewAt.Sub(time.Unix(claims.IssuedAt, 0))
	if every >= floor {
		return ""
	}
	return fmt.Sprintf("the token would be renewed every %s (its lifetime minus renewBefore), more often than the renewal floor of %s "+
		"(the operator's --min-renewal-interval, or its signer's policy.minRenewalInterval): "+
		"lengthen spec.expiresAfter or shorten spec.renewBefore; nothing is minted",
		every, floor)
}

// deferredMint says until when a renewal or a renew-now request must wait for the renewal
// floor, or zero when it may mint now. A renew-now request is immediate after any other mint;
// one right after a renew-now mint waits until floor after it. Rotations, repairs and issues
// are never deferred.
func deferredMint(tok *datasettev1alpha1.DatasetteToken, reason mintReason, kept dstoken.Comparison, floor time.Duration, now time.Time) time.Time {
	if floor <= 0 || !kept.Canonical {
		return time.Time{}
	}
	next := time.Unix(kept.IssuedAt, 0).Add(floor)
	switch {
	case reason == mintRenewal && now.Before(next):
		return next
	case reason == mintManual && tok.Status.LastMintReason == string(mintManual) && now.Before(next):
		return next
	}
	return time.Time{}
}

// holdRepair keeps, until the renewal floor after its last mint, a token under a signer that
// no longer verifies it but is the token the operator wrote (its actor and issue time): when a
// signer's key source changes (its spec.secretRef names another Secret or key), none of its
// tokens verifies any more, and the key cache knows no previous key to call it a rotation.
// Without this, a tenant flipping its signer between two keys twice a second re-mints every
// token at every flip. It reports whether it held; p becomes "keep the token and the status as
// they are, look again at the floor's end", so that a flip back writes nothing either. A Secret
// that is gone or holds another token, a token never issued, and one whose own spec changed are
// repaired at once.
func holdRepair(in *gathered, p *plan, kept dstoken.Comparison, now time.Time) bool {
	tok := in.token
	if p.mint != mintRepair || in.floor <= 0 || !in.signing.viaSigner || in.secret == nil || kept.Verified ||
		tok.Status.IssuedAt == nil || tok.Status.ObservedGeneration != tok.Generation {
		return false
	}
	issued := tok.Status.IssuedAt.Time
	next := issued.Add(in.floor)
	if !now.Before(next) {
		return false
	}
	token := string(in.secret.Data[tokenKey])
	if d, err := dstoken.Decode(token); err != nil || d.Claims.Actor != in.want.claims.Actor || d.Claims.IssuedAt != issued.Unix() {
		return false // not the token the operator wrote
	}
	claims, ok := in.want.claimsAt(issued)
	if !ok {
		return false
	}
	dates := in.want.datesOf(claims, durationOf(in.signing.settings.MaxSignedTokensTTL))
	if !dates.expiresAt.IsZero() && !now.Before(dates.expiresAt) {
		return false // expired: replace it now
	}
	p.mint, p.claims, p.dates, p.token = noMint, claims, dates, token
	p.restart = restartPending(tok, noMint, issued.Unix())
	p.revocationRemove = in.signing.settings.RevocationPolicy == datasettev1alpha1.RevocationPolicyRemove
	p.readiness = ready(datasettev1alpha1.ReasonIssued, fmt.Sprintf("Secret %q holds a token for actor %q", in.want.secretName, in.want.claims.Actor))
	p.requeueAfter = next.Sub(now)
	if !dates.expiresAt.IsZero() {
		p.requeueAfter = min(p.requeueAfter, untilAfter(now, dates.expiresAt))
	}
	return true
}

// directRefRefusal says why a token may not name secret through spec.signingSecretRef, or
// returns "": every direct reference is refused when the operator is so configured, and a
// Secret that a signer names as its key is always refused, so that no token walks around that
// signer's policy.
func (r *DatasetteTokenReconciler) directRefRefusal(ctx context.Context, secret types.NamespacedName) (string, error) {
	if r.DenySigningSecretRef {
		return fmt.Sprintf("this operator refuses spec.signingSecretRef (--allow-signing-secret-ref=false): "+
			"name a DatasetteSigner or ClusterDatasetteSigner in spec.signerRef instead of Secret %q", secret.Name), nil
	}
	var names []string
	for _, kind := range signerKinds {
		list := kind.newList()
		if err := r.List(ctx, list, client.MatchingFields{indexSignerSecret: secret.String()}, client.UnsafeDisableDeepCopy); err != nil {
			return "", fmt.Errorf("listing the %ss of Secret %s: %w", kind.name, secret, err)
		}
		items, _ := meta.ExtractList(list) // a typed list of client.Objects
		for _, item := range items {
			names = append(names, fmt.Sprintf("%s %q", kind.name, item.(client.Object).GetName()))
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	slices.Sort(names)
	return fmt.Sprintf("Secret %q holds the key of %s: use spec.signerRef to mint with it, under its policy, instead of spec.signingSecretRef",
		secret.Name, strings.Join(names, ", ")), nil
}

// revocationDue reports whether a token that failed with readiness r must lose its token: its
// signer no longer allows it and says revocationPolicy Remove (or, the signer deleted, the
// Secret was written under Remove).
func revocationDue(in *gathered, r readiness) bool {
	s := in.signing
	if !s.viaSigner || secretOwnership(in.secret, in.token) != secretOwned {
		return false
	}
	switch r.reason {
	case datasettev1alpha1.ReasonSignerNotFound:
		return in.secret.Annotations[annotationRevocation] == string(datasettev1alpha1.RevocationPolicyRemove)
	case datasettev1alpha1.ReasonPolicyViolation, datasettev1alpha1.ReasonNamespaceNotAllowed:
		return s.settings.RevocationPolicy == datasettev1alpha1.RevocationPolicyRemove
	case datasettev1alpha1.ReasonSignerNotReady:
		return s.invalidPolicy != "" && s.settings.RevocationPolicy == datasettev1alpha1.RevocationPolicyRemove
	}
	return false
}

// annotationRevocation on an output Secret records its signer's revocationPolicy when Remove,
// so that the token is still removed once the signer itself is deleted.
const annotationRevocation = "datasette.io/revocation-policy"

// revoke deletes a token's owned Secret whose signer no longer allows it.
func (r *DatasetteTokenReconciler) revoke(ctx context.Context, in *gathered, p *plan) error {
	s := in.secret
	if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting Secret %s/%s (revocationPolicy Remove): %w", s.Namespace, s.Name, err)
	}
	r.secretWrites.forget(types.NamespacedName{Namespace: s.Namespace, Name: s.Name})
	p.readiness.message = truncate(p.readiness.message+fmt.Sprintf("; Secret %q was deleted (revocationPolicy Remove)", s.Name), maxNote)
	r.Recorder.Eventf(in.token, nil, corev1.EventTypeWarning, "Revoked", "Revoke", "%s", p.readiness.message)
	return nil
}

// restartGate restarts each rollout restart target at most once per renewal floor, whether a
// token or a signer restarts it: a later restart is deferred to the end of that interval (and
// then done once, for the token or key current then). It remembers, in memory, when each
// workload was last restarted; a nil gate defers nothing.
type restartGate struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// maxRestartRecords bounds the gate's memory; past it, records older than the floor go.
const maxRestartRecords = 1 << 14

func targetKey(ns string, t datasettev1alpha1.RolloutRestartTarget) string {
	return ns + "/" + t.Kind + "/" + t.Name
}

// wait is how long the targets must wait before they may be restarted; zero when now.
func (g *restartGate) wait(ns string, targets []datasettev1alpha1.RolloutRestartTarget, floor time.Duration, now time.Time) time.Duration {
	if g == nil || floor <= 0 {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var wait time.Duration
	for _, t := range targets {
		if last, ok := g.last[targetKey(ns, t)]; ok {
			wait = max(wait, last.Add(floor).Sub(now))
		}
	}
	return wait
}

// restarted records that the targets were restarted at now.
func (g *restartGate) restarted(ns string, targets []datasettev1alpha1.RolloutRestartTarget, floor time.Duration, now time.Time) {
	if g == nil || floor <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = map[string]time.Time{}
	}
	if len(g.last) >= maxRestartRecords {
		for k, t := range g.last {
			if now.Sub(t) >= floor {
				delete(g.last, k)
			}
		}
	}
	for _, t := range targets {
		g.last[targetKey(ns, t)] = now
	}
}

// deferRestart records that the restart for the token issued at issuedAt waits until at.
func deferRestart(tok *datasettev1alpha1.DatasetteToken, conditions *[]metav1.Condition, issuedAt, at time.Time) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type: datasettev1alpha1.ConditionRestartTargetsReady, Status: metav1.ConditionFalse, Reason: datasettev1alpha1.ReasonRestartDeferred,
		ObservedGeneration: tok.Generation,
		Message: fmt.Sprintf("the token issued at %s reaches the rollout restart targets at %s: each is restarted at most once per renewal floor",
			issuedAt.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339)),
	})
}

// restartPending reports whether the rollout restart targets run an older token than the one
// issued at issuedAt. Nothing is restarted at the first issue.
func restartPending(tok *datasettev1alpha1.DatasetteToken, mint mintReason, issuedAt int64) bool {
	st := tok.Status
	if st.IssuedAt == nil || issuedAt == 0 {
		return false
	}
	done := st.RestartedFor
	if done == nil {
		done = st.IssuedAt // written before restartedFor existed: the targets were restarted for it
	}
	return mint != noMint || done.Unix() != issuedAt
}

// tokensNamingSignerSecret maps a signer to the DatasetteTokens that name its Secret through
// spec.signingSecretRef: a new signer refuses them, a deleted one may let them mint again.
func (r *DatasetteTokenReconciler) tokensNamingSignerSecret(ctx context.Context, signer client.Object) []ctrl.Request {
	var secret types.NamespacedName
	switch s := signer.(type) {
	case *datasettev1alpha1.DatasetteSigner:
		secret, _ = signerKinds[0].secretOf(s)
	case *datasettev1alpha1.ClusterDatasetteSigner:
		secret, _ = signerKinds[1].secretOf(s)
	default:
		return nil
	}
	return r.tokenRequests(ctx, signer, client.InNamespace(secret.Namespace), client.MatchingFields{indexSigningSecret: secret.Name})
}

// unversionedRecorder records events about an object without its resourceVersion, so that the
// same event about the same object aggregates into one series however often the object changes.
type unversionedRecorder struct {
	events.EventRecorder
	scheme *runtime.Scheme
}

// Eventf records an event regarding a reference to regarding that carries no resourceVersion.
func (u unversionedRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	u.EventRecorder.Eventf(unversioned(regarding, u.scheme), related, eventtype, reason, action, note, args...)
}

// unversioned returns a reference object for obj without its resourceVersion.
func unversioned(obj runtime.Object, scheme *runtime.Scheme) runtime.Object {
	o, ok := obj.(client.Object)
	if !ok || o.GetResourceVersion() == "" {
		return obj
	}
	gvk, err := apiutil.GVKForObject(o, scheme)
	if err != nil {
		return obj
	}
	ref := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: o.GetNamespace(), Name: o.GetName(), UID: o.GetUID()}}
	ref.SetGroupVersionKind(gvk)
	return ref
}

// overBudgetMessage explains a signing key the key cache may not hold.
func overBudgetMessage(keyName, secret string) string {
	return fmt.Sprintf("the key %q of Secret %s cannot be held: the operator's key cache is at its cap for that Secret "+
		"(--key-cache-secret-bytes), for its namespace (a sixteenth of --key-cache-bytes) or in all (--key-cache-bytes); "+
		"use fewer signing keys per Secret, or ask the operator's administrators to raise the caps",
		keyName, secret)
}

// bulkFanOut enqueues the DatasetteTokens that an event on another object concerns (a Secret, a
// signer, a namespace). When it concerns more than one, they go at low priority: bulk work of
// one tenant (a thousand tokens waking up when their Secret appears or rotates) then waits behind
// every other tenant's new or edited DatasetteToken, which the queue serves first.
type bulkFanOut struct {
	toRequests handler.MapFunc
}

// lowPriorityFanOut returns the event handler of a fan-out.
func lowPriorityFanOut(fn handler.MapFunc) handler.EventHandler { return bulkFanOut{toRequests: fn} }

func (b bulkFanOut) enqueue(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
	seen := map[reconcile.Request]bool{}
	var reqs []reconcile.Request
	for _, o := range objs {
		if o == nil {
			continue
		}
		for _, req := range b.toRequests(ctx, o) {
			if !seen[req] {
				seen[req] = true
				reqs = append(reqs, req)
			}
		}
	}
	pq, isPriority := q.(priorityqueue.PriorityQueue[reconcile.Request])
	for _, req := range reqs {
		if isPriority && len(reqs) > 1 {
			pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(handler.LowPriority)}, req)
		} else {
			q.Add(req)
		}
	}
}

// Create enqueues the tokens the new object concerns.
func (b bulkFanOut) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.enqueue(ctx, q, e.Object)
}

// Update enqueues the tokens the object concerned and concerns.
func (b bulkFanOut) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.enqueue(ctx, q, e.ObjectOld, e.ObjectNew)
}

// Delete enqueues the tokens the object concerned.
func (b bulkFanOut) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.enqueue(ctx, q, e.Object)
}

// Generic enqueues the tokens the object concerns.
func (b bulkFanOut) Generic(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.enqueue(ctx, q, e.Object)
}

// scheduled is the result of a reconcile that looks again after d (zero: never): at low
// priority, as scheduled work (a renewal has renewBefore to spare) that waits behind new and
// edited DatasetteTokens.
func scheduled(d time.Duration) reconcile.Result {
	if d <= 0 {
		return reconcile.Result{}
	}
	return reconcile.Result{RequeueAfter: d, Priority: ptr.To(handler.LowPriority)}
}
