package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// The pure parts of the DatasetteToken controller's decisions: what a spec asks for, when a
// token expires and is renewed, whose a Secret is, and what a signer's policy allows.

const (
	// defaultSigningKey is the signing Secret's key read when the spec names none: the variable
	// Datasette itself reads, so one Secret can feed both.
	defaultSigningKey = "DATASETTE_SECRET"
	// tokenKey is the output Secret's data key that holds the token.
	tokenKey = "token"

	// managedByLabel marks the Secrets the operator writes; its cache holds no other Secret.
	managedByLabel = "app.kubernetes.io/managed-by"
	// managedByValue is managedByLabel's value on the operator's Secrets.
	managedByValue = "datasette-token-operator"

	annotationActor     = "datasette.io/actor"
	annotationIssuedAt  = "datasette.io/issued-at"
	annotationExpiresAt = "datasette.io/expires-at"
	// annotationTemplateKeys records which labels and annotations came from secretTemplate, so
	// that keys removed from the template are removed from the Secret and others' keys stay.
	annotationTemplateKeys = "datasette.io/template-keys"
	// annotationRestartedAt on a workload's pod template rolls it, as `kubectl rollout restart`.
	annotationRestartedAt = "datasette.io/restartedAt"
)

// maxRenewRequestRecord is the longest renew-requested-at value status.lastRenewRequest keeps
// as it is (a timestamp, as `kubectl datasette renew` writes, is 20 or so); a longer one is
// recorded by its digest, so that a tenant's 250 KiB annotation does not double its object.
const maxRenewRequestRecord = 64

