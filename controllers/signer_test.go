package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Signers (DatasetteSigner, ClusterDatasetteSigner) against a real API server: a signer lent to
// several namespaces under a policy, its rotation, deletion and status.

// withNamespaces confines the manager's cache to namespaces (instead of the one startManager
// names), as --watch-namespaces does for the manager's own objects. Cluster-scoped objects
// (ClusterDatasetteSigners, namespaces' metadata) are watched cluster-wide either way.
func withNamespaces(namespaces ...string) managerOption {
	return func(o *ctrl.Options, _ *DatasetteTokenReconciler) {
		o.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			o.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
}

// withMaxConcurrentReconciles reconciles n DatasetteTokens at once.
func withMaxConcurrentReconciles(n int) managerOption { //nolint:unparam // the manager's default, so far
	return func(_ *ctrl.Options, r *DatasetteTokenReconciler) { r.MaxConcurrentReconciles = n }
}

// clusterSigner creates a ClusterDatasetteSigner whose key is DATASETTE_SECRET of Secret
// secretNS/datasette, selecting namespaces labelled team=data, and deletes it when the test ends
// (it is cluster-scoped: every later test's manager would see it).
func clusterSigner(t *testing.T, secretNS string, settings datasettev1alpha1.SignerSettings) *datasettev1alpha1.ClusterDatasetteSigner {
	t.Helper()
	s := &datasettev1alpha1.ClusterDatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "prod-"},
		Spec: datasettev1alpha1.ClusterDatasetteSignerSpec{
			SecretRef: datasettev1alpha1.NamespacedSecretKeyRef{
				Namespace:    secretNS,
				SecretKeyRef: datasettev1alpha1.SecretKeyRef{Name: "datasette", Key: defaultSigningKey},
			},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "data"}},
			SignerSettings:    settings,
		},
	}
	create(t, s)
	t.Cleanup(func() { deleteClusterSigner(t, s.Name) })
	return s
}

// deleteClusterSigner deletes a ClusterDatasetteSigner, if it still exists.
func deleteClusterSigner(t *testing.T, name string) {
	t.Helper()
	s := &datasettev1alpha1.ClusterDatasetteSigner{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
		t.Errorf("deleting ClusterDatasetteSigner %s: %v", name, err)
	}
}

// dataPolicy is the policy of the issue's example signer.
func dataPolicy() *datasettev1alpha1.SigningPolicy {
	return &datasettev1alpha1.SigningPolicy{
		Actors: &datasettev1alpha1.ActorPolicy{
			Allowed: []datasettev1alpha1.ActorPattern{"ci-*", "root"}, // root is allowed, and denied first
			Denied:  []datasettev1alpha1.ActorPattern{"root"},
		},
		MaxExpiresAfter:     &metav1.Duration{Duration: 168 * time.Hour},
		RequireRestrictions: true,
		AllowedActions:      []datasettev1alpha1.Action{"view-instance", "view-database", "view-table", "execute-sql", "insert-row"},
	}
}

// signedToken returns a DatasetteToken using the ClusterDatasetteSigner signer, within dataPolicy.
func signedToken(ns, name, actor, signer string) *datasettev1alpha1.DatasetteToken {
	return &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: datasettev1alpha1.DatasetteTokenSpec{
			Actor:        actor,
			SignerRef:    &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: signer},
			ExpiresAfter: &metav1.Duration{Duration: 72 * time.Hour},
			Restrictions: &datasettev1alpha1.Restrictions{
				All:       []datasettev1alpha1.Action{"view-instance"},
				Databases: []datasettev1alpha1.DatabaseRestriction{{Name: "analytics", Actions: []datasettev1alpha1.Action{"view-database", "execute-sql"}}},
			},
		},
	}
}

// labelTeamData labels namespace ns team=data, as the signers' namespaceSelector asks.
func labelTeamData(t *testing.T, ns string) {
	t.Helper()
	var n corev1.Namespace
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: ns}, &n); err != nil {
		t.Fatal(err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels["team"] = "data"
	if err := k8sClient.Update(ctx, &n); err != nil {
		t.Fatalf("labelling namespace %s: %v", ns, err)
	}
}

// requireNoSecret fails unless Secret ns/name does not exist.
func requireNoSecret(t *testing.T, ns, name string) {
	t.Helper()
	var s corev1.Secret
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); !apierrors.IsNotFound(err) {
		t.Errorf("Secret %s/%s: err %v, want it never written", ns, name, err)
	}
}

