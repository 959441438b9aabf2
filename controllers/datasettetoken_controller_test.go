package controllers

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

const (
	eventually = 20 * time.Second
	poll       = 100 * time.Millisecond
)

var ctx = context.Background()

// signingSecret writes the signing Secret name with DATASETTE_SECRET=key.
func signingSecret(t *testing.T, ns, name, key string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{defaultSigningKey: key},
	}
	if err := k8sClient.Create(ctx, s); err != nil {
		t.Fatalf("creating signing Secret: %v", err)
	}
	return s
}

// newToken returns a DatasetteToken signing with the Secret "datasette".
func newToken(ns, name, actor string) *datasettev1alpha1.DatasetteToken {
	return &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: datasettev1alpha1.DatasetteTokenSpec{
			Actor:            actor,
			SigningSecretRef: &datasettev1alpha1.SecretKeyRef{Name: "datasette"},
		},
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// readyCondition returns the token's Ready condition, once it reflects its current generation.
func readyCondition(g Gomega, key types.NamespacedName) *metav1.Condition {
	var tok datasettev1alpha1.DatasetteToken
	g.Expect(k8sClient.Get(ctx, key, &tok)).To(Succeed())
	g.Expect(tok.Status.ObservedGeneration).To(Equal(tok.Generation))
	c := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady)
	g.Expect(c).NotTo(BeNil())
	g.Expect(c.ObservedGeneration).To(Equal(tok.Generation))
	return c
}

// waitReason waits until the token's Ready condition has reason.
func waitReason(t *testing.T, key types.NamespacedName, reason string) *datasettev1alpha1.DatasetteToken {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(readyCondition(g, key).Reason).To(Equal(reason))
	}, eventually, poll).Should(Succeed())
	var tok datasettev1alpha1.DatasetteToken
	if err := k8sClient.Get(ctx, key, &tok); err != nil {
		t.Fatal(err)
	}
	return &tok
}

// waitReissued waits until the token's status reports a token issued after issuedAt.
func waitReissued(t *testing.T, key types.NamespacedName, issuedAt time.Time) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		var cur datasettev1alpha1.DatasetteToken
		g.Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
		g.Expect(cur.Status.IssuedAt.Time).To(BeTemporally(">", issuedAt))
	}, 10*time.Second, poll).Should(Succeed())
}

// outputSecret returns the Secret name.
func outputSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatalf("reading Secret %s: %v", name, err)
	}
	return &s
}

// verify checks a token the way Datasette would, at the current time.
func verify(t *testing.T, token, key string) *dstoken.Verified {
	t.Helper()
	v, err := dstoken.NewVerifier([]byte(key)).Verify(token, dstoken.VerifyOptions{Now: time.Now()})
	if err != nil {
		t.Fatalf("Datasette would reject the token: %v", err)
	}
	return v
}

func TestSmokeCreateAndReadBack(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	tok := newToken(ns, "smoke", "root")
	create(t, tok)
	var got datasettev1alpha1.DatasetteToken
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tok), &got); err != nil {
		t.Fatalf("reading the DatasetteToken back: %v", err)
	}
	if got.Spec.Actor != "root" || got.Spec.SigningSecretRef.Name != "datasette" {
		t.Fatalf("read back %+v", got.Spec)
	}

	// What `kubectl get dstok` shows.
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: "datasettetokens.datasette.io"}, &crd); err != nil {
		t.Fatal(err)
	}
	var columns []string
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		if c.Priority == 0 {
			columns = append(columns, c.Name)
		}
	}
	if want := []string{"Ready", "Actor", "Secret", "Expires", "Suspended", "Age"}; !slices.Equal(columns, want) {
		t.Errorf("printer columns %v, want %v", columns, want)
	}
	if names := crd.Spec.Names; !slices.Contains(names.ShortNames, "dstok") || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("names %+v, scope %s", names, crd.Spec.Scope)
	}
}