// renewRequestRecord is what status.lastRenewRequest records for a renew-requested-at value:
// the value, or "sha256:" and its digest when it is longer than maxRenewRequestRecord.
func renewRequestRecord(value string) string {
	if len(value) <= maxRenewRequestRecord {
		return value
	}
	sum := sha256.Sum256([]byte(value))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// renewRequestPending reports whether tok's renew-requested-at annotation asks for a renewal
// that its status does not record as served. A record written whole before the digest existed
// still counts as served.
func renewRequestPending(tok *datasettev1alpha1.DatasetteToken) bool {
	req, last := tok.Annotations[datasettev1alpha1.AnnotationRenewRequestedAt], tok.Status.LastRenewRequest
	return req != "" && req != last && renewRequestRecord(req) != last
}

// desiredToken is what a DatasetteToken's spec asks for, with the controller's defaults applied.
type desiredToken struct {
	// secretName is the output Secret's name.
	secretName string
	// claims are the token's claims, but for IssuedAt; ExpiresAfter is the spec's.
	claims dstoken.Claims
	// lifetime is spec.expiresAfter; zero means none.
	lifetime time.Duration
	// renewBefore is spec.renewBefore; zero means the default (a third of the lifetime).
	renewBefore time.Duration
	// notAfter is spec.notAfter; zero means none.
	notAfter time.Time
	// labels and annotations are spec.secretTemplate's.
	labels, annotations map[string]string
}

// desiredFromSpec applies the defaults to a DatasetteToken's spec. Its errors describe specs that
// admission should have refused (a CRD of an older version, say); they are reported as InvalidSpec.
func desiredFromSpec(tok *datasettev1alpha1.DatasetteToken) (desiredToken, error) {
	spec := tok.Spec
	want := desiredToken{
		secretName: spec.SecretName,
		claims:     dstoken.Claims{Actor: spec.Actor, Restrictions: restrictionsFromSpec(spec.Restrictions)},
	}
	if want.secretName == "" {
		want.secretName = tok.Name
	}
	if spec.Actor == "" {
		return want, fmt.Errorf("spec.actor must not be empty")
	}
	if (spec.SigningSecretRef == nil) == (spec.SignerRef == nil) {
		return want, fmt.Errorf("set exactly one of spec.signerRef and spec.signingSecretRef")
	}
	if spec.ExpiresAfter != nil {
		want.lifetime = spec.ExpiresAfter.Duration
		if err := wholePositiveSeconds("spec.expiresAfter", want.lifetime); err != nil {
			return want, err
		}
		want.claims.ExpiresAfter = int64(want.lifetime / time.Second)
	}
	if spec.RenewBefore != nil {
		want.renewBefore = spec.RenewBefore.Duration
		if err := wholePositiveSeconds("spec.renewBefore", want.renewBefore); err != nil {
			return want, err
		}
		if want.lifetime == 0 || want.renewBefore >= want.lifetime {
			return want, fmt.Errorf("spec.renewBefore (%s) must be shorter than spec.expiresAfter", want.renewBefore)
		}
	}
	if spec.NotAfter != nil {
		want.notAfter = spec.NotAfter.Time
	}
	if t := spec.SecretTemplate; t != nil {
		want.labels, want.annotations = map[string]string{}, map[string]string{}
		for k, v := range t.Labels {
			want.labels[k] = string(v)
		}
		for k, v := range t.Annotations {
			want.annotations[k] = string(v)
		}
		errs := metavalidation.ValidateLabels(want.labels, field.NewPath("spec", "secretTemplate", "labels"))
		errs = append(errs, apivalidation.ValidateAnnotations(want.annotations, field.NewPath("spec", "secretTemplate", "annotations"))...)
		if err := errs.ToAggregate(); err != nil {
			return want, err
		}
	}
	return want, nil
}

func wholePositiveSeconds(name string, d time.Duration) error {
	if d <= 0 || d%time.Second != 0 {
		return fmt.Errorf("%s must be a positive whole number of seconds, not %s", name, d)
	}
	return nil
}

// restrictionsFromSpec maps the API's restrictions onto the token library's, in order.
func restrictionsFromSpec(in *datasettev1alpha1.Restrictions) dstoken.Restrictions {
	var out dstoken.Restrictions
	if in == nil {
		return out
	}
	out.All = actionNames(in.All)
	for _, d := range in.Databases {
		out.Databases = append(out.Databases, dstoken.DatabaseActions{Database: d.Name, Actions: actionNames(d.Actions)})
	}
	for _, r := range in.Resources {
		out.Resources = append(out.Resources, dstoken.ResourceActions{Database: r.Database, Resource: r.Resource, Actions: actionNames(r.Actions)})
	}
	return out
}

func actionNames(actions []datasettev1alpha1.Action) []string {
	if len(actions) == 0 {
		return nil
	}
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = string(a)
	}
	return out
}

// claimsAt returns the claims of a token issued at t: the spec's, with "d" shortened so that the
// token ends at notAfter, in whole seconds. ok is false when notAfter has come (nothing may be
// minted at t).
func (w desiredToken) claimsAt(t time.Time) (c dstoken.Claims, ok bool) {
	c = w.claims
	c.IssuedAt = t.Unix()
	if w.notAfter.IsZero() {
		return c, true
	}
	left := int64(w.notAfter.Sub(time.Unix(c.IssuedAt, 0)) / time.Second)
	if left <= 0 {
		return c, false
	}
	if c.ExpiresAfter == 0 || c.ExpiresAfter > left {
		c.ExpiresAfter = left
	}
	return c, true
}

// effectiveLifetime is how long Datasette accepts a token whose "d" is expiresAfter seconds
// (0: no "d") on an instance whose max_signed_tokens_ttl is maxTTL (0: none), as its
// verify_token computes it: an absent "d", or one longer than the maximum, becomes the maximum.
// Zero means the token never expires.
func effectiveLifetime(expiresAfter int64, maxTTL time.Duration) time.Duration {
	d := time.Duration(expiresAfter) * time.Second
	if maxTTL > 0 && (d == 0 || d > maxTTL) {
		return maxTTL
	}
	return d
}

// tokenDates are when a token expires and when the operator replaces it.
type tokenDates struct {
	// expiresAt is zero for a token that never expires.
	expiresAt time.Time
	// renewAt is zero when the token is never renewed: it never expires, or it runs to notAfter.
	renewAt time.Time
}