// pythonCheck is one token for the Python peer, with the key and max_signed_tokens_ttl of the
// Datasette instance that should accept it.
type pythonCheck struct {
	Token  string `json:"token"`
	Key    string `json:"key"`
	MaxTTL int64  `json:"max_ttl"`
}

// pythonVerdict is what the Python peer says of a token.
type pythonVerdict struct {
	OK      bool            `json:"ok"`
	Error   string          `json:"error"`
	Payload json.RawMessage `json:"payload"`
	Expired bool            `json:"expired"`
}

// pythonVerifier loads tokens with the real itsdangerous URLSafeSerializer(key, salt="token"),
// as Datasette does, and applies Datasette's expiry rule (t + d, d capped by
// max_signed_tokens_ttl, an absent d becoming that maximum).
const pythonVerifier = `
import json, sys, time
from itsdangerous import BadSignature, URLSafeSerializer
out = []
for c in json.load(sys.stdin):
    try:
        p = URLSafeSerializer(c["key"], salt="token").loads(c["token"][len("dstok_"):])
    except BadSignature as e:
        out.append({"ok": False, "error": type(e).__name__})
        continue
    d = p.get("d")
    if c["max_ttl"]:
        d = c["max_ttl"] if not d else min(d, c["max_ttl"])
    out.append({"ok": True, "payload": p, "expired": bool(d) and time.time() > p["t"] + d})
json.dump(out, sys.stdout)
`

// pythonVerify checks every token with Python's itsdangerous: it must load under its key, not
// be expired as Datasette reckons it, and carry the payload Go's verifier reads.
func pythonVerify(t *testing.T, checks ...pythonCheck) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found (%v): the cross-check needs python3 with itsdangerous 2.x (pip install 'itsdangerous>=2.2,<3')", err)
	}
	in, err := json.Marshal(checks)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", pythonVerifier)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python peer failed (%v); it needs python3 with itsdangerous 2.x:\n%s", err, stderr.String())
	}
	var verdicts []pythonVerdict
	if err := json.Unmarshal(stdout.Bytes(), &verdicts); err != nil || len(verdicts) != len(checks) {
		t.Fatalf("python peer answered %q (%v)", stdout.String(), err)
	}
	for i, v := range verdicts {
		c := checks[i]
		if !v.OK || v.Expired {
			t.Errorf("Datasette (itsdangerous) would refuse token %d: %+v", i, v)
			continue
		}
		goView, err := dstoken.NewVerifier([]byte(c.Key)).Verify(c.Token, dstoken.VerifyOptions{Now: time.Now(), MaxTTL: c.MaxTTL})
		if err != nil {
			t.Errorf("Go rejects token %d that Python accepts: %v", i, err)
			continue
		}
		var fromPython, fromGo any
		if json.Unmarshal(v.Payload, &fromPython) != nil || json.Unmarshal(goView.Payload, &fromGo) != nil || !reflect.DeepEqual(fromPython, fromGo) {
			t.Errorf("token %d: Python reads %s, Go %s", i, v.Payload, goView.Payload)
		}
	}
}

// tokenOf returns the token in the output Secret of the DatasetteToken key.
func tokenOf(t *testing.T, key types.NamespacedName) string {
	t.Helper()
	return string(outputSecret(t, key.Namespace, key.Name).Data[tokenKey])
}

