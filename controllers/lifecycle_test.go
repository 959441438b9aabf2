package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// The token's lifecycle against a real API server: rollout restart targets, renew-now, suspend,
// notAfter and the deletion policy.

// podTemplate is a minimal valid pod template labelled app=name.
func podTemplate(name string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "datasette"}}},
	}
}

// workloads creates a Deployment, a StatefulSet and a DaemonSet named name (envtest runs no
// controller: they never get pods, which is fine here).
func workloads(t *testing.T, ns, name string) []client.Object {
	t.Helper()
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	objs := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{Selector: selector, Template: podTemplate(name)}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.StatefulSetSpec{Selector: selector, Template: podTemplate(name)}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DaemonSetSpec{Selector: selector, Template: podTemplate(name)}},
	}
	for _, o := range objs {
		create(t, o)
	}
	return objs
}

// restartedAt returns the datasette.io/restartedAt annotation of each workload's pod template,
// by kind ("" when absent).
func restartedAt(t *testing.T, objs []client.Object) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range objs {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatal(err)
		}
		var annotations map[string]string
		switch w := o.(type) {
		case *appsv1.Deployment:
			annotations = w.Spec.Template.Annotations
		case *appsv1.StatefulSet:
			annotations = w.Spec.Template.Annotations
		case *appsv1.DaemonSet:
			annotations = w.Spec.Template.Annotations
		}
		out[kindOf(o)] = annotations[annotationRestartedAt]
	}
	return out
}

func kindOf(o client.Object) string {
	switch o.(type) {
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *appsv1.DaemonSet:
		return "DaemonSet"
	default:
		return "Deployment"
	}
}

// allRestartedAt is the annotation map expected when every target was restarted at value.
func allRestartedAt(value string) map[string]string {
	return map[string]string{"Deployment": value, "StatefulSet": value, "DaemonSet": value}
}

// requestRenewal sets the renew-requested-at annotation of the token key to value.
func requestRenewal(t *testing.T, key types.NamespacedName, value string) {
	t.Helper()
	var tok datasettev1alpha1.DatasetteToken
	NewWithT(t).Expect(k8sClient.Get(ctx, key, &tok)).To(Succeed())
	if tok.Annotations == nil {
		tok.Annotations = map[string]string{}
	}
	tok.Annotations[datasettev1alpha1.AnnotationRenewRequestedAt] = value
	NewWithT(t).Expect(k8sClient.Update(ctx, &tok)).To(Succeed())
}