func TestMintsTokenIntoOwnedSecret(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "s3cret-key")
	tok := newToken(ns, "ci-writer", "ci-bot")
	tok.Labels = map[string]string{"app.kubernetes.io/instance": "gitops-owned"}
	tok.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "x"}
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: 24 * time.Hour}
	tok.Spec.RenewBefore = &metav1.Duration{Duration: 8 * time.Hour}
	tok.Spec.SecretName = "ci-writer-token"
	tok.Spec.Restrictions = &datasettev1alpha1.Restrictions{
		All:       []datasettev1alpha1.Action{"view-instance"},
		Databases: []datasettev1alpha1.DatabaseRestriction{{Name: "analytics", Actions: []datasettev1alpha1.Action{"view-database", "execute-sql"}}},
		Resources: []datasettev1alpha1.ResourceRestriction{{Database: "analytics", Resource: "events", Actions: []datasettev1alpha1.Action{"insert-row"}}},
	}
	tok.Spec.SecretTemplate = &datasettev1alpha1.SecretTemplate{
		Labels:      map[string]datasettev1alpha1.LabelValue{"team": "data"},
		Annotations: map[string]datasettev1alpha1.AnnotationValue{"reloader.stakater.com/match": "true"},
	}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	got := waitReason(t, key, datasettev1alpha1.ReasonIssued)

	secret := outputSecret(t, ns, "ci-writer-token")
	token := string(secret.Data["token"])
	v := verify(t, token, "s3cret-key")
	// The claims `datasette-token create-token ci-bot -a view-instance -d analytics view-database
	// -d analytics execute-sql -r analytics events insert-row -e 86400` gives, written out by hand.
	want := `{"a":"ci-bot","t":` + jsonInt(v.IssuedAt) + `,"d":86400,"_r":{"a":["vi"],"d":{"analytics":["vd","es"]},"r":{"analytics":{"events":["ir"]}}}}`
	if string(v.Payload) != want {
		t.Errorf("payload\n got %s\nwant %s", v.Payload, want)
	}

	if !metav1.IsControlledBy(secret, got) {
		t.Errorf("Secret is not controlled by the DatasetteToken: %+v", secret.OwnerReferences)
	}
	if secret.Labels[managedByLabel] != managedByValue || secret.Labels["team"] != "data" {
		t.Errorf("Secret labels %v", secret.Labels)
	}
	if _, copied := secret.Labels["app.kubernetes.io/instance"]; copied {
		t.Errorf("the DatasetteToken's own labels were copied: %v", secret.Labels)
	}
	if _, copied := secret.Annotations["argocd.argoproj.io/tracking-id"]; copied {
		t.Errorf("the DatasetteToken's own annotations were copied: %v", secret.Annotations)
	}
	issued := time.Unix(v.IssuedAt, 0).UTC()
	for k, want := range map[string]string{
		annotationActor:               "ci-bot",
		annotationIssuedAt:            issued.Format(time.RFC3339),
		annotationExpiresAt:           issued.Add(24 * time.Hour).Format(time.RFC3339),
		"reloader.stakater.com/match": "true",
	} {
		if secret.Annotations[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, secret.Annotations[k], want)
		}
	}

	st := got.Status
	if st.SecretName != "ci-writer-token" || !st.IssuedAt.Time.Equal(issued) ||
		!st.ExpiresAt.Time.Equal(issued.Add(24*time.Hour)) || !st.RenewalTime.Time.Equal(issued.Add(16*time.Hour)) {
		t.Errorf("status %+v", st)
	}
	if meta.FindStatusCondition(st.Conditions, datasettev1alpha1.ConditionStalled) != nil {
		t.Errorf("a Ready token is not Stalled: %+v", st.Conditions)
	}
	waitEvent(t, ns, "ci-writer", "Issued")

	// kstatus (what Flux and Argo CD's health checks build on) sees a Ready token as Current.
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(got)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	if err != nil || res.Status != status.CurrentStatus {
		t.Errorf("kstatus computed %v (%v), want Current", res, err)
	}
}

