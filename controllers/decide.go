package controllers

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// gathered is everything Reconcile read for one DatasetteToken. decide turns it into a plan
// without any API call; apply carries the plan out.
type gathered struct {
	// token is the DatasetteToken.
	token *datasettev1alpha1.DatasetteToken
	// want is what its spec asks for; specErr says why it cannot be served as it is.
	want    desiredToken
	specErr error
	// signing is where the key comes from, and what was found there.
	signing signingFacts
	// secret is the output Secret as the operator's cache keeps it (trimmed), nil when missing.
	secret *corev1.Secret
	// staleSecret is an owned Secret left under an earlier secretName, nil when none.
	staleSecret *corev1.Secret
	// floor is the renewal floor: the shortest time between two renewals (zero: none).
	floor time.Duration
	// restartWait is how long the restart gate holds the token's rollout restart targets (zero:
	// they may be restarted now).
	restartWait time.Duration
}

// signingFacts are what gather found out about the token's signing key.
type signingFacts struct {
	// source names where the key comes from, for messages: `Secret "datasette"`,
	// `ClusterDatasetteSigner "prod"`.
	source string
	// viaSigner: the token names a signer (else a signing Secret).
	viaSigner bool
	// signerFound, namespaceAllowed and settings describe the signer, when viaSigner.
	signerFound      bool
	namespaceAllowed bool
	settings         datasettev1alpha1.SignerSettings
	// secret and keyName say which Secret key holds the key.
	secret  string
	keyName string
	// key is what the key cache found.
	key keyLookup
	// release is the signer's Datasette release (see SignerRelease; nil: the newest), or
	// releaseErr why it cannot be served.
	release    *dstoken.Profile
	releaseErr error
	// unreadableRelease is the release the signer's instance reported when the operator cannot
	// read it ("" when none): restrictions are then not minted, for lack of a release known to
	// enforce them.
	unreadableRelease string
	// refusedRef says why spec.signingSecretRef may not be used ("" when it may).
	refusedRef string
	// invalidPolicy names the signer's malformed actor pattern ("" when none).
	invalidPolicy string
	// probed: the signer has spec.probe; instance is what its probe learned (nil: nothing).
	probed   bool
	instance *datasettev1alpha1.InstanceStatus
}

// mintReason says why a token is minted; it labels the mint counter and the events.
type mintReason string

const (
	// noMint: the current token is valid, current and matches the spec.
	noMint mintReason = ""
	// mintIssue: there is no token yet, or the spec asks for other claims.
	mintIssue mintReason = "issue"
	// mintRenewal: the renewal time has come.
	mintRenewal mintReason = "renewal"
	// mintRotation: the token was signed with the previous key.
	mintRotation mintReason = "rotation"
	// mintRepair: the token was removed, edited, is not byte for byte a token the operator would
	// mint, or does not verify under any key the operator knows.
	mintRepair mintReason = "repair"
	// mintManual: the renew-requested-at annotation has a new value.
	mintManual mintReason = "manual"
)

// plan is what reconciling one DatasetteToken should do.
type plan struct {
	// readiness is the Ready condition to record.
	readiness readiness
	// mint says why a new token is minted, or noMint.
	mint mintReason
	// token is the token the Secret must hold (new or kept); "" means the Secret is not written.
	token string
	// claims are token's claims; dates are its dates.
	claims dstoken.Claims
	dates  tokenDates
	// restart says whether to restart the rollout targets for token.
	restart bool
	// renewRequest is the renew-requested-at value handled, recorded in the status.
	renewRequest string
	// requeueAfter is when to look again (renewal, expiry, notAfter); zero for never.
	requeueAfter time.Duration
	// release is the Datasette release the token is minted for (nil: the newest).
	release *dstoken.Profile
	// revoke: delete the owned Secret, whose signer no longer allows the token.
	revoke bool
	// revocationRemove: the signer's revocationPolicy is Remove (recorded on the Secret).
	revocationRemove bool
	// restartAt is when the restart decided (restart) may be done, deferred by the restart gate
	// (zero: now).
	restartAt time.Time
}

