package controllers

import (
	"encoding/json"
	"fmt"
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

func TestEffectiveLifetime(t *testing.T) {
	tests := []struct {
		name         string
		expiresAfter int64
		maxTTL       time.Duration
		want         time.Duration
	}{
		{"no d, no max: never expires", 0, 0, 0},
		{"d, no max", 3600, 0, time.Hour},
		{"no d: the max applies (Datasette caps a missing d)", 0, 24 * time.Hour, 24 * time.Hour},
		{"d shorter than max", 3600, 24 * time.Hour, time.Hour},
		{"d equal to max", 86400, 24 * time.Hour, 24 * time.Hour},
		{"d longer than max", 7 * 86400, 24 * time.Hour, 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := effectiveLifetime(tt.expiresAfter, tt.maxTTL); got != tt.want {
			t.Errorf("%s: effectiveLifetime(%d, %s) = %s, want %s", tt.name, tt.expiresAfter, tt.maxTTL, got, tt.want)
		}
	}
}

func TestClaimsAtAndDates(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		want      desiredToken
		maxTTL    time.Duration
		at        time.Time
		mintable  bool
		d         int64
		expiresAt time.Time
		renewAt   time.Time
	}{
		{name: "never expires", want: desiredToken{}, at: t0, mintable: true},
		{name: "default renewal at two thirds", want: desiredToken{lifetime: 3 * time.Hour, claims: dstoken.Claims{ExpiresAfter: 10800}},
			at: t0, mintable: true, d: 10800, expiresAt: t0.Add(3 * time.Hour), renewAt: t0.Add(2 * time.Hour)},
		{name: "a third in whole seconds", want: desiredToken{lifetime: 100 * time.Second, claims: dstoken.Claims{ExpiresAfter: 100}},
			at: t0, mintable: true, d: 100, expiresAt: t0.Add(100 * time.Second), renewAt: t0.Add(67 * time.Second)},
		{name: "explicit renewBefore", want: desiredToken{lifetime: time.Hour, renewBefore: time.Minute, claims: dstoken.Claims{ExpiresAfter: 3600}},
			at: t0, mintable: true, d: 3600, expiresAt: t0.Add(time.Hour), renewAt: t0.Add(59 * time.Minute)},
		{name: "max TTL shortens the dates, not d", want: desiredToken{lifetime: 48 * time.Hour, claims: dstoken.Claims{ExpiresAfter: 172800}},
			maxTTL: 24 * time.Hour, at: t0, mintable: true, d: 172800, expiresAt: t0.Add(24 * time.Hour), renewAt: t0.Add(16 * time.Hour)},
		{name: "max TTL dates a token without d", want: desiredToken{}, maxTTL: 3 * time.Hour,
			at: t0, mintable: true, expiresAt: t0.Add(3 * time.Hour), renewAt: t0.Add(2 * time.Hour)},
		{name: "renewBefore longer than the max TTL falls back to a third", want: desiredToken{lifetime: 48 * time.Hour, renewBefore: 30 * time.Hour, claims: dstoken.Claims{ExpiresAfter: 172800}},
			maxTTL: 24 * time.Hour, at: t0, mintable: true, d: 172800, expiresAt: t0.Add(24 * time.Hour), renewAt: t0.Add(16 * time.Hour)},
		{name: "notAfter caps d and ends renewal", want: desiredToken{lifetime: 24 * time.Hour, claims: dstoken.Claims{ExpiresAfter: 86400}, notAfter: t0.Add(90*time.Minute + 500*time.Millisecond)},
			at: t0, mintable: true, d: 5400, expiresAt: t0.Add(90 * time.Minute)},
		{name: "notAfter gives a never-expiring spec an end", want: desiredToken{notAfter: t0.Add(time.Hour)},
			at: t0, mintable: true, d: 3600, expiresAt: t0.Add(time.Hour)},
		{name: "notAfter far away: renewed as usual", want: desiredToken{lifetime: time.Hour, claims: dstoken.Claims{ExpiresAfter: 3600}, notAfter: t0.Add(48 * time.Hour)},
			at: t0, mintable: true, d: 3600, expiresAt: t0.Add(time.Hour), renewAt: t0.Add(40 * time.Minute)},
		{name: "notAfter passed", want: desiredToken{lifetime: time.Hour, claims: dstoken.Claims{ExpiresAfter: 3600}, notAfter: t0.Add(-time.Second)},
			at: t0, mintable: false},
		{name: "less than a second left", want: desiredToken{notAfter: t0.Add(999 * time.Millisecond)}, at: t0, mintable: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := tt.want.claimsAt(tt.at)
			if ok != tt.mintable {
				t.Fatalf("mintable = %v, want %v", ok, tt.mintable)
			}
			if !ok {
				return
			}
			if c.IssuedAt != tt.at.Unix() || c.ExpiresAfter != tt.d {
				t.Errorf("claims t=%d d=%d, want t=%d d=%d", c.IssuedAt, c.ExpiresAfter, tt.at.Unix(), tt.d)
			}
			dates := tt.want.datesOf(c, tt.maxTTL)
			if !dates.expiresAt.Equal(tt.expiresAt) || !dates.renewAt.Equal(tt.renewAt) {
				t.Errorf("dates %+v, want expiresAt %s renewAt %s", dates, tt.expiresAt, tt.renewAt)
			}
		})
	}
}