// kstatusOf is kstatus's verdict on obj, as Flux and cli-utils compute it.
func kstatusOf(t *testing.T, obj runtime.Object) status.Status {
	t.Helper()
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// A brand-new DatasetteToken reads InProgress to kstatus until the operator has written its
// status: the CRD defaults status.observedGeneration to -1.
func TestNewTokenIsInProgressUntilObserved(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	tok := newToken(ns, "unobserved", "bot")
	create(t, tok)
	var got datasettev1alpha1.DatasetteToken
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tok), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ObservedGeneration != -1 {
		t.Errorf("status.observedGeneration = %d, want the default -1", got.Status.ObservedGeneration)
	}
	if s := kstatusOf(t, &got); s != status.InProgressStatus {
		t.Errorf("kstatus %s for a token no operator has seen, want InProgress", s)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// waitEvent waits for an event with reason about the DatasetteToken name.
func waitEvent(t *testing.T, ns, name, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	NewWithT(t).Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				found = e
				return
			}
		}
		g.Expect(list.Items).To(ContainElement(HaveField("Reason", reason)))
	}, eventually, poll).Should(Succeed())
	return found
}

func TestFailureReasonsAndRecovery(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)

	// No signing Secret yet: SigningSecretNotFound, Reconciling (the Secret may be on its way,
	// from Sealed Secrets or ESO), not Stalled, and kstatus says InProgress.
	tok := newToken(ns, "early", "bot")
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	got := waitReason(t, key, datasettev1alpha1.ReasonSigningSecretNotFound)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) || meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionStalled) != nil {
		t.Errorf("want Reconciling and no Stalled while waiting: %+v", got.Status.Conditions)
	}
	if got := kstatusOf(t, got); got != status.InProgressStatus {
		t.Errorf("kstatus %s while waiting for the signing Secret, want InProgress", got)
	}
	waitEvent(t, ns, "early", datasettev1alpha1.ReasonSigningSecretNotFound)

	// A signing Secret without the key: SigningKeyMissing, Stalled: a person must act.
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "datasette"}, Data: map[string][]byte{"OTHER": []byte("x")}}
	create(t, s)
	got = waitReason(t, key, datasettev1alpha1.ReasonSigningKeyMissing)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) || meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) != nil {
		t.Errorf("want Stalled beside a failure a person must fix: %+v", got.Status.Conditions)
	}
	if got := kstatusOf(t, got); got != status.FailedStatus {
		t.Errorf("kstatus %s for a missing key, want Failed", got)
	}

	// An empty key is missing too: Datasette would sign with a random key nobody knows.
	s.Data = map[string][]byte{defaultSigningKey: {}}
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitReason(t, key, datasettev1alpha1.ReasonSigningKeyMissing)

	// Setting the key turns the token Ready within seconds.
	s.Data = map[string][]byte{defaultSigningKey: []byte("late-key")}
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got = waitReason(t, key, datasettev1alpha1.ReasonIssued)
	t.Logf("Ready %s after the signing key appeared", time.Since(start).Round(time.Millisecond))
	verify(t, string(outputSecret(t, ns, "early").Data["token"]), "late-key")
	if meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionStalled) != nil {
		t.Errorf("Stalled stayed after recovery: %+v", got.Status.Conditions)
	}
}

func TestSigningSecretCreatedAfterToken(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	tok := newToken(ns, "waiting", "bot")
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonSigningSecretNotFound)
	signingSecret(t, ns, "datasette", "k")
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
}

