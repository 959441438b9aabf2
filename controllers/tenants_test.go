package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Tenants, round two: what one tenant can write must not walk around a signer's policy,
// out-spend the operator's memory, or out-write everyone else.

// withFloor sets the renewal floor (--min-renewal-interval).
func withFloor(d time.Duration) managerOption {
	return func(_ *ctrl.Options, r *DatasetteTokenReconciler) { r.MinRenewalInterval = d }
}

// withKeyCaps sets the key cache's caps.
func withKeyCaps(perSecret, total int64) managerOption {
	return func(_ *ctrl.Options, r *DatasetteTokenReconciler) {
		r.KeyCacheMaxSecretBytes, r.KeyCacheMaxBytes = perSecret, total
	}
}

func readyMessage(t *testing.T, key types.NamespacedName) string {
	t.Helper()
	return meta.FindStatusCondition(getToken(t, key).Status.Conditions, datasettev1alpha1.ConditionReady).Message
}

func TestTenantCannotWalkAroundASigner(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "tenant-key")
	startManager(t, ns)

	// Before any signer names it, the Secret may be used directly.
	direct := newToken(ns, "direct", "root")
	create(t, direct)
	key := client.ObjectKeyFromObject(direct)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)

	// A DatasetteSigner names the Secret: the direct reference is refused from then on, naming the signer.
	signer := &datasettev1alpha1.DatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "guarded"},
		Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
			SignerSettings: datasettev1alpha1.SignerSettings{Policy: &datasettev1alpha1.SigningPolicy{
				Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{"root"}}}}},
	}
	create(t, signer)
	waitReason(t, key, datasettev1alpha1.ReasonPolicyViolation)
	if msg := readyMessage(t, key); !strings.Contains(msg, `DatasetteSigner "guarded"`) {
		t.Errorf("message %q does not name the signer to use", msg)
	}
	waitWarning(t, ns, "direct", datasettev1alpha1.ReasonPolicyViolation)

	// A new token through signingSecretRef mints nothing.
	late := newToken(ns, "late", "root")
	create(t, late)
	waitReason(t, client.ObjectKeyFromObject(late), datasettev1alpha1.ReasonPolicyViolation)
	requireNoSecret(t, ns, "late")

	// The signer gone, the Secret is again the tenant's own.
	if err := k8sClient.Delete(ctx, signer); err != nil {
		t.Fatal(err)
	}
	waitReason(t, client.ObjectKeyFromObject(late), datasettev1alpha1.ReasonIssued)
}

func TestTenantSigningSecretRefDisallowed(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "tenant-key")
	startManager(t, ns, func(_ *ctrl.Options, r *DatasetteTokenReconciler) { r.DenySigningSecretRef = true })
	tok := newToken(ns, "direct", "bot")
	create(t, tok)
	waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonPolicyViolation)
	if msg := readyMessage(t, client.ObjectKeyFromObject(tok)); !strings.Contains(msg, "--allow-signing-secret-ref=false") {
		t.Errorf("message %q does not say why", msg)
	}
	requireNoSecret(t, ns, "direct")
}