func TestPolicyViolation(t *testing.T) {
	actions := func(a ...string) []datasettev1alpha1.Action {
		out := make([]datasettev1alpha1.Action, len(a))
		for i, s := range a {
			out[i] = datasettev1alpha1.Action(s)
		}
		return out
	}
	patterns := func(p ...string) []datasettev1alpha1.ActorPattern {
		out := make([]datasettev1alpha1.ActorPattern, len(p))
		for i, s := range p {
			out[i] = datasettev1alpha1.ActorPattern(s)
		}
		return out
	}
	policy := &datasettev1alpha1.SigningPolicy{
		Actors:              &datasettev1alpha1.ActorPolicy{Allowed: patterns("ci-*", "report-bot", "root"), Denied: patterns("root", "ci-admin*")},
		MaxExpiresAfter:     &metav1.Duration{Duration: 168 * time.Hour},
		RequireRestrictions: true,
		AllowedActions:      actions("view-instance", "view-database", "insert-row"),
	}
	restricted := dstoken.Restrictions{All: []string{"view-instance"}, Databases: []dstoken.DatabaseActions{{Database: "db", Actions: []string{"view-database"}}}}
	tests := []struct {
		name     string
		policy   *datasettev1alpha1.SigningPolicy
		claims   dstoken.Claims
		lifetime time.Duration
		want     string
	}{
		{name: "no policy allows anything", claims: dstoken.Claims{Actor: "root"}},
		{name: "allowed", policy: policy, claims: dstoken.Claims{Actor: "ci-42", Restrictions: restricted}, lifetime: time.Hour},
		{name: "allowed by exact name", policy: policy, claims: dstoken.Claims{Actor: "report-bot", Restrictions: restricted}, lifetime: time.Hour},
		{name: "denied before allowed", policy: policy, claims: dstoken.Claims{Actor: "root", Restrictions: restricted}, lifetime: time.Hour,
			want: `actor "root" is denied by ClusterDatasetteSigner "prod" (pattern "root")`},
		{name: "denied by glob", policy: policy, claims: dstoken.Claims{Actor: "ci-admin-1", Restrictions: restricted}, lifetime: time.Hour,
			want: `actor "ci-admin-1" is denied`},
		{name: "not allowed", policy: policy, claims: dstoken.Claims{Actor: "mallory", Restrictions: restricted}, lifetime: time.Hour,
			want: `actor "mallory" is not allowed by ClusterDatasetteSigner "prod"`},
		{name: "glob crosses a slash (actor ids are not paths)", policy: policy, claims: dstoken.Claims{Actor: "ci-a/b", Restrictions: restricted}, lifetime: time.Hour,
			want: ""},
		{name: "never expires", policy: policy, claims: dstoken.Claims{Actor: "ci-1", Restrictions: restricted},
			want: "requires expiresAfter (at most 168h0m0s)"},
		{name: "too long", policy: policy, claims: dstoken.Claims{Actor: "ci-1", Restrictions: restricted}, lifetime: 169 * time.Hour,
			want: "expiresAfter 169h0m0s is longer than"},
		{name: "exactly the maximum", policy: policy, claims: dstoken.Claims{Actor: "ci-1", Restrictions: restricted}, lifetime: 168 * time.Hour},
		{name: "unrestricted", policy: policy, claims: dstoken.Claims{Actor: "ci-1"}, lifetime: time.Hour, want: "requires restrictions"},
		{name: "action not allowed", policy: policy, lifetime: time.Hour, claims: dstoken.Claims{Actor: "ci-1", Restrictions: dstoken.Restrictions{
			Resources: []dstoken.ResourceActions{{Database: "db", Resource: "t", Actions: []string{"insert-row", "drop-table"}}}}},
			want: `action "drop-table" is not allowed`},
		{name: "malformed glob matches nothing", policy: &datasettev1alpha1.SigningPolicy{Actors: &datasettev1alpha1.ActorPolicy{Allowed: patterns("[")}},
			claims: dstoken.Claims{Actor: "["}, want: "is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policyViolation(tt.policy, `ClusterDatasetteSigner "prod"`, tt.claims, tt.lifetime)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("policyViolation = %q, want %q", got, tt.want)
			}
		})
	}
}