// decide is the DatasetteToken controller's decision, a pure function of what was gathered and
// the time: what the signer's instance and release make of the token's signing settings, the
// Ready condition, whether and why to mint, what the Secret must hold, and whether the rollout
// restart targets are restarted now or later. A newer key that the renewal floor holds back
// brings the token back when it takes effect, as does a deferred restart.
func decide(gatheredIn *gathered, now time.Time) plan {
	in := *gatheredIn // the facts stay as gathered: what follows from them is decide's
	applyInstance(&in)
	applyRelease(&in)
	p := decideToken(&in, now)
	wake := func(at time.Time) {
		if wait := max(at.Sub(now), time.Second); p.requeueAfter == 0 || wait < p.requeueAfter {
			p.requeueAfter = wait
		}
	}
	if held := in.signing.key.heldUntil; !held.IsZero() {
		wake(held)
	}
	if p.restart && len(in.token.Spec.RolloutRestartTargets) > 0 && in.restartWait > 0 {
		p.restartAt = now.Add(in.restartWait)
		wake(p.restartAt)
	}
	return p
}

// decideToken is decide for the key as it is now.
func decideToken(in *gathered, now time.Time) plan {
	tok := in.token
	p := plan{renewRequest: renewRequestRecord(tok.Status.LastRenewRequest), release: in.signing.release}
	if in.specErr != nil {
		p.readiness = notReady(stalled, datasettev1alpha1.ReasonInvalidSpec, in.specErr.Error())
		return p
	}
	if r, ok := signingFailure(in); !ok {
		if k := in.signing.key; k.minter == nil && k.secretFound && !k.heldUntil.IsZero() {
			r = notReady(waiting, r.reason, r.message+heldNote(in.floor, k.heldUntil)) // the held value comes by itself
		}
		p.readiness, p.revoke = r, revocationDue(in, r)
		return p
	}
	if r, ok := instanceFailure(in); !ok {
		p.readiness = r
		return p
	}
	if secretOwnership(in.secret, tok) == secretForeign {
		p.readiness = notReady(stalled, datasettev1alpha1.ReasonSecretConflict, fmt.Sprintf(
			"Secret %q exists and is not owned by this DatasetteToken; choose another spec.secretName or delete that Secret", in.want.secretName))
		return p
	}

	want, minter := in.want, in.signing.key.minter
	maxTTL := durationOf(in.signing.settings.MaxSignedTokensTTL)
	kept := keptToken(in, minter)
	if kept.Canonical {
		p.claims, _ = want.claimsAt(time.Unix(kept.IssuedAt, 0))
		p.dates = want.datesOf(p.claims, maxTTL)
	}
	keptValid := kept.Canonical && (p.dates.expiresAt.IsZero() || now.Before(p.dates.expiresAt))

	if tok.Spec.Suspend {
		p.requeueAfter = untilAfter(now, p.dates.expiresAt)
		if keptValid {
			p.readiness = ready(datasettev1alpha1.ReasonSuspended,
				fmt.Sprintf("suspended: nothing is minted; the token in Secret %q stays valid until it expires", want.secretName))
		} else {
			// Stalled, not merely False: kstatus reads Ready=False alone as InProgress forever.
			p.readiness = notReady(stalled, datasettev1alpha1.ReasonSuspended, fmt.Sprintf(
				"suspended: nothing is minted, and Secret %q holds no valid token for the spec; unset spec.suspend to resume", want.secretName))
		}
		return p
	}
	claims, mintable := want.claimsAt(now)
	if msg := renewalTooFrequent(want, claims, maxTTL, in.floor); mintable && msg != "" {
		p.readiness = notReady(stalled, datasettev1alpha1.ReasonRenewalTooFrequent, msg)
		return p
	}
	if !mintable {
		// Stalled, not merely False: kstatus reads Ready=False alone as InProgress forever.
		p.readiness = notReady(stalled, datasettev1alpha1.ReasonEnded, fmt.Sprintf(
			"spec.notAfter (%s) has passed: no token is minted any more; delete the DatasetteToken or move spec.notAfter",
			want.notAfter.UTC().Format(time.RFC3339)))
		return p
	}

	p.mint = mintDecision(in, kept, p.dates, now)
	if holdForRotation(in, &p, kept, now) || holdSignerChange(in, &p, kept, now) || holdRepair(in, &p, kept, now) {
		return p
	}
	var deferredUntil time.Time
	if until := deferredMint(tok, p.mint, kept, in.floor, now); !until.IsZero() {
		p.mint, p.requeueAfter, deferredUntil = noMint, until.Sub(now), until
	}
	if p.mint == mintManual && kept.IssuedAt == now.Unix() {
		// A token minted in the same second would be the same token: renew in the next one.
		p.mint, p.requeueAfter = noMint, time.Unix(now.Unix()+1, 0).Sub(now)
	}
	if p.mint == noMint {
		p.token = string(in.secret.Data[tokenKey])
	} else {
		token, err := minter.MintChecked(claims)
		if err != nil {
			p.readiness = notReady(stalled, datasettev1alpha1.ReasonInvalidSpec, tooLargeMessage(err))
			p.mint = noMint
			return p
		}
		p.token, p.claims = token, claims
		p.dates = want.datesOf(claims, maxTTL)
		p.renewRequest = renewRequestRecord(tok.Annotations[datasettev1alpha1.AnnotationRenewRequestedAt])
	}
	// Restart the targets whenever the token differs from the one the status last recorded
	// (not at the first issue): also when a previous reconcile wrote the Secret but failed
	// before its status.
	p.restart = restartPending(tok, p.mint, p.claims.IssuedAt)
	p.revocationRemove = in.signing.settings.RevocationPolicy == datasettev1alpha1.RevocationPolicyRemove
	p.readiness = ready(datasettev1alpha1.ReasonIssued, fmt.Sprintf("Secret %q holds a token for actor %q", want.secretName, want.claims.Actor))
	if !deferredUntil.IsZero() {
		p.readiness.message += fmt.Sprintf("; the renewal requested waits for the renewal floor (%s) until %s", in.floor, deferredUntil.UTC().Format(time.RFC3339))
		if !p.dates.renewAt.IsZero() {
			p.requeueAfter = min(p.requeueAfter, max(p.dates.renewAt.Sub(now), time.Second))
		}
	}
	switch {
	case p.requeueAfter > 0: // a renewal requested in the second of the last mint, or deferred
	case !p.dates.renewAt.IsZero():
		p.requeueAfter = max(p.dates.renewAt.Sub(now), time.Second)
	case !want.notAfter.IsZero():
		p.requeueAfter = untilAfter(now, want.notAfter)
	}
	return p
}