func TestSecretConflicts(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	m := startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")

	// Someone else's Secret is never written.
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"}, StringData: map[string]string{"token": "theirs"}}
	create(t, foreign)
	tok := newToken(ns, "wants-taken", "bot")
	tok.Spec.SecretName = "taken"
	create(t, tok)
	got := waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonSecretConflict)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) {
		t.Errorf("a conflict needs a person: want Stalled, got %+v", got.Status.Conditions)
	}
	if s := outputSecret(t, ns, "taken"); string(s.Data["token"]) != "theirs" || len(s.OwnerReferences) != 0 {
		t.Errorf("the foreign Secret was written: %+v", s)
	}
	// No retry loop: the write count stays put.
	settled := m.writes.Load()
	time.Sleep(3 * time.Second)
	if n := m.writes.Load() - settled; n != 0 {
		t.Errorf("%d writes while in conflict, want 0", n)
	}

	// Two DatasetteTokens naming one Secret: the owner keeps it, the other reports the conflict.
	first := newToken(ns, "first", "one")
	first.Spec.SecretName = "shared"
	create(t, first)
	waitReason(t, client.ObjectKeyFromObject(first), datasettev1alpha1.ReasonIssued)
	second := newToken(ns, "second", "two")
	second.Spec.SecretName = "shared"
	create(t, second)
	waitReason(t, client.ObjectKeyFromObject(second), datasettev1alpha1.ReasonSecretConflict)
	if v := verify(t, string(outputSecret(t, ns, "shared").Data["token"]), "k"); string(v.Actor.ID) != `"one"` {
		t.Errorf("the Secret's token is for %s, want the owner's actor", v.Actor.ID)
	}

	// Once the foreign Secret is gone, the waiting token takes the name within seconds.
	if err := k8sClient.Delete(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)
}

func TestKeyRotationRemintsEveryToken(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signing := signingSecret(t, ns, "datasette", "old-key")
	signingSecret(t, ns, "other", "unrelated-key")
	keys := make([]types.NamespacedName, 0, 3)
	for _, name := range []string{"a", "b", "c"} {
		tok := newToken(ns, name, "bot-"+name)
		create(t, tok)
		keys = append(keys, client.ObjectKeyFromObject(tok))
	}
	bystander := newToken(ns, "bystander", "bot")
	bystander.Spec.SigningSecretRef.Name = "other"
	create(t, bystander)
	for _, key := range append(keys, client.ObjectKeyFromObject(bystander)) {
		waitReason(t, key, datasettev1alpha1.ReasonIssued)
	}
	bystanderToken := string(outputSecret(t, ns, "bystander").Data["token"])

	start := time.Now()
	signing.StringData = map[string]string{defaultSigningKey: "new-key"}
	if err := k8sClient.Update(ctx, signing); err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		NewWithT(t).Eventually(func(g Gomega) {
			var s corev1.Secret
			g.Expect(k8sClient.Get(ctx, key, &s)).To(Succeed())
			_, err := dstoken.NewVerifier([]byte("new-key")).Verify(string(s.Data["token"]), dstoken.VerifyOptions{Now: time.Now()})
			g.Expect(err).NotTo(HaveOccurred())
		}, eventually, poll).Should(Succeed())
	}
	t.Logf("3 tokens re-minted %s after the key rotated", time.Since(start).Round(time.Millisecond))
	// One summary on the signing Secret, no event per token.
	NewWithT(t).Eventually(func() int { return summarizedCount(t, ns, "Secret", "datasette", "TokensReminted") }, eventually, poll).Should(Equal(3))
	for _, key := range keys {
		if n := eventCount(t, ns, key.Name, "Reminted"); n != 0 {
			t.Errorf("%d Reminted events about %s after a rotation, want none (the summary tells it)", n, key.Name)
		}
	}
	if got := string(outputSecret(t, ns, "bystander").Data["token"]); got != bystanderToken {
		t.Errorf("a token signed by another Secret was re-minted")
	}
}

