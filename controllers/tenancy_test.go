package controllers

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

func TestActorPatterns(t *testing.T) {
	tests := []struct {
		pattern, actor string
		match          bool
	}{
		{"*admin*", "team/admin", true},
		{"*admin*", "admin", true},
		{"*admin*", "team/admins/x", true},
		{"team/*", "team/a/b", true},
		{"team/*", "other/team/a", false},
		{"root", "root", true},
		{"root", "rooted", false},
		{"root", "xroot", false},
		{"?oot", "root", true},
		{"?oot", "oot", false},
		{"[rb]oot", "boot", true},
		{"[^rb]oot", "boot", false},
		{"[!rb]oot", "toot", true},
		{"[a-c]*", "b/x", true},
		{"[a-c]*", "d", false},
		{`\*`, "*", true},
		{`\*`, "x", false},
		{`a\[b`, "a[b", true},
		{`[\]\-]`, "-", true},
		{"é*", "équipe/x", true},
		{"a.b", "axb", false},
		{"*", "line1\nline2", true},
		{"x]", "x]", true},
	}
	for _, tt := range tests {
		got, err := actorMatch(tt.pattern, tt.actor)
		if err != nil || got != tt.match {
			t.Errorf("actorMatch(%q, %q) = %v, %v; want %v", tt.pattern, tt.actor, got, err, tt.match)
		}
	}
	syntax := regexp.MustCompile(actorPatternSyntax)
	for _, bad := range []string{"[root", `root\`, "[]", "[^]", "a[b-]", "[z-a]", "[a-]", "[-a]", "[a]b]x[", `[\`} {
		if err := checkActorPattern(bad); err == nil {
			t.Errorf("checkActorPattern(%q) succeeded; want malformed", bad)
		}
		if bad != "[z-a]" && syntax.MatchString(bad) {
			t.Errorf("the CRD's syntax accepts %q, which the operator refuses", bad)
		}
	}
	// The CRD's CEL rule and the operator agree on every pattern that has no backwards range.
	for _, p := range []string{"*", "a*b?c", "[a-z]x", "[^a-z]", "[!ab]", `\\`, `\[`, "a]", `[\]]`, "[[]", "[a-zA-Z0-9_]*", "x[", "[", `\`, "[a-]", "]"} {
		err := checkActorPattern(p)
		if (err == nil) != syntax.MatchString(p) {
			t.Errorf("pattern %q: operator error %v, CRD syntax match %v", p, err, syntax.MatchString(p))
		}
	}
}

func TestPolicyCannotBeWalkedAround(t *testing.T) {
	restricted := dstoken.Claims{Actor: "bot", Restrictions: dstoken.Restrictions{All: []string{"view-instance"}}}
	unrestricted := dstoken.Claims{Actor: "bot"}
	allowed := &datasettev1alpha1.SigningPolicy{AllowedActions: []datasettev1alpha1.Action{"view-instance"}}
	if msg := policyViolation(allowed, "S", unrestricted, time.Hour); !strings.Contains(msg, "no restrictions") {
		t.Errorf("allowedActions without restrictions: %q; want a violation", msg)
	}
	if msg := policyViolation(allowed, "S", restricted, time.Hour); msg != "" {
		t.Errorf("allowed action refused: %s", msg)
	}
	denyAdmin := &datasettev1alpha1.SigningPolicy{Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{"*admin*"}}}
	if msg := policyViolation(denyAdmin, "S", dstoken.Claims{Actor: "team/admin"}, 0); msg == "" {
		t.Error("*admin* does not deny team/admin")
	}
	malformed := &datasettev1alpha1.SigningPolicy{Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{"[root"}}}
	if msg := policyInvalid(malformed); !strings.Contains(msg, `"[root"`) {
		t.Errorf("policyInvalid = %q; want it to name the pattern", msg)
	}
	if msg := policyViolation(malformed, "S", dstoken.Claims{Actor: "root"}, 0); msg == "" {
		t.Error("a malformed denied pattern denies nothing (fails open)")
	}
	if msg := policyInvalid(denyAdmin); msg != "" {
		t.Errorf("policyInvalid(valid) = %q", msg)
	}
}

func TestDecideTenancy(t *testing.T) {
	f := newDecideFixture(t) // expiresAfter 1h, renewBefore 20m: renewed every 40m
	current := f.token(f.key, f.want.claims)
	viaSigner := func(policy *datasettev1alpha1.SigningPolicy, revocation datasettev1alpha1.RevocationPolicy) func(*gathered) {
		return func(in *gathered) {
			in.signing.viaSigner, in.signing.signerFound, in.signing.namespaceAllowed = true, true, true
			in.signing.settings = datasettev1alpha1.SignerSettings{Policy: policy, RevocationPolicy: revocation}
		}
	}
	denyBot := &datasettev1alpha1.SigningPolicy{Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{"b*"}}}
	tests := []struct {
		name   string
		token  string
		status datasettev1alpha1.DatasetteTokenStatus
		renew  string
		gather func(*gathered)
		now    time.Duration // after t0
		mint   mintReason
		reason string
		revoke bool
		wait   time.Duration // requeueAfter, when set
		keeps  bool          // the token and the status stay as they are
	}{
		{name: "renewal within the floor is refused", token: "-", gather: func(in *gathered) { in.floor = time.Hour },
			reason: datasettev1alpha1.ReasonRenewalTooFrequent},
		{name: "renewal at the floor is fine", token: "-", gather: func(in *gathered) { in.floor = 40 * time.Minute },
			mint: mintIssue, reason: datasettev1alpha1.ReasonIssued},
		{name: "a signer's maxSignedTokensTTL counts", token: "-", gather: func(in *gathered) {
			in.floor = time.Minute
			in.signing.settings.MaxSignedTokensTTL = &metav1.Duration{Duration: 30 * time.Second}
		}, reason: datasettev1alpha1.ReasonRenewalTooFrequent},
		{name: "renew-now after an issue is immediate", token: current, renew: "1",
			status: datasettev1alpha1.DatasetteTokenStatus{LastMintReason: "issue", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) { in.floor = 10 * time.Minute }, now: 5 * time.Second, mint: mintManual, reason: datasettev1alpha1.ReasonIssued},
		{name: "renew-now after renew-now waits for the floor", token: current, renew: "2",
			status: datasettev1alpha1.DatasetteTokenStatus{LastMintReason: "manual", LastRenewRequest: "1", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) { in.floor = 10 * time.Minute }, now: 5 * time.Second, reason: datasettev1alpha1.ReasonIssued,
			wait: 10*time.Minute - 5*time.Second},
		{name: "renew-now after renew-now past the floor", token: current, renew: "2",
			status: datasettev1alpha1.DatasetteTokenStatus{LastMintReason: "manual", LastRenewRequest: "1", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) { in.floor = 10 * time.Minute }, now: 10 * time.Minute, mint: mintManual, reason: datasettev1alpha1.ReasonIssued},
		{name: "a rotation is not delayed", token: f.token([]byte("old"), f.want.claims),
			status: datasettev1alpha1.DatasetteTokenStatus{LastMintReason: "manual", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) {
				in.floor = 10 * time.Minute
				in.signing.key.minter = dstoken.NewMinter(f.key, []byte("old"))
			}, now: time.Second, mint: mintRotation, reason: datasettev1alpha1.ReasonIssued},
		{name: "a token its signer's key no longer verifies is kept until the floor", token: f.token([]byte("other-key"), f.want.claims),
			status: datasettev1alpha1.DatasetteTokenStatus{ObservedGeneration: 1, LastMintReason: "issue", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) { viaSigner(nil, "")(in); in.floor = 10 * time.Minute }, now: time.Minute,
			reason: datasettev1alpha1.ReasonIssued, wait: 9 * time.Minute, keeps: true},
		{name: "and is re-minted at the floor's end", token: f.token([]byte("other-key"), f.want.claims),
			status: datasettev1alpha1.DatasetteTokenStatus{ObservedGeneration: 1, LastMintReason: "issue", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) { viaSigner(nil, "")(in); in.floor = 10 * time.Minute }, now: 10 * time.Minute,
			mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "a token the operator did not write is repaired at once", token: f.token([]byte("other-key"), dstoken.Claims{Actor: "bot"}),
			status: datasettev1alpha1.DatasetteTokenStatus{ObservedGeneration: 1, LastMintReason: "issue", IssuedAt: &metav1.Time{Time: f.t0.Add(-time.Second)}},
			gather: func(in *gathered) { viaSigner(nil, "")(in); in.floor = 10 * time.Minute }, now: time.Minute,
			mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "a Secret that is gone is repaired at once", token: "-",
			status: datasettev1alpha1.DatasetteTokenStatus{ObservedGeneration: 1, LastMintReason: "issue", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) { viaSigner(nil, "")(in); in.floor = 10 * time.Minute }, now: time.Minute,
			mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "an unverified token of a signing Secret is repaired at once", token: f.token([]byte("other-key"), f.want.claims),
			status: datasettev1alpha1.DatasetteTokenStatus{ObservedGeneration: 1, LastMintReason: "issue", IssuedAt: &metav1.Time{Time: f.t0}},
			gather: func(in *gathered) { in.floor = 10 * time.Minute }, now: time.Minute, mint: mintRepair, reason: datasettev1alpha1.ReasonIssued},
		{name: "Keep leaves the token", token: current, gather: viaSigner(denyBot, ""), reason: datasettev1alpha1.ReasonPolicyViolation},
		{name: "Remove revokes on a policy violation", token: current, gather: viaSigner(denyBot, datasettev1alpha1.RevocationPolicyRemove),
			reason: datasettev1alpha1.ReasonPolicyViolation, revoke: true},
		{name: "Remove revokes when the namespace is no longer selected", token: current, gather: func(in *gathered) {
			viaSigner(nil, datasettev1alpha1.RevocationPolicyRemove)(in)
			in.signing.namespaceAllowed = false
		}, reason: datasettev1alpha1.ReasonNamespaceNotAllowed, revoke: true},
		{name: "Remove recorded on the Secret revokes once the signer is gone", token: current, gather: func(in *gathered) {
			in.signing = signingFacts{viaSigner: true}
			in.secret.Annotations = map[string]string{annotationRevocation: "Remove"}
		}, reason: datasettev1alpha1.ReasonSignerNotFound, revoke: true},
		{name: "a signer gone without Remove keeps it", token: current, gather: func(in *gathered) { in.signing = signingFacts{viaSigner: true} },
			reason: datasettev1alpha1.ReasonSignerNotFound},
		{name: "a refused signingSecretRef is a policy violation", token: "-", gather: func(in *gathered) { in.signing.refusedRef = "use the signer" },
			reason: datasettev1alpha1.ReasonPolicyViolation},
		{name: "a malformed policy mints nothing", token: "-", gather: func(in *gathered) {
			viaSigner(nil, "")(in)
			in.signing.invalidPolicy = "bad"
		}, reason: datasettev1alpha1.ReasonSignerNotReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.tok = f.tok.DeepCopy()
			f.tok.Annotations, f.tok.Status = nil, tt.status
			if tt.renew != "" {
				f.tok.Annotations = map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: tt.renew}
			}
			in := f.gathered(tt.token, f.minter)
			if tt.gather != nil {
				tt.gather(in)
			}
			p := decide(in, f.t0.Add(tt.now))
			if p.mint != tt.mint || p.readiness.reason != tt.reason || p.revoke != tt.revoke {
				t.Fatalf("decide = mint %q, %s, revoke %v; want %q, %s, %v: %s", p.mint, p.readiness.reason, p.revoke, tt.mint, tt.reason, tt.revoke, p.readiness.message)
			}
			if tt.keeps && (p.requeueAfter != tt.wait || p.token != string(in.secret.Data[tokenKey]) ||
				p.readiness.message != fmt.Sprintf("Secret %q holds a token for actor %q", "tok", "bot")) {
				t.Errorf("a held repair: requeueAfter %s, token kept %v, message %q; want %s, the token and the status as they were",
					p.requeueAfter, p.token == string(in.secret.Data[tokenKey]), p.readiness.message, tt.wait)
			} else if tt.wait != 0 && !tt.keeps && (p.requeueAfter != tt.wait || !strings.Contains(p.readiness.message, "until")) {
				t.Errorf("requeueAfter %s, message %q; want %s and the time it waits until", p.requeueAfter, p.readiness.message, tt.wait)
			}
			if tt.reason == datasettev1alpha1.ReasonRenewalTooFrequent && (p.token != "" || p.readiness.severity != stalled || !strings.Contains(p.readiness.message, "floor")) {
				t.Errorf("RenewalTooFrequent must be stalled, write nothing and name the floor: %+v", p.readiness)
			}
		})
	}
}

func TestRestartGate(t *testing.T) {
	var g restartGate
	t0 := time.Unix(1_700_000_000, 0)
	targets := []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "a"}, {Kind: "StatefulSet", Name: "b"}}
	if w := g.wait("ns", targets, time.Minute, t0); w != 0 {
		t.Fatalf("first restart waits %s", w)
	}
	g.restarted("ns", targets[:1], time.Minute, t0)
	if w := g.wait("ns", targets, time.Minute, t0.Add(20*time.Second)); w != 40*time.Second {
		t.Errorf("second restart waits %s; want 40s", w)
	}
	if w := g.wait("other", targets, time.Minute, t0.Add(20*time.Second)); w != 0 {
		t.Errorf("another namespace's target waits %s", w)
	}
	if w := g.wait("ns", targets, 0, t0); w != 0 {
		t.Errorf("no floor waits %s", w)
	}
	if w := g.wait("ns", targets, time.Minute, t0.Add(time.Minute)); w != 0 {
		t.Errorf("after the floor waits %s", w)
	}
}

func TestRestartPending(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }
	tok := func(issued, restarted *metav1.Time) *datasettev1alpha1.DatasetteToken {
		return &datasettev1alpha1.DatasetteToken{Status: datasettev1alpha1.DatasetteTokenStatus{IssuedAt: issued, RestartedFor: restarted}}
	}
	for _, tt := range []struct {
		name string
		tok  *datasettev1alpha1.DatasetteToken
		mint mintReason
		now  int64
		want bool
	}{
		{"first issue", tok(nil, nil), mintIssue, t0.Unix(), false},
		{"renewed", tok(at(0), at(0)), mintRenewal, t0.Unix() + 60, true},
		{"deferred restart still due", tok(at(60*time.Second), at(0)), noMint, t0.Unix() + 60, true},
		{"done", tok(at(60*time.Second), at(60*time.Second)), noMint, t0.Unix() + 60, false},
		{"status from before restartedFor", tok(at(0), nil), noMint, t0.Unix(), false},
	} {
		if got := restartPending(tt.tok, tt.mint, tt.now); got != tt.want {
			t.Errorf("%s: restartPending = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestRenewalFloorOfSigner(t *testing.T) {
	policy := func(d time.Duration) datasettev1alpha1.SignerSettings {
		return datasettev1alpha1.SignerSettings{Policy: &datasettev1alpha1.SigningPolicy{MinRenewalInterval: &metav1.Duration{Duration: d}}}
	}
	for _, tt := range []struct {
		operator time.Duration
		settings datasettev1alpha1.SignerSettings
		want     time.Duration
	}{
		{time.Minute, datasettev1alpha1.SignerSettings{}, time.Minute},
		{time.Minute, policy(time.Hour), time.Hour},
		{time.Minute, policy(time.Second), time.Minute}, // a signer cannot lower it
	} {
		if got := renewalFloor(tt.operator, tt.settings); got != tt.want {
			t.Errorf("renewalFloor(%s, %+v) = %s; want %s", tt.operator, tt.settings.Policy, got, tt.want)
		}
	}
}

func TestRejectedTargetName(t *testing.T) {
	for name, rejected := range map[string]bool{"web": false, "web.v1": false, "a/b": true, "Web": true, "": true, "..": true} {
		if got := rejectedTargetName(name) != ""; got != rejected {
			t.Errorf("rejectedTargetName(%q) rejected %v; want %v", name, got, rejected)
		}
	}
}

func TestKeyCacheAccounting(t *testing.T) {
	c := newKeyCache(nil, nil, nil, 3*keyOverhead, 5*keyOverhead)
	s1 := types.NamespacedName{Namespace: "a", Name: "s"}
	s2 := types.NamespacedName{Namespace: "b", Name: "s"}
	data := map[string][]byte{"k1": []byte("one"), "k2": []byte("two"), "k3": []byte("three")}
	for i, name := range []string{"k1", "k2", "k3"} { // one user walks through three key names
		c.use("tok", keyUse{secret: s1, keyName: name})
		c.store(s1, fmt.Sprint(i), name, data)
	}
	if total, names := c.heldBytes(); names != 1 || total != int64(len("three"))+keyOverhead {
		t.Errorf("after a walk through 3 key names: %d names, %d bytes; want only the one in use", names, total)
	}
	c.use("t2", keyUse{secret: s1, keyName: "k1"})
	c.store(s1, "9", "k1", data)
	c.use("t3", keyUse{secret: s1, keyName: "k2"})
	c.store(s1, "9", "k2", data)
	if k, _ := c.cachedAny(s1, "9", "k2", true); !k.overBudget {
		t.Errorf("a third key of one Secret fits a cap of about two: %+v", k)
	}
	c.use("t4", keyUse{secret: s2, keyName: "k1"})
	c.store(s2, "1", "k1", data)
	if k, _ := c.cachedAny(s2, "1", "k1", true); k.minter == nil {
		t.Errorf("another Secret's key does not fit: %+v", k)
	}
	for _, u := range []string{"tok", "t2", "t3", "t4"} {
		c.release(u)
	}
	if total, names := c.heldBytes(); total != 0 || names != 0 || c.size() != 0 {
		t.Errorf("after every user left: %d bytes, %d names, %d Secrets; want none", total, names, c.size())
	}
}

// TestRestartTargetNameRefusedIsReported: a target name the client refuses (a CRD of an older
// version let "a/b" through) is TargetRejected, not an error retried in a loop.
func TestRestartTargetNameRefusedIsReported(t *testing.T) {
	r := &DatasetteTokenReconciler{Client: fake.NewClientBuilder().WithScheme(scheme).Build(), Recorder: events.NewFakeRecorder(10)}
	tok := &datasettev1alpha1.DatasetteToken{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t"},
		Spec: datasettev1alpha1.DatasetteTokenSpec{RolloutRestartTargets: []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "a/b"}}}}
	var conditions []metav1.Condition
	if err := r.restartTargets(t.Context(), tok, time.Unix(1_700_000_000, 0), &conditions); err != nil {
		t.Fatalf("restartTargets = %v; want the refusal reported, not retried", err)
	}
	c := meta.FindStatusCondition(conditions, datasettev1alpha1.ConditionRestartTargetsReady)
	if c == nil || c.Reason != datasettev1alpha1.ReasonTargetRejected || !strings.Contains(c.Message, `"a/b"`) {
		t.Errorf("RestartTargetsReady = %+v; want TargetRejected naming a/b", c)
	}
}

// TestSignerWithMalformedPatternIsInvalidPolicy: a signer whose pattern got past admission (an
// older CRD) is not Ready, reason InvalidPolicy, naming the pattern.
func TestSignerWithMalformedPatternIsInvalidPolicy(t *testing.T) {
	ready := signerReadyUnder(t, &datasettev1alpha1.SigningPolicy{
		Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{"[root"}}})
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != datasettev1alpha1.ReasonInvalidPolicy || !strings.Contains(ready.Message, `"[root"`) {
		t.Errorf("Ready = %+v; want False, InvalidPolicy, naming the pattern", ready)
	}
}

// signerReadyUnder reconciles a DatasetteSigner with policy, its Secret holding a key, and
// returns its Ready condition.
func signerReadyUnder(t *testing.T, policy *datasettev1alpha1.SigningPolicy) *metav1.Condition {
	t.Helper()
	signer := &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
			SignerSettings: datasettev1alpha1.SignerSettings{Policy: policy}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "datasette"}, Data: map[string][]byte{defaultSigningKey: []byte("k")}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(signer, secret).WithStatusSubresource(signer).Build()
	r := &signerReconciler{Client: c, Recorder: events.NewFakeRecorder(10), keys: newKeyCache(c, c, nil, 0, 0), kind: signerKinds[0]}
	if _, err := r.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(signer)}); err != nil {
		t.Fatal(err)
	}
	var got datasettev1alpha1.DatasetteSigner
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(signer), &got); err != nil {
		t.Fatal(err)
	}
	return meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady)
}

// TestSignerRestartTargetNameRefusedIsReported: a signer's rollout restart target whose name
// the client refuses ("a/b", let through by an older CRD) is TargetRejected in the signer's
// status, the other targets still restarted, not an error retried in a loop (before, the
// signers' restarts did not check names as the tokens' do).
func TestSignerRestartTargetNameRefusedIsReported(t *testing.T) {
	app := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(app).Build()
	now := time.Unix(1_700_000_000, 0)
	r := &signerReconciler{Client: c, Recorder: events.NewFakeRecorder(10), kind: signerKinds[0],
		probes: probeSettings{now: func() time.Time { return now }}}
	signer := &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Generation: 3},
		Spec: datasettev1alpha1.DatasetteSignerSpec{SignerSettings: datasettev1alpha1.SignerSettings{
			RolloutRestartTargets: []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "a/b"}, {Kind: "Deployment", Name: "app"}}}}}
	key := keyLookup{secretFound: true, minter: dstoken.NewMinter([]byte("k")), since: "7", rotated: true}
	var next datasettev1alpha1.DatasetteSignerStatus
	if _, err := r.restartInstance(t.Context(), signer, key, 0, &next); err != nil {
		t.Fatalf("restartInstance = %v; want the refusal reported, not retried", err)
	}
	cond := meta.FindStatusCondition(next.Conditions, datasettev1alpha1.ConditionRestartTargetsReady)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != datasettev1alpha1.ReasonTargetRejected || !strings.Contains(cond.Message, `"a/b"`) ||
		cond.ObservedGeneration != 3 {
		t.Errorf("RestartTargetsReady = %+v; want False, TargetRejected naming a/b", cond)
	}
	if next.RestartedForKey != "7" {
		t.Errorf("restartedForKey %q; want the key restarted for, so that the refusal is not retried", next.RestartedForKey)
	}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(app), app); err != nil || app.Spec.Template.Annotations[annotationRestartedAt] == "" {
		t.Errorf("the valid target was not restarted: %v %v", err, app.Spec.Template.Annotations)
	}
}