func TestClusterSignerAcrossNamespaces(t *testing.T) {
	requireEnvtest(t)
	platform, allowed, other := newNamespace(t), newNamespace(t), newNamespace(t)
	labelTeamData(t, allowed)
	startManager(t, allowed, withNamespaces(allowed, other))
	signingSecret(t, platform, "datasette", "platform-key")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{
		MaxSignedTokensTTL: &metav1.Duration{Duration: 24 * time.Hour},
		Policy:             dataPolicy(),
	})

	// Allowed namespace: Ready, signed with the platform's key, dated by min(72h, 24h).
	tok := signedToken(allowed, "reports", "ci-reports", signer.Name)
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	got := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	token := tokenOf(t, key)
	v := verify(t, token, "platform-key")
	if v.Duration != 72*3600 {
		t.Errorf("the token's d is %d, want the spec's 259200 (the payload stays what create-token mints)", v.Duration)
	}
	if want := got.Status.IssuedAt.Add(24 * time.Hour); !got.Status.ExpiresAt.Time.Equal(want) {
		t.Errorf("status.expiresAt %s, want issuedAt + min(expiresAfter, maxSignedTokensTTL) = %s", got.Status.ExpiresAt, want)
	}
	if got.Status.IssuedAt.Unix() != v.IssuedAt {
		t.Errorf("status.issuedAt %s, token's t %d", got.Status.IssuedAt, v.IssuedAt)
	}
	pythonVerify(t, pythonCheck{Token: token, Key: "platform-key", MaxTTL: 24 * 3600})

	// A namespace the selector does not select: NamespaceNotAllowed, Stalled, nothing written.
	outsider := signedToken(other, "reports", "ci-reports", signer.Name)
	create(t, outsider)
	outsiderKey := client.ObjectKeyFromObject(outsider)
	got = waitReason(t, outsiderKey, datasettev1alpha1.ReasonNamespaceNotAllowed)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) || meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) {
		t.Errorf("NamespaceNotAllowed needs a person: want Stalled only, got %+v", got.Status.Conditions)
	}
	requireNoSecret(t, other, "reports")

	// Labelling the namespace lets it in within seconds.
	start := time.Now()
	labelTeamData(t, other)
	waitReason(t, outsiderKey, datasettev1alpha1.ReasonIssued)
	t.Logf("Ready %s after the namespace was labelled", time.Since(start).Round(time.Millisecond))
	verify(t, tokenOf(t, outsiderKey), "platform-key")

	// A denied actor: PolicyViolation naming the rule, nothing written.
	rootTok := signedToken(allowed, "root", "root", signer.Name)
	create(t, rootTok)
	got = waitReason(t, client.ObjectKeyFromObject(rootTok), datasettev1alpha1.ReasonPolicyViolation)
	c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady)
	if want := fmt.Sprintf("actor \"root\" is denied by ClusterDatasetteSigner %q", signer.Name); !strings.Contains(c.Message, want) {
		t.Errorf("message %q does not say %q", c.Message, want)
	}
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) {
		t.Errorf("PolicyViolation needs a person: want Stalled, got %+v", got.Status.Conditions)
	}
	requireNoSecret(t, allowed, "root")
}

func TestSignerPolicyChange(t *testing.T) {
	requireEnvtest(t)
	platform, ns := newNamespace(t), newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns)
	signingSecret(t, platform, "datasette", "platform-key")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Policy: dataPolicy()})
	tok := signedToken(ns, "etl", "ci-etl", signer.Name)
	create(t, tok)
	bystander := signedToken(ns, "reports", "ci-reports", signer.Name)
	create(t, bystander)
	key := client.ObjectKeyFromObject(tok)
	before := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	waitReason(t, client.ObjectKeyFromObject(bystander), datasettev1alpha1.ReasonIssued)
	token := tokenOf(t, key)
	bystanderToken := tokenOf(t, client.ObjectKeyFromObject(bystander))

	// Deny ci-etl: that token is refused, its Secret left as it is (tokens cannot be revoked).
	var cur datasettev1alpha1.ClusterDatasetteSigner
	NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(signer), &cur)).To(Succeed())
	cur.Spec.Policy.Actors.Denied = append(cur.Spec.Policy.Actors.Denied, "ci-etl")
	NewWithT(t).Expect(k8sClient.Update(ctx, &cur)).To(Succeed())
	got := waitReason(t, key, datasettev1alpha1.ReasonPolicyViolation)
	if c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady); !strings.Contains(c.Message, `actor "ci-etl" is denied`) {
		t.Errorf("message %q does not name the rule and the actor", c.Message)
	}
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) {
		t.Errorf("want Stalled, got %+v", got.Status.Conditions)
	}
	if tokenOf(t, key) != token {
		t.Errorf("a policy violation rewrote the existing Secret")
	}
	if got.Status.IssuedAt == nil || !got.Status.IssuedAt.Equal(before.Status.IssuedAt) {
		t.Errorf("status.issuedAt changed from %v to %v", before.Status.IssuedAt, got.Status.IssuedAt)
	}
	// The other token, still within the policy, is untouched.
	time.Sleep(time.Second)
	if readyOf(t, client.ObjectKeyFromObject(bystander)) != datasettev1alpha1.ReasonIssued || tokenOf(t, client.ObjectKeyFromObject(bystander)) != bystanderToken {
		t.Errorf("a token within the tightened policy was disturbed")
	}

	// Tighter lifetime: maxExpiresAfter below the token's expiresAfter.
	NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(signer), &cur)).To(Succeed())
	cur.Spec.Policy.MaxExpiresAfter = &metav1.Duration{Duration: time.Hour}
	NewWithT(t).Expect(k8sClient.Update(ctx, &cur)).To(Succeed())
	got = waitReason(t, client.ObjectKeyFromObject(bystander), datasettev1alpha1.ReasonPolicyViolation)
	if c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady); !strings.Contains(c.Message, "expiresAfter 72h0m0s is longer than") {
		t.Errorf("message %q does not name the lifetime rule", c.Message)
	}
	if tokenOf(t, client.ObjectKeyFromObject(bystander)) != bystanderToken {
		t.Errorf("a policy violation rewrote the existing Secret")
	}
}

