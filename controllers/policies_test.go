package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func TestDesiredFromSpec(t *testing.T) {
	base := func(mutate func(*datasettev1alpha1.DatasetteTokenSpec)) *datasettev1alpha1.DatasetteToken {
		tok := &datasettev1alpha1.DatasetteToken{
			ObjectMeta: metav1.ObjectMeta{Name: "tok"},
			Spec:       datasettev1alpha1.DatasetteTokenSpec{Actor: "bot", SigningSecretRef: datasettev1alpha1.SecretKeyRef{Name: "ds"}},
		}
		mutate(&tok.Spec)
		return tok
	}
	tests := []struct {
		name        string
		tok         *datasettev1alpha1.DatasetteToken
		secretName  string
		signingKey  string
		lifetime    time.Duration
		renewBefore time.Duration
		err         string
	}{
		{name: "defaults", tok: base(func(*datasettev1alpha1.DatasetteTokenSpec) {}),
			secretName: "tok", signingKey: "DATASETTE_SECRET"},
		{name: "explicit names", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretName, s.SigningSecretRef.Key = "out", "KEY"
		}), secretName: "out", signingKey: "KEY"},
		{name: "renew at two thirds by default", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(24 * time.Hour) }),
			secretName: "tok", signingKey: "DATASETTE_SECRET", lifetime: 24 * time.Hour, renewBefore: 8 * time.Hour},
		{name: "a third in whole seconds", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(100 * time.Second) }),
			secretName: "tok", signingKey: "DATASETTE_SECRET", lifetime: 100 * time.Second, renewBefore: 33 * time.Second},
		{name: "explicit renewBefore", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.ExpiresAfter, s.RenewBefore = duration(time.Hour), duration(time.Minute)
		}), secretName: "tok", signingKey: "DATASETTE_SECRET", lifetime: time.Hour, renewBefore: time.Minute},
		{name: "renewBefore not shorter", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.ExpiresAfter, s.RenewBefore = duration(time.Hour), duration(time.Hour)
		}), err: "must be shorter than spec.expiresAfter"},
		{name: "renewBefore without expiry", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.RenewBefore = duration(time.Hour) }),
			err: "needs spec.expiresAfter"},
		{name: "fractional seconds", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(1500 * time.Millisecond) }),
			err: "whole number of seconds"},
		{name: "negative", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(-time.Hour) }),
			err: "positive"},
		{name: "empty actor", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.Actor = "" }), err: "spec.actor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := desiredFromSpec(tt.tok)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.secretName != tt.secretName || got.signingKey != tt.signingKey || got.lifetime != tt.lifetime || got.renewBefore != tt.renewBefore {
				t.Errorf("got %+v", got)
			}
			if got.claims.ExpiresAfter != int64(tt.lifetime/time.Second) {
				t.Errorf("claims.ExpiresAfter = %d", got.claims.ExpiresAfter)
			}
		})
	}
}

func TestRestrictionsFromSpecKeepOrder(t *testing.T) {
	got := restrictionsFromSpec(&datasettev1alpha1.Restrictions{
		All:       []datasettev1alpha1.Action{"view-instance", "x"},
		Databases: []datasettev1alpha1.DatabaseRestriction{{Name: "b", Actions: []datasettev1alpha1.Action{"view-database"}}, {Name: "a", Actions: []datasettev1alpha1.Action{"execute-sql"}}},
		Resources: []datasettev1alpha1.ResourceRestriction{{Database: "b", Resource: "t", Actions: []datasettev1alpha1.Action{"insert-row"}}},
	})
	claims := dstoken.Claims{Actor: "x", IssuedAt: 1, Restrictions: got}
	want := `{"a":"x","t":1,"_r":{"a":["vi","x"],"d":{"b":["vd"],"a":["es"]},"r":{"b":{"t":["ir"]}}}}`
	if string(claims.PayloadJSON()) != want {
		t.Errorf("payload %s, want %s", claims.PayloadJSON(), want)
	}
}