// nextSecond sleeps until the second after t has begun, so that a new mint gets a new "t".
func nextSecond(t time.Time) {
	time.Sleep(time.Until(t.Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
}

// getToken reads the DatasetteToken key.
func getToken(t *testing.T, key types.NamespacedName) *datasettev1alpha1.DatasetteToken {
	t.Helper()
	var tok datasettev1alpha1.DatasetteToken
	if err := k8sClient.Get(ctx, key, &tok); err != nil {
		t.Fatal(err)
	}
	return &tok
}

// rfc3339 formats a status time as the restart annotation carries it.
func rfc3339(t *metav1.Time) string { return t.UTC().Format(time.RFC3339) }

func TestRolloutRestartTargets(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	first := startManager(t, ns)
	signing := signingSecret(t, ns, "datasette", "old-key")
	objs := workloads(t, ns, "web")
	tok := newToken(ns, "web-token", "web")
	tok.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{
		{Kind: "Deployment", Name: "web"}, {Kind: "StatefulSet", Name: "web"}, {Kind: "DaemonSet", Name: "web"},
	}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	issued := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	g := NewWithT(t)

	// The first issue restarts nothing: the workloads start with that token.
	time.Sleep(500 * time.Millisecond)
	g.Expect(restartedAt(t, objs)).To(Equal(allRestartedAt("")), "the first issue restarted workloads")
	g.Expect(meta.FindStatusCondition(issued.Status.Conditions, datasettev1alpha1.ConditionRestartTargetsReady)).To(BeNil())

	// A rotation of the signing key restarts every target, at the new token's issue time.
	nextSecond(issued.Status.IssuedAt.Time)
	signing.StringData = map[string]string{defaultSigningKey: "new-key"}
	g.Expect(k8sClient.Update(ctx, signing)).To(Succeed())
	waitReissued(t, key, issued.Status.IssuedAt.Time)
	rotated := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	g.Eventually(func() map[string]string { return restartedAt(t, objs) }, eventually, poll).
		Should(Equal(allRestartedAt(rfc3339(rotated.Status.IssuedAt))))
	verify(t, tokenOf(t, key), "new-key")
	e := waitEvent(t, ns, "web-token", "RolloutRestarted")
	for _, want := range []string{"Deployment/web", "StatefulSet/web", "DaemonSet/web"} {
		g.Expect(e.Note).To(ContainSubstring(want))
	}
	c := meta.FindStatusCondition(rotated.Status.Conditions, datasettev1alpha1.ConditionRestartTargetsReady)
	g.Expect(c).NotTo(BeNil())
	g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(c.Reason).To(Equal(datasettev1alpha1.ReasonRestarted))

	// Renew now: a new token once, the targets restarted again, the request recorded.
	manual := testutil.ToFloat64(tokenMints.WithLabelValues(string(mintManual)))
	nextSecond(rotated.Status.IssuedAt.Time)
	before := tokenOf(t, key)
	requestRenewal(t, key, "2024-01-01T00:00:00Z")
	waitReissued(t, key, rotated.Status.IssuedAt.Time)
	var renewed *datasettev1alpha1.DatasetteToken
	g.Eventually(func(g Gomega) {
		renewed = getToken(t, key)
		g.Expect(renewed.Status.LastRenewRequest).To(Equal("2024-01-01T00:00:00Z"))
	}, eventually, poll).Should(Succeed())
	g.Expect(tokenOf(t, key)).NotTo(Equal(before))
	g.Eventually(func() map[string]string { return restartedAt(t, objs) }, eventually, poll).
		Should(Equal(allRestartedAt(rfc3339(renewed.Status.IssuedAt))))
	waitEvent(t, ns, "web-token", "Renewed")
	g.Expect(testutil.ToFloat64(tokenMints.WithLabelValues(string(mintManual))) - manual).To(BeNumerically("==", 1))
	pythonVerify(t, pythonCheck{Token: tokenOf(t, key), Key: "new-key"})

	// The same value again (with a spec change that forces a reconcile) does nothing.
	nextSecond(renewed.Status.IssuedAt.Time)
	settledToken, settledAt := tokenOf(t, key), restartedAt(t, objs)
	cur := getToken(t, key)
	cur.Annotations[datasettev1alpha1.AnnotationRenewRequestedAt] = "2024-01-01T00:00:00Z"
	cur.Spec.SecretTemplate = &datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"touched": "yes"}}
	g.Expect(k8sClient.Update(ctx, cur)).To(Succeed())
	g.Eventually(func() map[string]string { return outputSecret(t, ns, "web-token").Labels }, eventually, poll).
		Should(HaveKeyWithValue("touched", "yes"))
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	time.Sleep(time.Second)
	g.Expect(tokenOf(t, key)).To(Equal(settledToken), "the same renew request minted again")
	g.Expect(restartedAt(t, objs)).To(Equal(settledAt), "the same renew request restarted the targets")
	g.Expect(testutil.ToFloat64(tokenMints.WithLabelValues(string(mintManual))) - manual).To(BeNumerically("==", 1))

	// A missing target: a warning and RestartTargetsReady=False, and the token is still issued.
	lonely := newToken(ns, "lonely", "lonely")
	lonely.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}, {Kind: "Deployment", Name: "missing"}}
	create(t, lonely)
	lonelyKey := client.ObjectKeyFromObject(lonely)
	lonelyIssued := waitReason(t, lonelyKey, datasettev1alpha1.ReasonIssued)
	nextSecond(lonelyIssued.Status.IssuedAt.Time)
	requestRenewal(t, lonelyKey, "now")
	var got *datasettev1alpha1.DatasetteToken
	g.Eventually(func(g Gomega) {
		got = getToken(t, lonelyKey)
		c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionRestartTargetsReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(datasettev1alpha1.ReasonTargetNotFound))
		g.Expect(c.Message).To(ContainSubstring("Deployment/missing"))
	}, eventually, poll).Should(Succeed())
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionReady)).To(BeTrue(), "a missing target failed the token: %+v", got.Status.Conditions)
	g.Expect(got.Status.LastRenewRequest).To(Equal("now"))
	w := waitEvent(t, ns, "lonely", datasettev1alpha1.ReasonTargetNotFound)
	g.Expect(w.Type).To(Equal(corev1.EventTypeWarning))
	// The existing target was still restarted.
	g.Eventually(func() string { return restartedAt(t, objs)["Deployment"] }, eventually, poll).
		Should(Equal(rfc3339(got.Status.IssuedAt)))

	// A restarted manager restarts nothing and writes nothing.
	first.Stop()
	settledToken, settledAt = tokenOf(t, key), restartedAt(t, objs)
	restarted := startManager(t, ns)
	time.Sleep(4 * time.Second)
	g.Expect(restarted.writes.Load()).To(BeZero(), "a restarted manager wrote")
	g.Expect(restartedAt(t, objs)).To(Equal(settledAt))
	g.Expect(tokenOf(t, key)).To(Equal(settledToken))
}