// decideFixture builds gathered inputs around one token, key and output Secret.
type decideFixture struct {
	key    []byte
	t0     time.Time
	tok    *datasettev1alpha1.DatasetteToken
	want   desiredToken
	minter *dstoken.Minter
}

func newDecideFixture(t *testing.T) *decideFixture {
	t.Helper()
	f := &decideFixture{key: []byte("signing-key"), t0: time.Unix(1_700_000_000, 0)}
	f.tok = &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Name: "tok", Namespace: "ns", UID: "uid-1", Generation: 1},
		Spec: datasettev1alpha1.DatasetteTokenSpec{Actor: "bot", ExpiresAfter: &metav1.Duration{Duration: time.Hour},
			RenewBefore:      &metav1.Duration{Duration: 20 * time.Minute},
			SigningSecretRef: &datasettev1alpha1.SecretKeyRef{Name: "ds"},
			Restrictions:     &datasettev1alpha1.Restrictions{All: []datasettev1alpha1.Action{"view-instance"}}},
	}
	var err error
	if f.want, err = desiredFromSpec(f.tok); err != nil {
		t.Fatal(err)
	}
	f.minter = dstoken.NewMinter(f.key)
	return f
}

// token mints claims (at t0 unless set) with key.
func (f *decideFixture) token(key []byte, c dstoken.Claims) string {
	if c.IssuedAt == 0 {
		c.IssuedAt = f.t0.Unix()
	}
	return dstoken.NewMinter(key).Mint(c)
}

// gathered returns inputs with an owned Secret holding token ("" for no Secret at all).
func (f *decideFixture) gathered(token string, minter *dstoken.Minter) *gathered {
	in := &gathered{token: f.tok, want: f.want, signing: signingFacts{key: keyLookup{secretFound: true, minter: minter}}}
	if token != "-" {
		in.secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tok", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "datasette.io/v1alpha1", Kind: "DatasetteToken", Name: "tok", UID: "uid-1", Controller: ptr.To(true)}}},
			Data: map[string][]byte{tokenKey: []byte(token)}}
	}
	return in
}