func TestRenewsBeforeExpiry(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	tok := newToken(ns, "short", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: 4 * time.Second}
	tok.Spec.RenewBefore = &metav1.Duration{Duration: 2 * time.Second}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	first := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	if want := first.Status.IssuedAt.Add(2 * time.Second); !first.Status.RenewalTime.Time.Equal(want) {
		t.Errorf("renewalTime %s, want %s", first.Status.RenewalTime, want)
	}
	waitReissued(t, key, first.Status.IssuedAt.Time)
	verify(t, string(outputSecret(t, ns, "short").Data["token"]), "k")
	e := waitEvent(t, ns, "datasette", "TokensRenewed")
	if e.Regarding.Kind != "Secret" || !strings.Contains(e.Note, "tokens of DatasetteTokens at their renewal time") && !strings.Contains(e.Note, "token of DatasetteTokens at their renewal time") {
		t.Errorf("renewal summary about %s %s: %q", e.Regarding.Kind, e.Regarding.Name, e.Note)
	}
	if n := eventCount(t, ns, "short", "Renewed"); n != 0 {
		t.Errorf("%d Renewed events about the token after a scheduled renewal, want none", n)
	}
}

// TestRenewalFollowsTheClock moves an injected clock past the renewal time: the next reconcile
// (woken here by touching the signing Secret) renews, and the new token is issued at the clock's time.
func TestRenewalFollowsTheClock(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	issued := time.Now().Truncate(time.Second)
	fake := clocktesting.NewFakePassiveClock(issued)
	startManager(t, ns, withClock(fake))
	signing := signingSecret(t, ns, "datasette", "k")
	tok := newToken(ns, "clocked", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: 3 * time.Hour}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	first := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	if !first.Status.IssuedAt.Time.Equal(issued) || !first.Status.RenewalTime.Time.Equal(issued.Add(2*time.Hour)) {
		t.Fatalf("status %+v, want issued at %s and renewal two hours later", first.Status, issued)
	}
	wake := func() {
		t.Helper()
		signing.Labels = map[string]string{"touched": time.Now().Format("150405.000000")}
		if err := k8sClient.Update(ctx, signing); err != nil {
			t.Fatal(err)
		}
	}

	fake.SetTime(issued.Add(2*time.Hour - time.Second)) // not yet
	wake()
	time.Sleep(time.Second)
	var cur datasettev1alpha1.DatasetteToken
	NewWithT(t).Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
	if !cur.Status.IssuedAt.Time.Equal(issued) {
		t.Fatalf("renewed a second early, at %s", cur.Status.IssuedAt)
	}

	renewal := issued.Add(2 * time.Hour)
	fake.SetTime(renewal)
	wake()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
		g.Expect(cur.Status.IssuedAt.Time).To(BeTemporally("==", renewal))
	}, eventually, poll).Should(Succeed())
	if _, err := dstoken.NewVerifier([]byte("k")).Verify(string(outputSecret(t, ns, "clocked").Data["token"]),
		dstoken.VerifyOptions{Now: renewal}); err != nil {
		t.Errorf("the renewed token does not verify at the clock's time: %v", err)
	}
	waitEvent(t, ns, "datasette", "TokensRenewed") // a scheduled renewal is told on the signing Secret
	if n := eventCount(t, ns, "clocked", "Renewed"); n != 0 {
		t.Errorf("%d Renewed events about the token after a scheduled renewal, want none", n)
	}
}