// readyOf returns the reason of the token's Ready condition now.
func readyOf(t *testing.T, key types.NamespacedName) string {
	t.Helper()
	var tok datasettev1alpha1.DatasetteToken
	if err := k8sClient.Get(ctx, key, &tok); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// TestSignerRotationRemintsAcrossNamespaces rotates a ClusterDatasetteSigner's key under 3
// namespaces × 20 tokens and reports how long the last re-mint takes.
func TestSignerRotationRemintsAcrossNamespaces(t *testing.T) {
	requireEnvtest(t)
	const perNamespace = 20
	platform := newNamespace(t)
	namespaces := []string{newNamespace(t), newNamespace(t), newNamespace(t)}
	for _, ns := range namespaces {
		labelTeamData(t, ns)
	}
	// The manager's default --max-concurrent-reconciles.
	startManager(t, namespaces[0], withNamespaces(namespaces...), withMaxConcurrentReconciles(4))
	signing := signingSecret(t, platform, "datasette", "old-key")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Policy: dataPolicy()})
	keys := make([]types.NamespacedName, 0, len(namespaces)*perNamespace)
	for _, ns := range namespaces {
		for i := range perNamespace {
			tok := signedToken(ns, fmt.Sprintf("tok-%02d", i), fmt.Sprintf("ci-%02d", i), signer.Name)
			create(t, tok)
			keys = append(keys, client.ObjectKeyFromObject(tok))
		}
	}
	for _, key := range keys {
		waitReason(t, key, datasettev1alpha1.ReasonIssued)
	}
	rotations := testutil.ToFloat64(tokenMints.WithLabelValues(string(mintRotation)))

	// verifiedUnder counts the output Secrets whose token verifies under key.
	verifiedUnder := func(g Gomega, key string) int {
		n := 0
		verifier := dstoken.NewVerifier([]byte(key))
		for _, ns := range namespaces {
			var list corev1.SecretList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{managedByLabel: managedByValue})).To(Succeed())
			for _, s := range list.Items {
				if _, err := verifier.Verify(string(s.Data[tokenKey]), dstoken.VerifyOptions{Now: time.Now()}); err == nil {
					n++
				}
			}
		}
		return n
	}
	NewWithT(t).Expect(verifiedUnder(NewWithT(t), "old-key")).To(Equal(len(keys)))

	start := time.Now()
	signing.StringData = map[string]string{defaultSigningKey: "new-key"}
	if err := k8sClient.Update(ctx, signing); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(verifiedUnder(g, "new-key")).To(Equal(len(keys)))
	}, eventually, 50*time.Millisecond).Should(Succeed())
	elapsed := time.Since(start)
	t.Logf("signer rotation → last of %d tokens (%d namespaces × %d) re-minted in %s", len(keys), len(namespaces), perNamespace, elapsed.Round(time.Millisecond))

	checks := make([]pythonCheck, 0, len(keys))
	for _, key := range keys {
		checks = append(checks, pythonCheck{Token: tokenOf(t, key), Key: "new-key"})
	}
	pythonVerify(t, checks...)
	NewWithT(t).Eventually(func() float64 {
		return testutil.ToFloat64(tokenMints.WithLabelValues(string(mintRotation))) - rotations
	}, eventually, poll).Should(BeNumerically("==", len(keys)), "mints_total{reason=rotation} must rise by one per token")
	for _, key := range keys {
		waitReason(t, key, datasettev1alpha1.ReasonIssued)
	}
	// Told once, on the ClusterDatasetteSigner (its events live in "default"), never per token.
	NewWithT(t).Eventually(func() int {
		return summarizedCount(t, metav1.NamespaceDefault, datasettev1alpha1.ClusterDatasetteSignerKind, signer.Name, "TokensReminted")
	}, eventually, poll).Should(Equal(len(keys)))
	for _, key := range keys {
		if n := eventCount(t, key.Namespace, key.Name, "Reminted"); n != 0 {
			t.Errorf("%d Reminted events about %s after a rotation, want none", n, key)
		}
	}
}