func TestDecide(t *testing.T) {
	f := newDecideFixture(t)
	current := f.token(f.key, f.want.claims)
	other := f.want.claims
	other.Actor = "someone-else"
	issuedBefore := func(tok *datasettev1alpha1.DatasetteToken) { tok.Status.IssuedAt = &metav1.Time{Time: f.t0} }
	tests := []struct {
		name    string
		token   string // "-": no Secret
		minter  *dstoken.Minter
		mutate  func(*datasettev1alpha1.DatasetteToken)
		gather  func(*gathered)
		now     time.Time
		mint    mintReason
		reason  string
		sev     severity
		restart bool
	}{
		{name: "first issue", token: "-", mint: mintIssue, reason: datasettev1alpha1.ReasonIssued},
		{name: "secret deleted", token: "-", mutate: issuedBefore, mint: mintRepair, reason: datasettev1alpha1.ReasonIssued, restart: true},
		{name: "token key emptied", token: "", mutate: issuedBefore, mint: mintRepair, reason: datasettev1alpha1.ReasonIssued, restart: true},
		{name: "not a token", token: "hello", mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "valid and current", token: current, now: f.t0.Add(time.Minute), reason: datasettev1alpha1.ReasonIssued},
		{name: "just before renewal", token: current, now: f.t0.Add(40*time.Minute - time.Nanosecond), reason: datasettev1alpha1.ReasonIssued},
		{name: "renewal time", token: current, now: f.t0.Add(40 * time.Minute), mint: mintRenewal, reason: datasettev1alpha1.ReasonIssued},
		{name: "expired", token: current, now: f.t0.Add(2 * time.Hour), mint: mintRenewal, reason: datasettev1alpha1.ReasonIssued},
		{name: "key rotated", token: f.token([]byte("old-key"), f.want.claims), minter: dstoken.NewMinter(f.key, []byte("old-key")),
			mint: mintRotation, reason: datasettev1alpha1.ReasonIssued},
		{name: "signed by an unknown key", token: f.token([]byte("forger"), other), mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "signature edited", token: current[:len(current)-1] + "A", mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "lenient variant: padding", token: current + "==", mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "lenient variant: newlines", token: current + "\n\n", mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "spec changed", token: f.token(f.key, other), mint: mintIssue, reason: datasettev1alpha1.ReasonIssued},
		{name: "renew requested", token: current, mutate: func(tok *datasettev1alpha1.DatasetteToken) {
			tok.Annotations = map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: "now"}
			tok.Status.IssuedAt = &metav1.Time{Time: f.t0}
		}, now: f.t0.Add(time.Second), mint: mintManual, reason: datasettev1alpha1.ReasonIssued, restart: true},
		{name: "renew request already handled", token: current, mutate: func(tok *datasettev1alpha1.DatasetteToken) {
			tok.Annotations = map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: "now"}
			tok.Status.LastRenewRequest = "now"
		}, reason: datasettev1alpha1.ReasonIssued},
		{name: "restart pending from an interrupted reconcile", token: current, mutate: func(tok *datasettev1alpha1.DatasetteToken) {
			tok.Status.IssuedAt = &metav1.Time{Time: f.t0.Add(-time.Hour)}
		}, reason: datasettev1alpha1.ReasonIssued, restart: true},
		{name: "suspended with a valid token", token: current, mutate: func(tok *datasettev1alpha1.DatasetteToken) { tok.Spec.Suspend = true },
			now: f.t0.Add(50 * time.Minute), reason: datasettev1alpha1.ReasonSuspended},
		{name: "suspended past expiry", token: current, mutate: func(tok *datasettev1alpha1.DatasetteToken) { tok.Spec.Suspend = true },
			now: f.t0.Add(2 * time.Hour), reason: datasettev1alpha1.ReasonSuspended, sev: stalled},
		{name: "suspended with no Secret", token: "-", mutate: func(tok *datasettev1alpha1.DatasetteToken) { tok.Spec.Suspend = true },
			reason: datasettev1alpha1.ReasonSuspended, sev: stalled},
		{name: "ended", token: current, gather: func(in *gathered) { in.want.notAfter = f.t0 }, reason: datasettev1alpha1.ReasonEnded, sev: stalled},
		{name: "renew requested in the second of the last mint waits for the next", token: current, mutate: func(tok *datasettev1alpha1.DatasetteToken) {
			tok.Annotations = map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: "now"}
		}, now: f.t0.Add(500 * time.Millisecond), reason: datasettev1alpha1.ReasonIssued},
		{name: "foreign Secret", token: current, gather: func(in *gathered) { in.secret.OwnerReferences = nil }, reason: datasettev1alpha1.ReasonSecretConflict, sev: stalled},
		{name: "invalid spec", token: "-", gather: func(in *gathered) { in.specErr = errTest }, reason: datasettev1alpha1.ReasonInvalidSpec, sev: stalled},
		{name: "signing Secret not found", token: "-", gather: func(in *gathered) { in.signing.key = keyLookup{} },
			reason: datasettev1alpha1.ReasonSigningSecretNotFound, sev: waiting},
		{name: "signing key missing", token: "-", gather: func(in *gathered) { in.signing.key.minter = nil },
			reason: datasettev1alpha1.ReasonSigningKeyMissing, sev: stalled},
		{name: "signing key too long to keep", token: "-", gather: func(in *gathered) { in.signing.key = keyLookup{secretFound: true, oversized: true} },
			reason: datasettev1alpha1.ReasonSigningKeyMissing, sev: stalled},
		{name: "notAfter set after the mint shortens the token", token: current, gather: func(in *gathered) { in.want.notAfter = f.t0.Add(10 * time.Minute) },
			now: f.t0.Add(time.Minute), mint: mintIssue, reason: datasettev1alpha1.ReasonIssued},
		{name: "notAfter far beyond the token keeps it", token: current, gather: func(in *gathered) { in.want.notAfter = f.t0.Add(48 * time.Hour) },
			now: f.t0.Add(time.Minute), reason: datasettev1alpha1.ReasonIssued},
		{name: "signing Secret the operator may not read", token: "-", gather: func(in *gathered) { in.signing.key = keyLookup{unreadable: true} },
			reason: datasettev1alpha1.ReasonSigningKeyMissing, sev: stalled},
		{name: "signer not found", token: "-", gather: func(in *gathered) { in.signing.viaSigner = true },
			reason: datasettev1alpha1.ReasonSignerNotFound, sev: waiting},
		{name: "namespace not selected", token: "-", gather: func(in *gathered) { in.signing.viaSigner, in.signing.signerFound = true, true },
			reason: datasettev1alpha1.ReasonNamespaceNotAllowed, sev: stalled},
		{name: "signer's Secret not found", token: "-", gather: func(in *gathered) {
			in.signing = signingFacts{viaSigner: true, signerFound: true, namespaceAllowed: true}
		}, reason: datasettev1alpha1.ReasonSignerNotReady, sev: waiting},
		{name: "policy violation writes nothing", token: current, gather: func(in *gathered) {
			in.signing.viaSigner, in.signing.signerFound, in.signing.namespaceAllowed = true, true, true
			in.signing.settings.Policy = &datasettev1alpha1.SigningPolicy{Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{"bot"}}}
		}, reason: datasettev1alpha1.ReasonPolicyViolation, sev: stalled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.tok = f.tok.DeepCopy()
			f.tok.Spec.Suspend, f.tok.Annotations, f.tok.Status = false, nil, datasettev1alpha1.DatasetteTokenStatus{}
			if tt.mutate != nil {
				tt.mutate(f.tok)
			}
			minter := f.minter
			if tt.minter != nil {
				minter = tt.minter
			}
			in := f.gathered(tt.token, minter)
			if tt.gather != nil {
				tt.gather(in)
			}
			now := tt.now
			if now.IsZero() {
				now = f.t0
			}
			p := decide(in, now)
			if p.mint != tt.mint || p.readiness.reason != tt.reason || p.readiness.severity != tt.sev || p.restart != tt.restart {
				t.Fatalf("decide = mint %q, %s (severity %d), restart %v; want %q, %s (%d), %v: %s",
					p.mint, p.readiness.reason, p.readiness.severity, p.restart, tt.mint, tt.reason, tt.sev, tt.restart, p.readiness.message)
			}
			switch {
			case p.mint != noMint:
				wantClaims, _ := in.want.claimsAt(now)
				if p.token == "" || !minter.Compare(p.token, wantClaims).Canonical {
					t.Errorf("minted token is not canonical for the spec")
				}
			case p.token != "" && p.token != tt.token:
				t.Errorf("kept token changed")
			}
			if p.readiness.severity != settled && p.token != "" && !paused(p.readiness.reason) {
				t.Errorf("a failure must write nothing")
			}
		})
	}
}

