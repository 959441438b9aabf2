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
			Spec:       datasettev1alpha1.DatasetteTokenSpec{Actor: "bot", SigningSecretRef: &datasettev1alpha1.SecretKeyRef{Name: "ds"}},
		}
		mutate(&tok.Spec)
		return tok
	}
	tests := []struct {
		name        string
		tok         *datasettev1alpha1.DatasetteToken
		secretName  string
		lifetime    time.Duration
		renewBefore time.Duration
		err         string
	}{
		{name: "defaults", tok: base(func(*datasettev1alpha1.DatasetteTokenSpec) {}),
			secretName: "tok"},
		{name: "explicit name", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.SecretName = "out" }), secretName: "out"},
		{name: "both signing sources", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SignerRef = &datasettev1alpha1.SignerReference{Kind: "DatasetteSigner", Name: "x"}
		}), err: "exactly one"},
		{name: "no signing source", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.SigningSecretRef = nil }), err: "exactly one"},
		{name: "invalid template label key", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"bad key!": "x"}}
		}), err: "spec.secretTemplate.labels"},
		{name: "invalid template label value", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"ok": "not ok!"}}
		}), err: "spec.secretTemplate.labels"},
		{name: "oversized template annotations", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretTemplate = &datasettev1alpha1.SecretTemplate{Annotations: map[string]datasettev1alpha1.AnnotationValue{"big": datasettev1alpha1.AnnotationValue(strings.Repeat("x", 300<<10))}}
		}), err: "spec.secretTemplate.annotations"},
		{name: "renew at two thirds by default", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(24 * time.Hour) }),
			secretName: "tok", lifetime: 24 * time.Hour},
		{name: "explicit renewBefore", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.ExpiresAfter, s.RenewBefore = duration(time.Hour), duration(time.Minute)
		}), secretName: "tok", lifetime: time.Hour, renewBefore: time.Minute},
		{name: "renewBefore not shorter", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.ExpiresAfter, s.RenewBefore = duration(time.Hour), duration(time.Hour)
		}), err: "must be shorter than spec.expiresAfter"},
		{name: "renewBefore without expiry", tok: base(func(s *datasettev1alpha1.DatasetteTokenSpec) { s.RenewBefore = duration(time.Hour) }),
			err: "must be shorter than spec.expiresAfter"},
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
			if got.secretName != tt.secretName || got.lifetime != tt.lifetime || got.renewBefore != tt.renewBefore {
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