func TestTenantSpecsRefusedAtAdmission(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	for _, pattern := range []datasettev1alpha1.ActorPattern{"[root", `root\`, "[]", "[a-]"} {
		s := &datasettev1alpha1.DatasetteSigner{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"},
			Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{Policy: &datasettev1alpha1.SigningPolicy{
					Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{pattern}}}}},
		}
		if err := k8sClient.Create(ctx, s); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "malformed actor pattern") {
			t.Errorf("a signer denying %q: err %v, want it refused as a malformed actor pattern", pattern, err)
		}
	}
	tok := newToken(ns, "slash", "bot")
	tok.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "a/b"}}
	if err := k8sClient.Create(ctx, tok); !apierrors.IsInvalid(err) {
		t.Errorf("rollout restart target a/b: err %v, want Invalid", err)
	}
}

func TestTenantRenewalFloor(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "tenant-key")
	m := startManager(t, ns, withFloor(time.Minute))

	for name, spec := range map[string][2]time.Duration{"every-second": {time.Second, 0}, "renew-before": {168 * time.Hour, 168*time.Hour - time.Second}} {
		tok := newToken(ns, name, "bot")
		tok.Spec.ExpiresAfter = &metav1.Duration{Duration: spec[0]}
		if spec[1] > 0 {
			tok.Spec.RenewBefore = &metav1.Duration{Duration: spec[1]}
		}
		create(t, tok)
		got := waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonRenewalTooFrequent)
		c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady)
		if !strings.Contains(c.Message, "1m0s") || !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) {
			t.Errorf("%s: %q (Stalled %v); want Stalled and the floor named", name, c.Message, meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled))
		}
		requireNoSecret(t, ns, name)
		waitWarning(t, ns, name, datasettev1alpha1.ReasonRenewalTooFrequent)
	}

	// Renew-now: the first request is immediate, the next ones wait for the floor; the two
	// rollout targets are restarted once.
	tok := newToken(ns, "manual", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
	tok.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "app"}, {Kind: "StatefulSet", Name: "app"}}
	objs := workloads(t, ns, "app")[:2]
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	first := waitReason(t, key, datasettev1alpha1.ReasonIssued).Status.IssuedAt.Time
	nextSecond(first)
	mark := m.requests.mark()
	stop := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(stop); i++ {
		requestRenewal(t, key, fmt.Sprintf("r%d", i))
		time.Sleep(100 * time.Millisecond)
	}
	waitQuiet(t, m.requests)
	secretPatches := len(m.requests.since(mark, secretWrites))
	restarts := len(m.requests.since(mark, func(r apiRequest) bool {
		return isWrite(r) && (r.resource == "deployments" || r.resource == "statefulsets")
	}))
	t.Logf("renew-now changed every 100 ms for 3 s: %d Secret writes, %d workload patches; requests %v", secretPatches, restarts, m.requests.summary(mark))
	if secretPatches != 1 || restarts != 2 {
		t.Errorf("%d Secret writes and %d workload patches; want 1 mint and one restart of each of the 2 targets", secretPatches, restarts)
	}
	if msg := readyMessage(t, key); !strings.Contains(msg, "waits for the renewal floor") {
		t.Errorf("the status does not say the request waits: %q", msg)
	}
	if got := restartedAt(t, objs); got["Deployment"] == "" || got["Deployment"] != got["StatefulSet"] {
		t.Errorf("restarts %v", got)
	}
}

func TestTenantKeyCacheHoldsOnlyKeysInUse(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	const names, size = 200, 4 << 10
	data := map[string][]byte{}
	for i := range names {
		data[fmt.Sprintf("k%03d", i)] = []byte(strings.Repeat(string(rune('a'+i%26)), size))
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "datasette"}, Data: data})
	m := startManager(t, ns)
	tok := newToken(ns, "walker", "bot")
	tok.Spec.SigningSecretRef.Key = "k000"
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	for i := 1; i < names; i++ {
		cur := getToken(t, key)
		cur.Spec.SigningSecretRef.Key = fmt.Sprintf("k%03d", i)
		if err := k8sClient.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		NewWithT(t).Eventually(func(g Gomega) {
			g.Expect(readyCondition(g, key).Reason).To(Equal(datasettev1alpha1.ReasonIssued))
		}, eventually, 20*time.Millisecond).Should(Succeed())
	}
	held, heldNames := m.reconciler.keys.heldBytes()
	t.Logf("after %d key-name edits of one token: the key cache holds %d key names, %d bytes", names, heldNames, held)
	if heldNames != 1 || held > 2*size+keyOverhead {
		t.Errorf("the key cache holds %d names (%d bytes); want only the one in use", heldNames, held)
	}

	// Caps: a second key of the same Secret does not fit a cap of 1.5 keys; the token says why.
	ns2 := newNamespace(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns2, Name: "datasette"}, Data: data})
	startManager(t, ns2, withKeyCaps(size*3/2+keyOverhead, 0))
	a, b := newToken(ns2, "a", "bot"), newToken(ns2, "b", "bot")
	a.Spec.SigningSecretRef.Key, b.Spec.SigningSecretRef.Key = "k001", "k002"
	create(t, a)
	waitReason(t, client.ObjectKeyFromObject(a), datasettev1alpha1.ReasonIssued)
	create(t, b)
	waitReason(t, client.ObjectKeyFromObject(b), datasettev1alpha1.ReasonSigningKeyMissing)
	if msg := readyMessage(t, client.ObjectKeyFromObject(b)); !strings.Contains(msg, "--key-cache-secret-bytes") {
		t.Errorf("message %q does not name the cap", msg)
	}
}

func TestTenantRevocationPolicy(t *testing.T) {
	requireEnvtest(t)
	platform, ns := newNamespace(t), newNamespace(t)
	signingSecret(t, platform, "datasette", "platform-key")
	signingSecret(t, ns, "datasette", "tenant-key")
	labelTeamData(t, ns)
	startManager(t, ns, withNamespaces(ns, platform))
	cs := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{RevocationPolicy: datasettev1alpha1.RevocationPolicyRemove})
	tok := signedToken(ns, "cross", "ci-1", cs.Name)
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)

	// The namespace loses the selector's label: the token is removed, with an event.
	var n corev1.Namespace
	NewWithT(t).Expect(k8sClient.Get(ctx, types.NamespacedName{Name: ns}, &n)).To(Succeed())
	delete(n.Labels, "team")
	NewWithT(t).Expect(k8sClient.Update(ctx, &n)).To(Succeed())
	waitReason(t, key, datasettev1alpha1.ReasonNamespaceNotAllowed)
	NewWithT(t).Eventually(func() bool {
		var s corev1.Secret
		return apierrors.IsNotFound(k8sClient.Get(ctx, key, &s))
	}, eventually, poll).Should(BeTrue(), "the token's Secret was kept")
	waitWarning(t, ns, "cross", "Revoked")
	if got := getToken(t, key); got.Status.IssuedAt != nil || got.Status.ExpiresAt != nil {
		t.Errorf("status still describes the removed token: %+v", got.Status)
	}

	// A DatasetteSigner with Remove, deleted: its token goes too. One with Keep: its token stays.
	for _, policy := range []datasettev1alpha1.RevocationPolicy{datasettev1alpha1.RevocationPolicyRemove, ""} {
		name := "keep"
		if policy != "" {
			name = "remove"
		}
		signer := &datasettev1alpha1.DatasetteSigner{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{RevocationPolicy: policy}},
		}
		create(t, signer)
		local := newToken(ns, "local-"+name, "bot")
		local.Spec.SigningSecretRef = nil
		local.Spec.SignerRef = &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: name}
		create(t, local)
		localKey := client.ObjectKeyFromObject(local)
		waitReason(t, localKey, datasettev1alpha1.ReasonIssued)
		NewWithT(t).Expect(k8sClient.Delete(ctx, signer)).To(Succeed())
		waitReason(t, localKey, datasettev1alpha1.ReasonSignerNotFound)
		var s corev1.Secret
		err := k8sClient.Get(ctx, localKey, &s)
		if policy != "" {
			NewWithT(t).Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, localKey, &s)) }, eventually, poll).Should(BeTrue())
		} else if err != nil {
			t.Errorf("revocationPolicy Keep: the Secret is gone: %v", err)
		}
	}
}

func TestTenantEventsAggregate(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "tenant-key")
	m := startManager(t, ns)
	tok := newToken(ns, "chatty", "bot")
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	last := waitReason(t, key, datasettev1alpha1.ReasonIssued).Status.IssuedAt.Time
	mark := m.requests.mark()
	const renewals = 4
	for i := range renewals {
		nextSecond(last)
		requestRenewal(t, key, fmt.Sprintf("r%d", i))
		waitReissued(t, key, last)
		last = getToken(t, key).Status.IssuedAt.Time
	}
	time.Sleep(time.Second) // the broadcaster writes events asynchronously
	eventWrites := len(m.requests.since(mark, func(r apiRequest) bool { return isWrite(r) && r.resource == "events" }))
	t.Logf("%d renewals of one token: %d event writes", renewals, eventWrites)
	if eventWrites > 2 {
		t.Errorf("%d event writes for %d identical Renewed events; want them aggregated into one series (at most a create and a patch)", eventWrites, renewals)
	}
}

func TestTenantRestartsCoalesced(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "k")
	const floor = 4 * time.Second
	startManager(t, ns, withFloor(floor))
	objs := workloads(t, ns, "app")[:1]
	tok := newToken(ns, "restarts", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
	tok.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "app"}}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	last := waitReason(t, key, datasettev1alpha1.ReasonIssued).Status.IssuedAt.Time
	setActor := func(actor string) {
		cur := getToken(t, key)
		cur.Spec.Actor = actor
		NewWithT(t).Expect(k8sClient.Update(ctx, cur)).To(Succeed())
	}
	// A spec change re-issues and restarts at once; the next one within the floor is deferred.
	nextSecond(last)
	setActor("bot-2")
	waitReissued(t, key, last)
	first := getToken(t, key).Status.IssuedAt
	NewWithT(t).Eventually(func() string { return restartedAt(t, objs)["Deployment"] }, eventually, poll).Should(Equal(rfc3339(first)))
	nextSecond(first.Time)
	setActor("bot-3")
	waitReissued(t, key, first.Time)
	second := getToken(t, key)
	c := meta.FindStatusCondition(second.Status.Conditions, datasettev1alpha1.ConditionRestartTargetsReady)
	if c == nil || c.Reason != datasettev1alpha1.ReasonRestartDeferred {
		t.Fatalf("RestartTargetsReady %+v; want RestartDeferred", c)
	}
	if got := restartedAt(t, objs)["Deployment"]; got != rfc3339(first) {
		t.Errorf("restarted again within the floor: %s", got)
	}
	// At the end of the floor the deferred restart comes, for the current token, once.
	NewWithT(t).Eventually(func() string { return restartedAt(t, objs)["Deployment"] }, floor+5*time.Second, poll).
		Should(Equal(rfc3339(second.Status.IssuedAt)))
	NewWithT(t).Eventually(func() string {
		return meta.FindStatusCondition(getToken(t, key).Status.Conditions, datasettev1alpha1.ConditionRestartTargetsReady).Reason
	}, eventually, poll).Should(Equal(datasettev1alpha1.ReasonRestarted))
}

// TestKeyChurnPacedByTheFloor: a tenant who rewrites the key of its own signer's Secret twice a
// second re-mints its tokens and restarts its signer's workloads once per renewal floor, the
// newest key winning at the end. Before, 20 key writes re-minted every token 20 times and
// restarted each of the signer's 8 targets at every change (160 restarts).
func TestKeyChurnPacedByTheFloor(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	secret := signingSecret(t, ns, "datasette", "k0")
	const floor, tokens, targets, changes = 5 * time.Second, 10, 8, 20
	m := startManager(t, ns, withFloor(floor))
	signer := &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "churn"},
		Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"}}}
	for i := range targets {
		name := fmt.Sprint("app-", i)
		create(t, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: podTemplate(name)}})
		signer.Spec.RolloutRestartTargets = append(signer.Spec.RolloutRestartTargets, datasettev1alpha1.RolloutRestartTarget{Kind: "Deployment", Name: name})
	}
	create(t, signer)
	keys := tokensUnderSigner(t, ns, "churn", tokens)

	mark := m.requests.mark()
	start := time.Now()
	final := ""
	for i := 1; i <= changes; i++ {
		final = fmt.Sprint("k", i)
		secret.StringData = map[string]string{defaultSigningKey: final}
		NewWithT(t).Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		time.Sleep(500 * time.Millisecond)
	}
	churn := time.Since(start)
	for _, key := range keys { // the newest key wins
		NewWithT(t).Eventually(func(g Gomega) {
			var s corev1.Secret
			g.Expect(k8sClient.Get(ctx, key, &s)).To(Succeed())
			_, err := dstoken.NewVerifier([]byte(final)).Verify(string(s.Data[tokenKey]), dstoken.VerifyOptions{Now: time.Now()})
			g.Expect(err).NotTo(HaveOccurred())
		}, 2*floor+eventually, poll).Should(Succeed())
	}
	NewWithT(t).Eventually(func() string {
		var got datasettev1alpha1.DatasetteSigner
		NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(signer), &got)).To(Succeed())
		return got.Status.RestartedForKey
	}, 2*floor+eventually, poll).Should(Equal(getSecretVersion(t, secret)))
	waitQuiet(t, m.requests)

	// At most one key change per floor takes effect: the first at once, the rest at each floor's end.
	effective := 1 + int((churn+floor-1)/floor)
	secretWrites := len(m.requests.since(mark, secretWrites))
	restarts := len(m.requests.since(mark, func(r apiRequest) bool { return r.resource == "deployments" && isWrite(r) }))
	t.Logf("%d key writes in %s (floor %s): %d Secret writes for %d tokens, %d restarts of %d targets; all requests: %v",
		changes, churn.Round(time.Millisecond), floor, secretWrites, tokens, restarts, targets, m.requests.summary(mark))
	if secretWrites > effective*tokens {
		t.Errorf("%d Secret writes; want at most %d (%d tokens, one re-mint per floor)", secretWrites, effective*tokens, tokens)
	}
	if restarts > effective*targets {
		t.Errorf("%d restarts; want at most %d (%d targets, once per floor)", restarts, effective*targets, targets)
	}
}

// getSecretVersion is a Secret's current resourceVersion.
func getSecretVersion(t *testing.T, s *corev1.Secret) string {
	t.Helper()
	var got corev1.Secret
	NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(s), &got)).To(Succeed())
	return got.ResourceVersion
}

// tokensUnderSigner creates n DatasetteTokens t0…t(n-1) in ns under the DatasetteSigner signer
// and waits until each is Issued.
func tokensUnderSigner(t *testing.T, ns, signer string, n int) []types.NamespacedName {
	t.Helper()
	keys := make([]types.NamespacedName, n)
	for i := range n {
		tok := newToken(ns, fmt.Sprint("t", i), "bot")
		tok.Spec.SigningSecretRef = nil
		tok.Spec.SignerRef = &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: signer}
		create(t, tok)
		keys[i] = client.ObjectKeyFromObject(tok)
	}
	for _, key := range keys {
		waitReason(t, key, datasettev1alpha1.ReasonIssued)
	}
	return keys
}