func TestRenewalTime(t *testing.T) {
	issued := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name        string
		lifetime    time.Duration
		renewBefore time.Duration
		want        time.Time
		ok          bool
	}{
		{name: "never expires", ok: false},
		{name: "two thirds", lifetime: 3 * time.Hour, renewBefore: time.Hour, want: issued.Add(2 * time.Hour), ok: true},
		{name: "late renewal", lifetime: time.Hour, renewBefore: time.Second, want: issued.Add(time.Hour - time.Second), ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := renewalTime(issued, desiredToken{lifetime: tt.lifetime, renewBefore: tt.renewBefore})
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("renewalTime = %s, %v; want %s, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSecretOwnership(t *testing.T) {
	tok := &datasettev1alpha1.DatasetteToken{ObjectMeta: metav1.ObjectMeta{Name: "tok", UID: "uid-1"}}
	ref := func(uid string, controller bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "datasette.io/v1alpha1", Kind: "DatasetteToken", Name: "tok", UID: types.UID("uid-" + uid), Controller: ptr.To(controller)}
	}
	secret := func(refs ...metav1.OwnerReference) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{OwnerReferences: refs, Labels: map[string]string{managedByLabel: managedByValue}}}
	}
	tests := []struct {
		name   string
		secret *corev1.Secret
		want   ownership
	}{
		{name: "missing", secret: nil, want: secretMissing},
		{name: "controlled by us", secret: secret(ref("1", true)), want: secretOwned},
		{name: "our label but no owner", secret: secret(), want: secretForeign},
		{name: "an earlier token of the same name", secret: secret(ref("0", true)), want: secretForeign},
		{name: "owned but not as controller", secret: secret(ref("1", false)), want: secretForeign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := secretOwnership(tt.secret, tok); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMintDecision(t *testing.T) {
	key := []byte("signing-key")
	issued := time.Unix(1_700_000_000, 0)
	want := desiredToken{
		claims:   dstoken.Claims{Actor: "bot", ExpiresAfter: 3600, Restrictions: dstoken.Restrictions{All: []string{"view-instance"}}},
		lifetime: time.Hour, renewBefore: 20 * time.Minute,
	}
	mint := func(k []byte, c dstoken.Claims) []byte {
		c.IssuedAt = issued.Unix()
		return []byte(dstoken.NewMinter(k).Mint(c))
	}
	current := mint(key, want.claims)
	otherActor := want.claims
	otherActor.Actor = "someone-else"
	tampered := append([]byte{}, current...)
	tampered[len(tampered)-1] ^= 1

	tests := []struct {
		name   string
		seen   observedToken
		now    time.Time
		want   mintReason
		issued time.Time
	}{
		{name: "first issue", seen: observedToken{}, now: issued, want: mintIssue},
		{name: "secret deleted", seen: observedToken{issuedBefore: true}, now: issued, want: mintRepair},
		{name: "token key removed", seen: observedToken{secretExists: true, issuedBefore: true}, now: issued, want: mintRepair},
		{name: "not a token", seen: observedToken{secretExists: true, token: []byte("hello")}, now: issued, want: mintRepair},
		{name: "valid and current", seen: observedToken{secretExists: true, token: current}, now: issued.Add(time.Minute), want: noMint, issued: issued},
		{name: "just before renewal", seen: observedToken{secretExists: true, token: current}, now: issued.Add(40*time.Minute - time.Nanosecond), want: noMint, issued: issued},
		{name: "renewal time", seen: observedToken{secretExists: true, token: current}, now: issued.Add(40 * time.Minute), want: mintRenewal, issued: issued},
		{name: "expired", seen: observedToken{secretExists: true, token: current}, now: issued.Add(2 * time.Hour), want: mintRenewal, issued: issued},
		{name: "key rotated", seen: observedToken{secretExists: true, token: mint([]byte("old-key"), want.claims)}, now: issued, want: mintRotation, issued: issued},
		{name: "signature edited", seen: observedToken{secretExists: true, token: tampered}, now: issued, want: mintRotation, issued: issued},
		{name: "claims edited and unsigned", seen: observedToken{secretExists: true, token: mint([]byte("forger"), otherActor)}, now: issued, want: mintRepair, issued: issued},
		{name: "spec changed", seen: observedToken{secretExists: true, token: mint(key, otherActor)}, now: issued, want: mintIssue, issued: issued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotIssued := mintDecision(tt.seen, key, want, tt.now)
			if got != tt.want || !gotIssued.Equal(tt.issued) {
				t.Errorf("mintDecision = %q, %s; want %q, %s", got, gotIssued, tt.want, tt.issued)
			}
		})
	}
}

func TestSecretMetadata(t *testing.T) {
	tok := &datasettev1alpha1.DatasetteToken{Spec: datasettev1alpha1.DatasetteTokenSpec{
		SecretTemplate: &datasettev1alpha1.SecretTemplate{
			Labels:      map[string]string{"team": "data", managedByLabel: "someone"},
			Annotations: map[string]string{"note": "x"},
		},
	}}
	issued := time.Unix(1_700_000_000, 0)
	labels, annotations := secretMetadata(tok, desiredToken{claims: dstoken.Claims{Actor: "bot"}, lifetime: time.Hour}, issued)
	if labels[managedByLabel] != managedByValue || labels["team"] != "data" {
		t.Errorf("labels %v: the template must not override the operator's label", labels)
	}
	if annotations["note"] != "x" || annotations[annotationActor] != "bot" ||
		annotations[annotationIssuedAt] != "2023-11-14T22:13:20Z" || annotations[annotationExpiresAt] != "2023-11-14T23:13:20Z" {
		t.Errorf("annotations %v", annotations)
	}
}