// datesOf computes a token's dates from the claims it was minted with (issued at c.IssuedAt).
func (w desiredToken) datesOf(c dstoken.Claims, maxTTL time.Duration) tokenDates {
	lifetime := effectiveLifetime(c.ExpiresAfter, maxTTL)
	if lifetime == 0 {
		return tokenDates{}
	}
	issued := time.Unix(c.IssuedAt, 0)
	dates := tokenDates{expiresAt: issued.Add(lifetime)}
	if !w.notAfter.IsZero() && !dates.expiresAt.Before(w.notAfter.Truncate(time.Second)) {
		return dates // the last token: it runs to notAfter
	}
	renewBefore := w.renewBefore
	if renewBefore == 0 || renewBefore >= lifetime {
		// A third of the lifetime, in whole seconds like every time the status reports.
		renewBefore = (lifetime / 3).Truncate(time.Second)
	}
	dates.renewAt = dates.expiresAt.Add(-renewBefore)
	return dates
}

// ownership says whose a Secret is.
type ownership int

const (
	// secretMissing: there is no Secret of that name.
	secretMissing ownership = iota
	// secretOwned: the Secret is controlled by this DatasetteToken.
	secretOwned
	// secretForeign: the Secret belongs to someone else, and is never written.
	secretForeign
)

// secretOwnership says whether secret is ours to write: only a Secret whose controller owner
// reference is this DatasetteToken is.
func secretOwnership(secret *corev1.Secret, tok metav1.Object) ownership {
	switch {
	case secret == nil:
		return secretMissing
	case metav1.IsControlledBy(secret, tok):
		return secretOwned
	default:
		return secretForeign
	}
}

// policyViolation checks claims against a signer's policy and returns what breaks it, naming
// the rule, the value and the signer, or "" when the policy allows them. lifetime is the
// spec's expiresAfter (zero: none).
func policyViolation(p *datasettev1alpha1.SigningPolicy, signer string, claims dstoken.Claims, lifetime time.Duration) string {
	if p == nil {
		return ""
	}
	if a := p.Actors; a != nil {
		for _, pattern := range a.Denied {
			if ok, err := actorMatch(string(pattern), claims.Actor); ok || err != nil { // fail closed
				return fmt.Sprintf("actor %q is denied by %s (pattern %q)", claims.Actor, signer, pattern)
			}
		}
		if len(a.Allowed) > 0 && !slices.ContainsFunc(a.Allowed, func(p datasettev1alpha1.ActorPattern) bool {
			ok, err := actorMatch(string(p), claims.Actor)
			return ok && err == nil
		}) {
			return fmt.Sprintf("actor %q is not allowed by %s", claims.Actor, signer)
		}
	}
	if p.MaxExpiresAfter != nil {
		limit := p.MaxExpiresAfter.Duration
		switch {
		case lifetime == 0:
			return fmt.Sprintf("%s requires expiresAfter (at most %s); the token never expires", signer, limit)
		case lifetime > limit:
			return fmt.Sprintf("expiresAfter %s is longer than %s allows (%s)", lifetime, signer, limit)
		}
	}
	if p.RequireRestrictions && claims.Restrictions.IsZero() {
		return fmt.Sprintf("%s requires restrictions; the token has none", signer)
	}
	if len(p.AllowedActions) > 0 && claims.Restrictions.IsZero() {
		// A token without restrictions may do anything its actor may: more than any list allows.
		return fmt.Sprintf("%s allows only the actions of its policy.allowedActions; the token has no restrictions, so it could do anything: "+
			"list the actions it needs in spec.restrictions", signer)
	}
	if len(p.AllowedActions) > 0 {
		for _, action := range claims.Restrictions.Actions() {
			if !slices.Contains(p.AllowedActions, datasettev1alpha1.Action(action)) {
				return fmt.Sprintf("action %q is not allowed by %s", action, signer)
			}
		}
	}
	return ""
}