func TestRepairsTheSecret(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	tok := newToken(ns, "fixme", "bot")
	tok.Spec.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"team": "data"}}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	g := NewWithT(t)

	// A deleted Secret is recreated.
	if err := k8sClient.Delete(ctx, outputSecret(t, ns, "fixme")); err != nil {
		t.Fatal(err)
	}
	g.Eventually(func() error {
		var s corev1.Secret
		return k8sClient.Get(ctx, key, &s)
	}, eventually, poll).Should(Succeed())
	verify(t, string(outputSecret(t, ns, "fixme").Data["token"]), "k")

	// An edited token is replaced; our label is put back; others' labels stay.
	s := outputSecret(t, ns, "fixme")
	s.Data["token"] = []byte("dstok_tampered.signature")
	delete(s.Labels, "team")
	s.Labels["added-by-someone"] = "yes"
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	g.Eventually(func(g Gomega) {
		s := outputSecret(t, ns, "fixme")
		_, err := dstoken.NewVerifier([]byte("k")).Verify(string(s.Data["token"]), dstoken.VerifyOptions{Now: time.Now()})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Labels).To(HaveKeyWithValue("team", "data"))
		g.Expect(s.Labels).To(HaveKeyWithValue("added-by-someone", "yes"))
	}, eventually, poll).Should(Succeed())

	// A Secret that lost the operator's label (so its cache no longer sees it) is still ours.
	s = outputSecret(t, ns, "fixme")
	delete(s.Labels, managedByLabel)
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	g.Eventually(func() map[string]string { return outputSecret(t, ns, "fixme").Labels }, eventually, poll).
		Should(HaveKeyWithValue(managedByLabel, managedByValue))

	// Changing secretName moves the token and removes the old Secret.
	var cur datasettev1alpha1.DatasetteToken
	g.Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
	cur.Spec.SecretName = "moved"
	g.Expect(k8sClient.Update(ctx, &cur)).To(Succeed())
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	verify(t, string(outputSecret(t, ns, "moved").Data["token"]), "k")
	g.Eventually(func() bool {
		var old corev1.Secret
		return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fixme"}, &old))
	}, eventually, poll).Should(BeTrue())
}

func TestSpecChangeReissues(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	tok := newToken(ns, "evolving", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)

	var cur datasettev1alpha1.DatasetteToken
	NewWithT(t).Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
	cur.Spec.ExpiresAfter = nil
	cur.Spec.Restrictions = &datasettev1alpha1.Restrictions{All: []datasettev1alpha1.Action{"view-instance", "my-plugin-action"}}
	NewWithT(t).Expect(k8sClient.Update(ctx, &cur)).To(Succeed())
	got := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	v := verify(t, string(outputSecret(t, ns, "evolving").Data["token"]), "k")
	if string(v.Actor.Restrictions) != `{"a":["vi","my-plugin-action"]}` || v.Duration != 0 {
		t.Errorf("re-issued token: _r %s, duration %d", v.Actor.Restrictions, v.Duration)
	}
	if got.Status.ExpiresAt != nil || got.Status.RenewalTime != nil {
		t.Errorf("a token that never expires has no expiry or renewal time: %+v", got.Status)
	}
	if _, ok := outputSecret(t, ns, "evolving").Annotations[annotationExpiresAt]; ok {
		t.Errorf("expires-at annotation left on a token that never expires")
	}
	e := waitEvent(t, ns, "evolving", "UnknownAction")
	if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, "my-plugin-action") {
		t.Errorf("unknown action event %+v", e)
	}
}

func TestNoWritesOnRestartOrResync(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	first := startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	lifetimes := map[string]time.Duration{"one": time.Hour, "two": 100 * time.Second, "three": 0}
	for _, name := range []string{"one", "two", "three"} {
		tok := newToken(ns, name, name)
		if lifetimes[name] != 0 {
			tok.Spec.ExpiresAfter = &metav1.Duration{Duration: lifetimes[name]}
		}
		tok.Spec.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"x": "y"}}
		create(t, tok)
		waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)
	}
	first.Stop()
	tokens := map[string]string{}
	for _, name := range []string{"one", "two", "three"} {
		tokens[name] = string(outputSecret(t, ns, name).Data["token"])
	}

	restarted := startManager(t, ns, withSyncPeriod(2*time.Second))
	time.Sleep(7 * time.Second) // the initial sync, then resyncs
	if n := restarted.writes.Load(); n != 0 {
		t.Errorf("a restarted manager made %d writes over settled tokens, want 0", n)
	}
	for name, token := range tokens {
		if got := string(outputSecret(t, ns, name).Data["token"]); got != token {
			t.Errorf("token %s was re-minted", name)
		}
	}
}