func TestSignerDeletionAndRecreation(t *testing.T) {
	requireEnvtest(t)
	platform, ns := newNamespace(t), newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns)
	signingSecret(t, platform, "datasette", "platform-key")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Policy: dataPolicy()})
	tok := signedToken(ns, "etl", "ci-etl", signer.Name)
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	token := tokenOf(t, key)

	deleteClusterSigner(t, signer.Name)
	got := waitReason(t, key, datasettev1alpha1.ReasonSignerNotFound)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) || meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionStalled) != nil {
		t.Errorf("a missing signer may come back: want Reconciling and no Stalled, got %+v", got.Status.Conditions)
	}
	if tokenOf(t, key) != token {
		t.Errorf("the Secret changed while the signer was gone")
	}

	// Recreated under the same name (and the same key): Ready again, the token kept.
	recreated := &datasettev1alpha1.ClusterDatasetteSigner{ObjectMeta: metav1.ObjectMeta{Name: signer.Name}, Spec: signer.Spec}
	create(t, recreated)
	got = waitReason(t, key, datasettev1alpha1.ReasonIssued)
	if meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) || meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) {
		t.Errorf("conditions left after recovery: %+v", got.Status.Conditions)
	}
	verify(t, tokenOf(t, key), "platform-key")
}

func TestSwitchFromSigningSecretToSigner(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "local-key")
	signingSecret(t, ns, "instance", "signer-key")
	signer := &datasettev1alpha1.DatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "instance"},
		Spec:       datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "instance"}},
	}
	create(t, signer)
	tok := newToken(ns, "switching", "bot")
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	first := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	verify(t, tokenOf(t, key), "local-key")

	var cur datasettev1alpha1.DatasetteToken
	NewWithT(t).Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
	cur.Spec.SigningSecretRef = nil
	cur.Spec.SignerRef = &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "instance"}
	NewWithT(t).Expect(k8sClient.Update(ctx, &cur)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		c := readyCondition(g, key)
		g.Expect(c.Reason).To(Equal(datasettev1alpha1.ReasonIssued))
		_, err := dstoken.NewVerifier([]byte("signer-key")).Verify(tokenOf(t, key), dstoken.VerifyOptions{Now: time.Now()})
		g.Expect(err).NotTo(HaveOccurred())
	}, eventually, poll).Should(Succeed())
	if _, err := dstoken.NewVerifier([]byte("local-key")).Verify(tokenOf(t, key), dstoken.VerifyOptions{Now: time.Now()}); err == nil {
		t.Errorf("the token still verifies under the old signing Secret's key")
	}
	if !metav1.IsControlledBy(outputSecret(t, ns, "switching"), first) {
		t.Errorf("the Secret lost its owner")
	}
}

func TestSignerStatus(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signer := &datasettev1alpha1.DatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "instance"},
		Spec:       datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "instance-secret"}},
	}
	create(t, signer)
	key := client.ObjectKeyFromObject(signer)
	waitSigner := func(status metav1.ConditionStatus, reason string) *datasettev1alpha1.DatasetteSigner {
		t.Helper()
		var s datasettev1alpha1.DatasetteSigner
		NewWithT(t).Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, &s)).To(Succeed())
			g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
			c := meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(status))
			g.Expect(c.Reason).To(Equal(reason))
		}, eventually, poll).Should(Succeed())
		return &s
	}

	// A token using it while its Secret is missing waits too.
	tok := newToken(ns, "uses-signer", "bot")
	tok.Spec.SigningSecretRef = nil
	tok.Spec.SignerRef = &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "instance"}
	create(t, tok)

	s := waitSigner(metav1.ConditionFalse, datasettev1alpha1.ReasonSecretNotFound)
	if !meta.IsStatusConditionTrue(s.Status.Conditions, datasettev1alpha1.ConditionReconciling) || meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionStalled) != nil {
		t.Errorf("a missing Secret may come: want Reconciling, no Stalled, got %+v", s.Status.Conditions)
	}
	got := waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonSignerNotReady)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) {
		t.Errorf("token waiting for its signer's Secret: want Reconciling, got %+v", got.Status.Conditions)
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "instance-secret"}, Data: map[string][]byte{"OTHER": []byte("x")}}
	create(t, secret)
	s = waitSigner(metav1.ConditionFalse, datasettev1alpha1.ReasonKeyMissing)
	if !meta.IsStatusConditionTrue(s.Status.Conditions, datasettev1alpha1.ConditionStalled) || meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionReconciling) != nil {
		t.Errorf("a missing key needs a person: want Stalled, no Reconciling, got %+v", s.Status.Conditions)
	}

	secret.Data = map[string][]byte{defaultSigningKey: []byte("signer-key")}
	NewWithT(t).Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	s = waitSigner(metav1.ConditionTrue, datasettev1alpha1.ReasonSignerReady)
	if meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionStalled) != nil || meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionReconciling) != nil {
		t.Errorf("conditions left on a Ready signer: %+v", s.Status.Conditions)
	}
	if s.Status.ObservedGeneration != s.Generation || s.Generation == 0 {
		t.Errorf("observedGeneration %d, generation %d", s.Status.ObservedGeneration, s.Generation)
	}
	waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)
	verify(t, tokenOf(t, client.ObjectKeyFromObject(tok)), "signer-key")

	// A spec change is observed.
	s.Spec.MaxSignedTokensTTL = &metav1.Duration{Duration: time.Hour}
	NewWithT(t).Expect(k8sClient.Update(ctx, s)).To(Succeed())
	s = waitSigner(metav1.ConditionTrue, datasettev1alpha1.ReasonSignerReady)
	if s.Generation < 2 {
		t.Errorf("generation %d after a spec change", s.Generation)
	}
}

