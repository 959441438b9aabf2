package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// TestAdmissionRejectsBadSpecs creates each bad DatasetteToken against the real API server and
// checks the message a kubectl user would see.
func TestAdmissionRejectsBadSpecs(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	actions := func(a ...datasettev1alpha1.Action) []datasettev1alpha1.Action { return a }
	tests := []struct {
		name   string
		mutate func(*datasettev1alpha1.DatasetteTokenSpec)
		want   string
	}{
		{"empty actor", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.Actor = "" },
			"spec.actor: Invalid value: \"\": spec.actor in body should be at least 1 chars long"},
		{"zero lifetime", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(0) },
			"expiresAfter must be positive"},
		{"fractional lifetime", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(1500 * time.Millisecond) },
			"spec.expiresAfter in body should match"},
		{"negative lifetime", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.ExpiresAfter = duration(-time.Hour) },
			"spec.expiresAfter in body should match"},
		{"zero renewBefore", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.ExpiresAfter, s.RenewBefore = duration(time.Hour), duration(0)
		}, "renewBefore must be positive"},
		{"renewBefore not shorter than lifetime", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.ExpiresAfter, s.RenewBefore = duration(time.Hour), duration(2*time.Hour)
		}, "renewBefore must be shorter than expiresAfter"},
		{"renewBefore without lifetime", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.RenewBefore = duration(time.Hour) },
			"renewBefore needs expiresAfter"},
		{"empty instance action", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.Restrictions = &datasettev1alpha1.Restrictions{All: actions("")}
		}, "spec.restrictions.all[0] in body should be at least 1 chars long"},
		{"empty database name", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.Restrictions = &datasettev1alpha1.Restrictions{Databases: []datasettev1alpha1.DatabaseRestriction{{Name: "", Actions: actions("view-database")}}}
		}, "spec.restrictions.databases[0].name in body should be at least 1 chars long"},
		{"database without actions", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.Restrictions = &datasettev1alpha1.Restrictions{Databases: []datasettev1alpha1.DatabaseRestriction{{Name: "db", Actions: actions()}}}
		}, "spec.restrictions.databases[0].actions: Required value"},
		{"empty resource", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.Restrictions = &datasettev1alpha1.Restrictions{Resources: []datasettev1alpha1.ResourceRestriction{{Database: "db", Resource: "", Actions: actions("view-table")}}}
		}, "spec.restrictions.resources[0].resource in body should be at least 1 chars long"},
		{"empty resource action", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.Restrictions = &datasettev1alpha1.Restrictions{Resources: []datasettev1alpha1.ResourceRestriction{{Database: "db", Resource: "t", Actions: actions("")}}}
		}, "spec.restrictions.resources[0].actions[0] in body should be at least 1 chars long"},
		{"missing signing Secret name", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.SigningSecretRef.Name = "" },
			"spec.signingSecretRef.name in body should be at least 1 chars long"},
		{"invalid signing Secret name", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.SigningSecretRef.Name = "Not_A_Name" },
			"spec.signingSecretRef.name in body should match"},
		{"invalid signing key", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.SigningSecretRef.Key = "no spaces" },
			"spec.signingSecretRef.key in body should match"},
		{"invalid output Secret name", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.SecretName = "UPPER" },
			"spec.secretName in body should match"},
		{"no signing source", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.SigningSecretRef = nil },
			"set exactly one of signerRef (recommended) and signingSecretRef"},
		{"two signing sources", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SignerRef = &datasettev1alpha1.SignerReference{Kind: "DatasetteSigner", Name: "x"}
		}, "set exactly one of signerRef (recommended) and signingSecretRef"},
		{"unknown signer kind", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SigningSecretRef, s.SignerRef = nil, &datasettev1alpha1.SignerReference{Kind: "Issuer", Name: "x"}
		}, "spec.signerRef.kind: Unsupported value"},
		{"too many instance actions", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.Restrictions = &datasettev1alpha1.Restrictions{All: make([]datasettev1alpha1.Action, 65)}
			for i := range s.Restrictions.All {
				s.Restrictions.All[i] = "view-instance"
			}
		}, "spec.restrictions.all: Too many: 65: must have at most 64 items"},
		{"too many databases", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.Restrictions = &datasettev1alpha1.Restrictions{}
			for i := range 1025 {
				s.Restrictions.Databases = append(s.Restrictions.Databases, datasettev1alpha1.DatabaseRestriction{Name: fmt.Sprint("db", i), Actions: actions("view-database")})
			}
		}, "spec.restrictions.databases: Too many: 1025: must have at most 1024 items"},
		{"invalid template label key", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"not a key": "x"}}
		}, "label keys must be valid Kubernetes label keys"},
		{"invalid template label value", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"team": "not a value"}}
		}, "spec.secretTemplate.labels.team in body should match"},
		{"invalid template annotation key", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretTemplate = &datasettev1alpha1.SecretTemplate{Annotations: map[string]datasettev1alpha1.AnnotationValue{"-bad/x": "x"}}
		}, "annotation keys must be valid Kubernetes annotation keys"},
		{"ServiceAccount annotation in the template", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			s.SecretTemplate = &datasettev1alpha1.SecretTemplate{Annotations: map[string]datasettev1alpha1.AnnotationValue{
				"kubernetes.io/service-account.name": "default"}}
		}, "kubernetes.io/service-account.* annotations belong to ServiceAccount token Secrets"},
		{"too many rollout restart targets", func(s *datasettev1alpha1.DatasetteTokenSpec) {
			for i := range 17 {
				s.RolloutRestartTargets = append(s.RolloutRestartTargets, datasettev1alpha1.RolloutRestartTarget{Kind: "Deployment", Name: fmt.Sprint("d", i)})
			}
		}, "spec.rolloutRestartTargets: Too many: 17: must have at most 16 items"},
		{"unknown deletion policy", func(s *datasettev1alpha1.DatasetteTokenSpec) { s.DeletionPolicy = "Orphan" },
			"spec.deletionPolicy: Unsupported value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := newToken(ns, "bad", "bot")
			tt.mutate(&tok.Spec)
			err := k8sClient.Create(ctx, tok)
			if err == nil {
				t.Fatalf("the API server accepted %+v", tok.Spec)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q\nwant it to contain %q", err, tt.want)
			}
		})
	}

	// A plugin's (unknown) action is accepted: Datasette's CLI only warns, and so does the operator.
	ok := newToken(ns, "plugin-action", "bot")
	ok.Spec.ExpiresAfter = &metav1.Duration{Duration: 90 * time.Minute}
	ok.Spec.Restrictions = &datasettev1alpha1.Restrictions{All: actions("my-plugin-action")}
	create(t, ok)
}