func TestSuspend(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	tok := newToken(ns, "paused", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: 4 * time.Second}
	tok.Spec.RenewBefore = &metav1.Duration{Duration: time.Second}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	g := NewWithT(t)

	cur := getToken(t, key)
	cur.Spec.Suspend = true
	g.Expect(k8sClient.Update(ctx, cur)).To(Succeed())
	suspended := waitReason(t, key, datasettev1alpha1.ReasonSuspended)
	kept := tokenOf(t, key)
	v := verify(t, kept, "k") // still valid: Ready True while it is
	if c := meta.FindStatusCondition(suspended.Status.Conditions, datasettev1alpha1.ConditionReady); c.Status != metav1.ConditionTrue || suspended.Status.RenewalTime != nil {
		t.Errorf("a suspended token with a valid Secret: Ready %s, renewalTime %v; want True and none", c.Status, suspended.Status.RenewalTime)
	}

	// Past its expiry, nothing is minted: Ready=False Suspended, Stalled (only a person can resume
	// it) and never Reconciling.
	expiry := time.Unix(v.IssuedAt+v.Duration, 0)
	var got *datasettev1alpha1.DatasetteToken
	g.Eventually(func(g Gomega) {
		got = getToken(t, key)
		c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(datasettev1alpha1.ReasonSuspended))
	}, eventually, poll).Should(Succeed())
	if time.Now().Before(expiry) {
		t.Errorf("Ready=False before the kept token expired (%s)", expiry)
	}
	time.Sleep(time.Second)
	got = getToken(t, key)
	g.Expect(tokenOf(t, key)).To(Equal(kept), "a suspended token was re-minted")
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReconciling)).To(BeNil())
	g.Expect(got.Status.RenewalTime).To(BeNil())
	// Issue 10: "kstatus never reads a suspended token as InProgress forever". kstatus reads
	// Ready=False without Stalled as InProgress, so the operator sets Stalled: Failed, final.
	if s := kstatusOf(t, got); s != status.FailedStatus {
		t.Errorf("kstatus %s for a suspended, expired token (conditions %+v), want Failed: a GitOps sync must not wait on it", s, got.Status.Conditions)
	}

	// Resuming re-mints within seconds.
	start := time.Now()
	got.Spec.Suspend = false
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	t.Logf("re-minted %s after resuming", time.Since(start).Round(time.Millisecond))
	g.Expect(tokenOf(t, key)).NotTo(Equal(kept))
	verify(t, tokenOf(t, key), "k")
}

func TestNotAfter(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	notAfter := time.Now().Add(5 * time.Second)
	tok := newToken(ns, "contractor", "contractor")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
	tok.Spec.NotAfter = &metav1.Time{Time: notAfter}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	issued := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	end := issued.Spec.NotAfter.Unix() // as the API stores it: whole seconds

	token := tokenOf(t, key)
	verify(t, token, "k")
	d, err := dstoken.Decode(token)
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Claims; c.ExpiresAfter <= 0 || c.ExpiresAfter > 5 || c.IssuedAt+c.ExpiresAfter != end {
		t.Errorf("claims t=%d d=%d: want d ≤ 5 and t+d = notAfter (%d)", c.IssuedAt, c.ExpiresAfter, end)
	}
	if issued.Status.ExpiresAt.Unix() != end || issued.Status.RenewalTime != nil {
		t.Errorf("status expiresAt %s renewalTime %v; want notAfter and no renewal (the last token)", issued.Status.ExpiresAt, issued.Status.RenewalTime)
	}

	got := waitReason(t, key, datasettev1alpha1.ReasonEnded)
	if now := time.Now().Unix(); now < end {
		t.Errorf("Ended at %d, before notAfter %d", now, end)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady); c.Status != metav1.ConditionFalse {
		t.Errorf("Ready %s after notAfter", c.Status)
	}
	// Ended is Stalled, never Reconciling: kstatus reads Ready=False alone as InProgress forever,
	// and a GitOps sync must not wait on a token that has ended; a person deletes or extends it.
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) || meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) != nil {
		t.Errorf("Ended must be Stalled and not Reconciling: %+v", got.Status.Conditions)
	}
	if s := kstatusOf(t, got); s != status.FailedStatus {
		t.Errorf("kstatus %s after notAfter, want Failed", s)
	}
	if tokenOf(t, key) != token {
		t.Errorf("a token was minted after notAfter")
	}
}