// issueSignerYAML is the example of issue 9, as written (its durations are real ones).
const issueSignerYAML = `
apiVersion: datasette.io/v1alpha1
kind: ClusterDatasetteSigner
metadata:
  name: issue-example
spec:
  secretRef: {name: datasette, key: DATASETTE_SECRET, namespace: datasette}  # namespace: Cluster kind only (required there)
  maxSignedTokensTTL: 24h    # optional: the instance's max_signed_tokens_ttl setting
  policy:                    # optional; absent = no limits
    actors:
      allowed: ["ci-*", "report-bot"]   # glob patterns (path.Match); absent = any
      denied: ["root"]                  # checked first
    maxExpiresAfter: 168h               # tokens must set expiresAfter <= this (absent expiresAfter then refused)
    requireRestrictions: true           # tokens must carry at least one restriction
    allowedActions: [view-instance, view-database, view-table, execute-sql, insert-row]  # every action used must be listed
  namespaceSelector: {matchLabels: {team: data}}   # Cluster kind only, required; {} = every namespace
`

// TestIssueSignerYAMLApplies applies the issue's example as written, then a token naming it
// becomes Ready with a token Datasette accepts under that Secret's key, and a denied actor's
// token is PolicyViolation with no Secret.
func TestIssueSignerYAMLApplies(t *testing.T) {
	requireEnvtest(t)
	var signer datasettev1alpha1.ClusterDatasetteSigner
	if err := yaml.UnmarshalStrict([]byte(issueSignerYAML), &signer); err != nil {
		t.Fatalf("decoding the issue's YAML: %v", err)
	}
	create(t, &signer)
	t.Cleanup(func() { deleteClusterSigner(t, signer.Name) })
	if signer.Spec.MaxSignedTokensTTL.Duration != 24*time.Hour || signer.Spec.Policy.MaxExpiresAfter.Duration != 168*time.Hour {
		t.Errorf("durations read back as %s, %s", signer.Spec.MaxSignedTokensTTL, signer.Spec.Policy.MaxExpiresAfter)
	}

	// The Secret it names, in namespace "datasette".
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "datasette"}}); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	_ = k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "datasette", Name: "datasette"}})
	NewWithT(t).Eventually(func() error {
		return k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "datasette", Name: "datasette"},
			StringData: map[string]string{defaultSigningKey: "issue-example-key"},
		})
	}, eventually, poll).Should(Succeed())

	ns := newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns)
	tok := signedToken(ns, "report", "report-bot", signer.Name)
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	pythonVerify(t, pythonCheck{Token: tokenOf(t, key), Key: "issue-example-key", MaxTTL: 24 * 3600})

	denied := signedToken(ns, "root", "root", signer.Name)
	create(t, denied)
	got := waitReason(t, client.ObjectKeyFromObject(denied), datasettev1alpha1.ReasonPolicyViolation)
	if c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady); !strings.Contains(c.Message, `actor "root" is denied by ClusterDatasetteSigner "issue-example"`) {
		t.Errorf("message %q", c.Message)
	}
	requireNoSecret(t, ns, "root")
}