// unreadableWhy says why the operator may not read a Secret.
const unreadableWhy = "its namespace is outside --watch-namespaces, or the operator's RBAC forbids it"

// signingFailure says why the token cannot be signed, if it cannot: ok is false then.
func signingFailure(in *gathered) (r readiness, ok bool) {
	s := in.signing
	switch {
	case s.refusedRef != "":
		return notReady(stalled, datasettev1alpha1.ReasonPolicyViolation, s.refusedRef), false
	case s.viaSigner && !s.signerFound:
		return notReady(waiting, datasettev1alpha1.ReasonSignerNotFound, fmt.Sprintf("%s not found", s.source)), false
	case s.viaSigner && !s.namespaceAllowed:
		return notReady(stalled, datasettev1alpha1.ReasonNamespaceNotAllowed, fmt.Sprintf(
			"%s does not select namespace %q (its spec.namespaceSelector)", s.source, in.token.Namespace)), false
	}
	if s.invalidPolicy != "" {
		return notReady(stalled, datasettev1alpha1.ReasonSignerNotReady, fmt.Sprintf("%s: %s", s.source, s.invalidPolicy)), false
	}
	if msg := policyViolation(s.settings.Policy, s.source, in.want.claims, in.want.lifetime); msg != "" {
		return notReady(stalled, datasettev1alpha1.ReasonPolicyViolation, msg), false
	}
	if r, ok := releaseFailure(in); !ok {
		return r, false
	}
	switch {
	case s.key.oversized && s.viaSigner:
		return notReady(stalled, datasettev1alpha1.ReasonSignerNotReady, fmt.Sprintf(
			"%s: the key %q of its Secret %s is longer than %d bytes", s.source, s.keyName, s.secret, maxKeySize)), false
	case s.key.oversized:
		return notReady(stalled, datasettev1alpha1.ReasonSigningKeyMissing, fmt.Sprintf(
			"the key %q of signing Secret %s is longer than %d bytes", s.keyName, s.secret, maxKeySize)), false
	case s.key.overBudget && s.viaSigner:
		return notReady(stalled, datasettev1alpha1.ReasonSignerNotReady, fmt.Sprintf("%s: %s", s.source, overBudgetMessage(s.keyName, s.secret))), false
	case s.key.overBudget:
		return notReady(stalled, datasettev1alpha1.ReasonSigningKeyMissing, overBudgetMessage(s.keyName, s.secret)), false
	case s.key.unreadable && s.viaSigner:
		return notReady(stalled, datasettev1alpha1.ReasonSignerNotReady,
			fmt.Sprintf("%s: the operator may not read its Secret %s (%s)", s.source, s.secret, unreadableWhy)), false
	case s.key.unreadable:
		return notReady(stalled, datasettev1alpha1.ReasonSigningKeyMissing,
			fmt.Sprintf("the operator may not read signing Secret %s (%s)", s.secret, unreadableWhy)), false
	case !s.key.secretFound && s.viaSigner:
		return notReady(waiting, datasettev1alpha1.ReasonSignerNotReady, fmt.Sprintf("%s: its Secret %s is not found", s.source, s.secret)), false
	case !s.key.secretFound:
		return notReady(waiting, datasettev1alpha1.ReasonSigningSecretNotFound, fmt.Sprintf("signing Secret %s not found", s.secret)), false
	case s.key.minter == nil && s.viaSigner:
		return notReady(stalled, datasettev1alpha1.ReasonSignerNotReady,
			fmt.Sprintf("%s: its Secret %s has no key %q, or it is empty", s.source, s.secret, s.keyName)), false
	case s.key.minter == nil:
		return notReady(stalled, datasettev1alpha1.ReasonSigningKeyMissing,
			fmt.Sprintf("signing Secret %s has no key %q, or it is empty", s.secret, s.keyName)), false
	}
	return readiness{}, true
}