func TestDeletionPolicy(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	g := NewWithT(t)
	gone := func(key types.NamespacedName) func() bool {
		return func() bool {
			var tok datasettev1alpha1.DatasetteToken
			return apierrors.IsNotFound(k8sClient.Get(ctx, key, &tok))
		}
	}
	finalizers := func(key types.NamespacedName) func() []string {
		return func() []string { return getToken(t, key).Finalizers }
	}

	// Retain: the Secret survives, released from the operator.
	kept := newToken(ns, "kept", "bot")
	kept.Spec.DeletionPolicy = datasettev1alpha1.DeletionPolicyRetain
	create(t, kept)
	keptKey := client.ObjectKeyFromObject(kept)
	waitReason(t, keptKey, datasettev1alpha1.ReasonIssued)
	g.Eventually(finalizers(keptKey), eventually, poll).Should(ContainElement(finalizerRetain))
	token := tokenOf(t, keptKey)
	g.Expect(k8sClient.Delete(ctx, getToken(t, keptKey))).To(Succeed())
	g.Eventually(gone(keptKey), eventually, poll).Should(BeTrue(), "the finalizer was not removed")
	s := outputSecret(t, ns, "kept")
	g.Expect(s.OwnerReferences).To(BeEmpty())
	g.Expect(s.Labels).NotTo(HaveKey(managedByLabel))
	g.Expect(string(s.Data[tokenKey])).To(Equal(token))
	waitEvent(t, ns, "kept", "Retained")

	// Delete (the default): the owner reference stays for the garbage collector; no finalizer.
	dropped := newToken(ns, "dropped", "bot")
	create(t, dropped)
	droppedKey := client.ObjectKeyFromObject(dropped)
	owner := waitReason(t, droppedKey, datasettev1alpha1.ReasonIssued)
	g.Expect(owner.Finalizers).To(BeEmpty())
	g.Expect(k8sClient.Delete(ctx, owner)).To(Succeed())
	g.Eventually(gone(droppedKey), eventually, poll).Should(BeTrue())
	g.Expect(metav1.IsControlledBy(outputSecret(t, ns, "dropped"), owner)).To(BeTrue(), "the Secret lost its owner reference")

	// Switching on a live token: Retain→Delete removes the finalizer, Delete→Retain adds it.
	live := newToken(ns, "live", "bot")
	live.Spec.DeletionPolicy = datasettev1alpha1.DeletionPolicyRetain
	create(t, live)
	liveKey := client.ObjectKeyFromObject(live)
	waitReason(t, liveKey, datasettev1alpha1.ReasonIssued)
	g.Eventually(finalizers(liveKey), eventually, poll).Should(ContainElement(finalizerRetain))
	// The operator writes the token too (its finalizer, its status): an edit retries on conflict,
	// as kubectl's does.
	setDeletionPolicy := func(policy datasettev1alpha1.DeletionPolicy) {
		g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := getToken(t, liveKey)
			cur.Spec.DeletionPolicy = policy
			return k8sClient.Update(ctx, cur)
		})).To(Succeed())
	}
	setDeletionPolicy(datasettev1alpha1.DeletionPolicyDelete)
	g.Eventually(finalizers(liveKey), eventually, poll).ShouldNot(ContainElement(finalizerRetain))
	setDeletionPolicy(datasettev1alpha1.DeletionPolicyRetain)
	g.Eventually(finalizers(liveKey), eventually, poll).Should(ContainElement(finalizerRetain))
	waitReason(t, liveKey, datasettev1alpha1.ReasonIssued)
	cur := getToken(t, liveKey)
	g.Expect(controllerutil.ContainsFinalizer(cur, finalizerRetain)).To(BeTrue())
	g.Expect(k8sClient.Delete(ctx, cur)).To(Succeed())
	g.Eventually(gone(liveKey), eventually, poll).Should(BeTrue())
	g.Expect(outputSecret(t, ns, "live").OwnerReferences).To(BeEmpty())
}