var errTest = jsonError("test error")

type jsonError string

func (e jsonError) Error() string { return string(e) }

func TestDecideTooLargeIsInvalidSpec(t *testing.T) {
	f := newDecideFixture(t)
	in := f.gathered("-", f.minter)
	for i := range 1024 {
		in.want.claims.Restrictions.Databases = append(in.want.claims.Restrictions.Databases, dstoken.DatabaseActions{
			Database: strings.Repeat("d", 1000) + string(rune('a'+i%26)) + strings.Repeat("x", i), Actions: []string{"view-database"}})
	}
	p := decide(in, f.t0)
	if p.readiness.reason != datasettev1alpha1.ReasonInvalidSpec || p.readiness.severity != stalled || p.token != "" || p.mint != noMint {
		t.Fatalf("decide = %+v", p.readiness)
	}
	if !strings.Contains(p.readiness.message, "too large") {
		t.Errorf("message %q", p.readiness.message)
	}
}

func TestSecretPatch(t *testing.T) {
	record := func(labels, annotations []string) string {
		raw, _ := json.Marshal(templateKeys{Labels: labels, Annotations: annotations})
		return string(raw)
	}
	current := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "7",
		Labels:      map[string]string{managedByLabel: managedByValue, "team": "data", "old": "x"},
		Annotations: map[string]string{annotationActor: "bot", annotationTemplateKeys: record([]string{"old", "team"}, nil), annotationExpiresAt: "then"}},
		Data: map[string][]byte{tokenKey: []byte("tok")}}
	tests := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		token       string
		want        string
	}{
		{name: "nothing differs", labels: map[string]string{managedByLabel: managedByValue, "team": "data", "old": "x"},
			annotations: map[string]string{annotationActor: "bot", annotationTemplateKeys: record([]string{"old", "team"}, nil), annotationExpiresAt: "then"}, token: "tok"},
		{name: "a template key removed; others' keys stay", labels: map[string]string{managedByLabel: managedByValue, "team": "data"},
			annotations: map[string]string{annotationActor: "bot", annotationTemplateKeys: record([]string{"team"}, nil), annotationExpiresAt: "then"}, token: "tok",
			want: `{"metadata":{"annotations":{"datasette.io/template-keys":"{\"labels\":[\"team\"]}"},"labels":{"old":null},"resourceVersion":"7"}}`},
		{name: "new token, expiry gone", labels: map[string]string{managedByLabel: managedByValue, "team": "data", "old": "x"},
			annotations: map[string]string{annotationActor: "bot", annotationTemplateKeys: record([]string{"old", "team"}, nil)}, token: "new",
			want: `{"data":{"token":"bmV3"},"metadata":{"annotations":{"datasette.io/expires-at":null},"resourceVersion":"7"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := secretPatch(current, tt.labels, tt.annotations, tt.token)
			if string(got) != tt.want {
				t.Errorf("patch\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSecretMetadata(t *testing.T) {
	want := desiredToken{claims: dstoken.Claims{Actor: "bot"},
		labels: map[string]string{"team": "data", managedByLabel: "someone"}, annotations: map[string]string{"note": "x"}}
	p := plan{claims: dstoken.Claims{IssuedAt: 1_700_000_000}, dates: tokenDates{expiresAt: time.Unix(1_700_003_600, 0)}}
	labels, annotations := secretMetadata(want, p)
	if labels[managedByLabel] != managedByValue || labels["team"] != "data" {
		t.Errorf("labels %v: the template must not override the operator's label", labels)
	}
	if annotations["note"] != "x" || annotations[annotationActor] != "bot" ||
		annotations[annotationIssuedAt] != "2023-11-14T22:13:20Z" || annotations[annotationExpiresAt] != "2023-11-14T23:13:20Z" ||
		annotations[annotationTemplateKeys] != `{"labels":["app.kubernetes.io/managed-by","team"],"annotations":["note"]}` {
		t.Errorf("annotations %v", annotations)
	}
}

func TestTrimOwnedSecret(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "datasette.io/v1alpha1", Kind: "DatasetteToken", Name: "tok", UID: "u", Controller: ptr.To(true)}
	big := strings.Repeat("x", 1<<20)
	secret := func(refs ...metav1.OwnerReference) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", ResourceVersion: "1", OwnerReferences: refs,
				Labels:      map[string]string{managedByLabel: managedByValue, "team": "data", "others": "y"},
				Annotations: map[string]string{annotationActor: "bot", annotationTemplateKeys: `{"labels":["team"]}`, "kubectl.kubernetes.io/last-applied-configuration": big},
				Finalizers:  []string{"x"}},
			Data: map[string][]byte{tokenKey: []byte("dstok_x"), "other": []byte(big)},
		}
	}
	got, _ := trimOwnedSecret(secret(owner))
	s := got.(*corev1.Secret)
	if len(s.Labels) != 2 || s.Labels["team"] != "data" || len(s.Annotations) != 2 || len(s.Data) != 1 || string(s.Data[tokenKey]) != "dstok_x" ||
		len(s.OwnerReferences) != 1 || s.Finalizers != nil {
		t.Errorf("owned Secret trimmed to %+v", s.ObjectMeta)
	}
	got, _ = trimOwnedSecret(secret())
	if s := got.(*corev1.Secret); s.Labels != nil || s.Annotations != nil || s.Data != nil || s.Name != "s" {
		t.Errorf("a labelled Secret without our controller reference must keep its identity only: %+v", s)
	}
	huge := secret(owner)
	huge.Data[tokenKey] = []byte(big)
	got, _ = trimOwnedSecret(huge)
	if s := got.(*corev1.Secret); s.Data != nil {
		t.Errorf("a token larger than any token must not be cached")
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("short", 10); got != "short" {
		t.Errorf("truncate = %q", got)
	}
	got := truncate(strings.Repeat("é", 600), maxNote)
	if len(got) > maxNote || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "é") {
		t.Errorf("truncate: %d bytes, %q…", len(got), got[:8])
	}
}

// A Secret claiming to be ours keeps at most 64 template keys, and long values as digests that
// still compare equal to the spec's values.
func TestTrimOwnedSecretBoundsTemplateValues(t *testing.T) {
	long := strings.Repeat("v", 4096)
	keys := make([]string, 0, 1000)
	annotations := map[string]string{}
	for i := range 1000 {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		annotations[k] = long
	}
	record, _ := json.Marshal(templateKeys{Annotations: keys})
	annotations[annotationTemplateKeys] = string(record)
	owner := metav1.OwnerReference{APIVersion: "datasette.io/v1alpha1", Kind: "DatasetteToken", Name: "tok", UID: "u", Controller: ptr.To(true)}
	got, _ := trimOwnedSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", OwnerReferences: []metav1.OwnerReference{owner}, Annotations: annotations}})
	s := got.(*corev1.Secret)
	if len(s.Annotations) != maxTemplateKeys+1 {
		t.Fatalf("kept %d annotations, want %d", len(s.Annotations), maxTemplateKeys+1)
	}
	if v := s.Annotations["k0"]; len(v) > 80 || !strings.HasPrefix(v, digestPrefix) {
		t.Errorf("a long value is kept as %q", v)
	}
	if p := mapPatch(s.Annotations, map[string]string{"k0": long}, nil); len(p) != 0 {
		t.Errorf("a digested value must compare equal to the spec's: patch %v", p)
	}
	if p := mapPatch(s.Annotations, map[string]string{"k0": long + "!"}, nil); len(p) != 1 {
		t.Errorf("a changed value must be patched: patch %v", p)
	}
}

// The template-keys record is cached as it is, so a record longer than a cached value's digest
// limit still compares equal: otherwise every reconcile would patch it again.
func TestSecretPatchKeepsALongRecord(t *testing.T) {
	want := desiredToken{claims: dstoken.Claims{Actor: "bot"},
		labels: map[string]string{"app.kubernetes.io/name": "reports", "app.kubernetes.io/part-of": "analytics-platform"}}
	p := plan{claims: dstoken.Claims{IssuedAt: 1_700_000_000}, token: "dstok_x"}
	labels, annotations := secretMetadata(want, p)
	if len(annotations[annotationTemplateKeys]) <= maxCachedValue {
		t.Fatalf("the record %q is too short for this test", annotations[annotationTemplateKeys])
	}
	owner := metav1.OwnerReference{APIVersion: "datasette.io/v1alpha1", Kind: "DatasetteToken", Name: "tok", UID: "u", Controller: ptr.To(true)}
	written := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", ResourceVersion: "1", OwnerReferences: []metav1.OwnerReference{owner},
		Labels: labels, Annotations: annotations}, Data: map[string][]byte{tokenKey: []byte(p.token)}}
	cached, _ := trimOwnedSecret(written)
	if patch := secretPatch(cached.(*corev1.Secret), labels, annotations, p.token); patch != nil {
		t.Errorf("a Secret as written must need no patch, got %s", patch)
	}
}

func TestWriteLog(t *testing.T) {
	var l writeLog
	key := types.NamespacedName{Namespace: "ns", Name: "s"}
	obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", ResourceVersion: "2"}}
	l.record(obj, "1")
	if l.caughtUp(key, "1", true) || !l.caughtUp(key, "2", true) || !l.caughtUp(key, "3", true) {
		t.Errorf("a cache at the replaced version is behind; at the written or a later one, caught up")
	}
	if !l.seen(obj) {
		t.Errorf("the echo of our own write must be recognised")
	}
	l.record(obj, "2") // a no-op write: the version did not change
	if !l.caughtUp(key, "2", true) {
		t.Errorf("a no-op write must not make the cache look behind forever")
	}
	created := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", ResourceVersion: "5"}}
	l.record(created, "")
	if l.caughtUp(key, "", false) {
		t.Errorf("a cache that does not show our create is behind")
	}
	v, _ := l.writes.Load(key)
	w := v.(write)
	w.at = w.at.Add(-2 * maxCacheLag)
	l.writes.Store(key, w)
	if !l.caughtUp(key, "", false) {
		t.Errorf("a write is waited for at most maxCacheLag")
	}
}

// TestRenewRequestRecordBounded: status.lastRenewRequest does not copy a tenant's annotation
// whole (a 250 KiB value made a 501 KiB object): a long value is recorded by its digest, which
// still says the request was served, and a value recorded whole before the digest existed
// still counts as served.
func TestRenewRequestRecordBounded(t *testing.T) {
	f := newDecideFixture(t)
	current := f.token(f.key, f.want.claims)
	long := strings.Repeat("x", 250<<10)
	for _, tt := range []struct {
		name, value, recorded string
		mints                 bool
	}{
		{name: "a long request mints once, recorded by digest", value: long, mints: true},
		{name: "its digest says it was served", value: long, recorded: renewRequestRecord(long)},
		{name: "a long value recorded whole before still counts as served", value: long, recorded: long},
		{name: "a timestamp is recorded as it is", value: "2026-12-08T01:00:00Z", mints: true},
		{name: "another value mints", value: "b", recorded: "a", mints: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := f.tok.DeepCopy()
			tok.Annotations = map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: tt.value}
			tok.Status.IssuedAt, tok.Status.LastRenewRequest = &metav1.Time{Time: f.t0}, tt.recorded
			in := f.gathered(current, f.minter)
			in.token = tok
			p := decide(in, f.t0.Add(time.Minute))
			if got := p.mint == mintManual; got != tt.mints {
				t.Fatalf("mint %q; want a renewal: %v", p.mint, tt.mints)
			}
			if len(p.renewRequest) > maxRenewRequestRecord+len("sha256:") {
				t.Errorf("status.lastRenewRequest would be %d bytes", len(p.renewRequest))
			}
			if tt.mints && len(tt.value) <= maxRenewRequestRecord && p.renewRequest != tt.value {
				t.Errorf("a short request is recorded as %q; want it as it is", p.renewRequest)
			}
		})
	}
}

// TestDecideRestartDeferral: whether the rollout restart targets are restarted now or later is
// decide's, from the restart gate's hold that gather read: held, the restart waits until the
// hold ends and the token comes back then; not held, or with no targets, nothing waits.
func TestDecideRestartDeferral(t *testing.T) {
	f := newDecideFixture(t)
	current := f.token(f.key, f.want.claims)
	for _, tt := range []struct {
		name    string
		targets bool
		hold    time.Duration
		wantAt  bool
	}{
		{name: "held: the restart waits", targets: true, hold: 30 * time.Second, wantAt: true},
		{name: "not held: now", targets: true},
		{name: "no targets: nothing to wait for", hold: 30 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := f.tok.DeepCopy()
			tok.Status.IssuedAt = &metav1.Time{Time: f.t0.Add(-time.Hour)} // the targets run an older token
			if tt.targets {
				tok.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "app"}}
			}
			in := f.gathered(current, f.minter)
			in.token, in.restartWait = tok, tt.hold
			now := f.t0.Add(time.Minute)
			p := decide(in, now)
			if !p.restart {
				t.Fatalf("no restart decided: %+v", p)
			}
			if got := !p.restartAt.IsZero(); got != tt.wantAt || tt.wantAt && (!p.restartAt.Equal(now.Add(tt.hold)) || p.requeueAfter > tt.hold) {
				t.Errorf("restartAt %v, requeueAfter %s; want deferred %v until %v", p.restartAt, p.requeueAfter, tt.wantAt, now.Add(tt.hold))
			}
		})
	}
}