// keptToken compares the token in the output Secret with the one the spec asks for, at the
// token's own issue time: verified first, decoded only when it verified.
func keptToken(in *gathered, minter *dstoken.Minter) dstoken.Comparison {
	if in.secret == nil || len(in.secret.Data[tokenKey]) == 0 {
		return dstoken.Comparison{KeyIndex: -1}
	}
	token := string(in.secret.Data[tokenKey])
	cmp := minter.Compare(token, in.want.claims)
	if cmp.Verified && !in.want.notAfter.IsZero() {
		// With notAfter, "d" depends on the issue time: compare with the claims the token should
		// have had at its own, so that a notAfter added or moved earlier shortens it.
		if c, ok := in.want.claimsAt(time.Unix(cmp.IssuedAt, 0)); ok {
			cmp = minter.Compare(token, c)
		}
	}
	return cmp
}

// mintDecision says why the kept token must be replaced, or noMint. It mints only when the
// token is missing, is not byte for byte what the operator would mint for the spec with the
// current key, its renewal time has come, or a new renewal was requested.
func mintDecision(in *gathered, kept dstoken.Comparison, dates tokenDates, now time.Time) mintReason {
	tok := in.token
	switch {
	case in.secret == nil && tok.Status.IssuedAt == nil:
		return mintIssue
	case in.secret == nil, !kept.Verified:
		return mintRepair
	case kept.KeyIndex > 0:
		return mintRotation
	case !kept.SameClaims:
		return mintIssue
	case !kept.Canonical:
		return mintRepair
	case !dates.renewAt.IsZero() && !now.Before(dates.renewAt):
		return mintRenewal
	}
	if renewRequestPending(tok) {
		return mintManual
	}
	return noMint
}

// tooLargeMessage explains a spec whose token would not fit.
func tooLargeMessage(err error) string {
	if errors.Is(err, dstoken.ErrTooLarge) {
		return fmt.Sprintf("the token would be too large for a Secret (%v): list fewer or shorter restrictions", err)
	}
	return err.Error()
}

// untilAfter is how long from now until t has passed (at least a second); zero when t is zero.
func untilAfter(now, t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return max(t.Sub(now)+time.Second, time.Second)
}

// mintEventReason names the event for a mint: Issued, Renewed or Reminted.
func mintEventReason(reason mintReason) string {
	switch reason {
	case mintRenewal, mintManual:
		return "Renewed"
	case mintRotation, mintRepair:
		return "Reminted"
	default:
		return "Issued"
	}
}
