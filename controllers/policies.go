package controllers

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// The decisions of the DatasetteToken controller, as pure functions of what it observed:
// what the spec asks for, whether a Secret is ours, whether to mint and when to renew.

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
)

// desiredToken is what a DatasetteToken asks for, with the controller's defaults applied.
type desiredToken struct {
	// secretName is the output Secret's name.
	secretName string
	// signingKey is the signing Secret's data key.
	signingKey string
	// claims are the token's claims, but for IssuedAt.
	claims dstoken.Claims
	// lifetime is how long a token lasts; zero means forever.
	lifetime time.Duration
	// renewBefore is how long before expiry to re-mint.
	renewBefore time.Duration
}

// desiredFromSpec applies the defaults to a DatasetteToken's spec. Its errors describe specs that
// admission should have refused (a CRD of an older version, say); they are reported as InvalidSpec.
func desiredFromSpec(tok *datasettev1alpha1.DatasetteToken) (desiredToken, error) {
	spec := tok.Spec
	want := desiredToken{
		secretName: spec.SecretName,
		signingKey: spec.SigningSecretRef.Key,
		claims:     dstoken.Claims{Actor: spec.Actor, Restrictions: restrictionsFromSpec(spec.Restrictions)},
	}
	if want.secretName == "" {
		want.secretName = tok.Name
	}
	if want.signingKey == "" {
		want.signingKey = defaultSigningKey
	}
	if spec.Actor == "" {
		return want, fmt.Errorf("spec.actor must not be empty")
	}
	if spec.SigningSecretRef.Name == "" {
		return want, fmt.Errorf("spec.signingSecretRef.name must not be empty")
	}
	if spec.ExpiresAfter != nil {
		want.lifetime = spec.ExpiresAfter.Duration
		if err := wholePositiveSeconds("spec.expiresAfter", want.lifetime); err != nil {
			return want, err
		}
		want.claims.ExpiresAfter = int64(want.lifetime / time.Second)
	}
	switch {
	case spec.RenewBefore == nil:
		// A third of the lifetime, in whole seconds like every time the status reports.
		want.renewBefore = (want.lifetime / 3).Truncate(time.Second)
	case want.lifetime == 0:
		return want, fmt.Errorf("spec.renewBefore needs spec.expiresAfter: a token that never expires is never renewed")
	default:
		want.renewBefore = spec.RenewBefore.Duration
		if err := wholePositiveSeconds("spec.renewBefore", want.renewBefore); err != nil {
			return want, err
		}
		if want.renewBefore >= want.lifetime {
			return want, fmt.Errorf("spec.renewBefore (%s) must be shorter than spec.expiresAfter (%s)", want.renewBefore, want.lifetime)
		}
	}
	return want, nil
}

func wholePositiveSeconds(field string, d time.Duration) error {
	if d <= 0 || d%time.Second != 0 {
		return fmt.Errorf("%s must be a positive whole number of seconds, not %s", field, d)
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

// renewalTime is when a token issued at issuedAt should be replaced; ok is false for a token that
// never expires.
func renewalTime(issuedAt time.Time, want desiredToken) (at time.Time, ok bool) {
	if want.lifetime == 0 {
		return time.Time{}, false
	}
	return issuedAt.Add(want.lifetime - want.renewBefore), true
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
func secretOwnership(secret *corev1.Secret, tok *datasettev1alpha1.DatasetteToken) ownership {
	switch {
	case secret == nil:
		return secretMissing
	case metav1.IsControlledBy(secret, tok):
		return secretOwned
	default:
		return secretForeign
	}
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
	// mintRotation: the token is intact but the signing key changed.
	mintRotation mintReason = "rotation"
	// mintRepair: the token was removed, edited or is not a token at all.
	mintRepair mintReason = "repair"
)

// observedToken is what mintDecision looks at.
type observedToken struct {
	// secretExists is whether the output Secret exists.
	secretExists bool
	// token is the Secret's token, if any.
	token []byte
	// issuedBefore is whether this DatasetteToken's status records an earlier mint.
	issuedBefore bool
}

// mintDecision decides whether the token in an output Secret must be replaced. It mints only when
// the token is missing, does not verify under key, claims other than what want asks for, or its
// renewal time has come. issuedAt is the current token's "t" when there is one.
func mintDecision(seen observedToken, key []byte, want desiredToken, now time.Time) (reason mintReason, issuedAt time.Time) {
	switch {
	case !seen.secretExists && !seen.issuedBefore:
		return mintIssue, time.Time{}
	case !seen.secretExists || len(seen.token) == 0:
		return mintRepair, time.Time{}
	}
	decoded, err := dstoken.Decode(string(seen.token))
	if err != nil {
		return mintRepair, time.Time{}
	}
	issuedAt = time.Unix(decoded.Claims.IssuedAt, 0)
	wantClaims := want.claims
	wantClaims.IssuedAt = decoded.Claims.IssuedAt
	matchesSpec := bytes.Equal(decoded.Payload, wantClaims.PayloadJSON())

	body, _ := strings.CutPrefix(string(seen.token), dstoken.Prefix)
	if _, err := itsdangerous.NewSigner(dstoken.Salt, key).Unsign(body); err != nil {
		if matchesSpec {
			return mintRotation, issuedAt
		}
		return mintRepair, issuedAt
	}
	if !matchesSpec {
		return mintIssue, issuedAt
	}
	if renewAt, ok := renewalTime(issuedAt, want); ok && !now.Before(renewAt) {
		return mintRenewal, issuedAt
	}
	return noMint, issuedAt
}

// secretMetadata is the metadata the operator keeps on an output Secret: its own labels and
// annotations on top of the secretTemplate's. Labels and annotations others add are left alone.
func secretMetadata(tok *datasettev1alpha1.DatasetteToken, want desiredToken, issuedAt time.Time) (labels, annotations map[string]string) {
	labels, annotations = map[string]string{}, map[string]string{}
	if t := tok.Spec.SecretTemplate; t != nil {
		maps.Copy(labels, t.Labels)
		maps.Copy(annotations, t.Annotations)
	}
	labels[managedByLabel] = managedByValue
	annotations[annotationActor] = want.claims.Actor
	annotations[annotationIssuedAt] = issuedAt.UTC().Format(time.RFC3339)
	if want.lifetime != 0 {
		annotations[annotationExpiresAt] = issuedAt.Add(want.lifetime).UTC().Format(time.RFC3339)
	}
	return labels, annotations
}