// TestAdmissionCapsActorPatterns: the API server refuses a signer whose actor patterns are
// longer together than datasettev1alpha1.MaxActorPatternBytes, counted in bytes, and admits one
// at the cap, for both signer kinds. The finding of issue 26 (64 allowed and 64 denied patterns
// of 1 024 characters) is refused.
func TestAdmissionCapsActorPatterns(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	// patterns are n distinct patterns of length bytes each, made of char.
	patterns := func(n, length int, char string) []datasettev1alpha1.ActorPattern {
		out := make([]datasettev1alpha1.ActorPattern, n)
		for i := range out {
			prefix := fmt.Sprintf("%03d", i)
			out[i] = datasettev1alpha1.ActorPattern(prefix + strings.Repeat(char, (length-len(prefix))/len(char)))
		}
		return out
	}
	const refused = "the actor patterns, allowed and denied, may be at most 16384 bytes long together"
	tests := []struct {
		name            string
		allowed, denied []datasettev1alpha1.ActorPattern
		admitted        bool
	}{
		{"at the cap", patterns(8, 1024, "a"), patterns(8, 1024, "b"), true},
		{"one byte over", patterns(8, 1024, "a"), append(patterns(8, 1024, "b"), "x"), false},
		{"at the cap in two-byte characters", patterns(8, 2045, "é"), []datasettev1alpha1.ActorPattern{datasettev1alpha1.ActorPattern(strings.Repeat("z", 24))}, true},
		{"over the cap in bytes, not in characters", patterns(9, 2045, "é"), nil, false},
		{"the finding: 64 and 64 patterns of 1 024 characters", patterns(64, 1024, "*a"), patterns(64, 1024, "*b"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actors := &datasettev1alpha1.ActorPolicy{Allowed: tt.allowed, Denied: tt.denied}
			t.Logf("%d bytes of patterns", actorPatternBytes(actors))
			if (actorPatternBytes(actors) <= datasettev1alpha1.MaxActorPatternBytes) != tt.admitted {
				t.Fatalf("the case is wrong: %d bytes of patterns", actorPatternBytes(actors))
			}
			settings := datasettev1alpha1.SignerSettings{Policy: &datasettev1alpha1.SigningPolicy{Actors: actors}}
			signers := []client.Object{
				&datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "capped-"},
					Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"}, SignerSettings: settings}},
				&datasettev1alpha1.ClusterDatasetteSigner{ObjectMeta: metav1.ObjectMeta{GenerateName: "capped-"},
					Spec: datasettev1alpha1.ClusterDatasetteSignerSpec{
						SecretRef:         datasettev1alpha1.NamespacedSecretKeyRef{Namespace: ns, SecretKeyRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"}},
						NamespaceSelector: &metav1.LabelSelector{}, SignerSettings: settings}},
			}
			for _, signer := range signers {
				err := k8sClient.Create(ctx, signer)
				if err == nil {
					t.Cleanup(func() { _ = k8sClient.Delete(ctx, signer) })
				}
				switch {
				case tt.admitted && err != nil:
					t.Errorf("%T refused: %v", signer, err)
				case !tt.admitted && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), refused)):
					t.Errorf("%T: err %v; want it refused, saying %q", signer, err, refused)
				}
			}
		})
	}
}