func TestCachesOnlyOwnedSecrets(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	m := startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	tok := newToken(ns, "cached", "bot")
	create(t, tok)
	waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)

	cached := m.reconciler.Client
	var s corev1.Secret
	if err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cached"}, &s); err != nil {
		t.Errorf("the operator's own Secret is not in its cache: %v", err)
	}
	if err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "datasette"}, &s); !apierrors.IsNotFound(err) {
		t.Errorf("the signing Secret's data is cached (err=%v); only Secrets carrying %s may be", err, managedByLabel)
	}
	// The metadata watch holds the other Secrets, and not the operator's: no Secret is watched twice.
	partial := &metav1.PartialObjectMetadata{}
	partial.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := m.reconciler.secretMetadata.Get(ctx, types.NamespacedName{Namespace: ns, Name: "datasette"}, partial); err != nil {
		t.Errorf("the signing Secret is not in the metadata watch: %v", err)
	}
	if err := m.reconciler.secretMetadata.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cached"}, partial); !apierrors.IsNotFound(err) {
		t.Errorf("the operator's own Secret is in the metadata watch too (err=%v): each of its writes is watched twice", err)
	}
}

// A signing Secret carrying the operator's label is in the manager's cache, not the metadata
// watch: its rotations are seen all the same, and so are they after the label goes.
func TestLabelledSigningSecretRotates(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signing := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "datasette", Labels: map[string]string{managedByLabel: managedByValue}},
		StringData: map[string]string{defaultSigningKey: "labelled-1"},
	}
	create(t, signing)
	tok := newToken(ns, "labelled", "bot")
	create(t, tok)
	waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)
	signedWith := func(key string) {
		t.Helper()
		NewWithT(t).Eventually(func() error {
			_, err := dstoken.NewVerifier([]byte(key)).Verify(string(outputSecret(t, ns, "labelled").Data["token"]), dstoken.VerifyOptions{Now: time.Now()})
			return err
		}, eventually, poll).Should(Succeed(), "the token is not signed with %q", key)
	}
	signedWith("labelled-1")
	rotate := func(key string, labels map[string]string) {
		t.Helper()
		NewWithT(t).Eventually(func() error {
			var s corev1.Secret
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(signing), &s); err != nil {
				return err
			}
			s.StringData, s.Labels = map[string]string{defaultSigningKey: key}, labels
			return k8sClient.Update(ctx, &s)
		}, eventually, poll).Should(Succeed())
	}
	rotate("labelled-2", map[string]string{managedByLabel: managedByValue})
	signedWith("labelled-2")
	rotate("unlabelled-3", nil)
	signedWith("unlabelled-3")
	rotate("labelled-4", map[string]string{managedByLabel: managedByValue})
	signedWith("labelled-4")
}

// A key removed from secretTemplate leaves the Secret; keys others put there stay, and the token
// is not re-minted for a metadata change.
func TestTemplateKeysRemovedFromTheSecret(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "template-key")
	tok := newToken(ns, "templated", "bot")
	tok.Spec.SecretTemplate = &datasettev1alpha1.SecretTemplate{
		Labels:      map[string]datasettev1alpha1.LabelValue{"team": "data", "tier": "gold"},
		Annotations: map[string]datasettev1alpha1.AnnotationValue{"note": "first"},
	}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	before := outputSecret(t, ns, "templated")
	// Someone else labels the Secret.
	before.Labels["backup"] = "yes"
	if err := k8sClient.Update(ctx, before); err != nil {
		t.Fatal(err)
	}

	var cur datasettev1alpha1.DatasetteToken
	if err := k8sClient.Get(ctx, key, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"team": "data"}}
	if err := k8sClient.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		s := outputSecret(t, ns, "templated")
		g.Expect(s.Labels).To(HaveKeyWithValue("team", "data"))
		g.Expect(s.Labels).To(HaveKeyWithValue("backup", "yes"), "a label someone else added must stay")
		g.Expect(s.Labels).NotTo(HaveKey("tier"))
		g.Expect(s.Annotations).NotTo(HaveKey("note"))
		g.Expect(s.Data[tokenKey]).To(Equal(before.Data[tokenKey]), "a metadata change must not re-mint")
	}, eventually, poll).Should(Succeed())
}
