package controllers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/testenv"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Tests of spec.probe against real Datasette releases ($DATASETTE_RELEASES_DIR; skipped
// without it) and a real kube-apiserver.

// probeOf is a spec.probe for url, probed every 10 s.
func probeOf(address string) *datasettev1alpha1.SignerProbe {
	return &datasettev1alpha1.SignerProbe{URL: address, Interval: &metav1.Duration{Duration: 10 * time.Second}}
}

// waitInstance waits until the ClusterDatasetteSigner's InstanceVerified condition has reason,
// and returns the signer.
func waitInstance(t *testing.T, name, reason string) *datasettev1alpha1.ClusterDatasetteSigner {
	t.Helper()
	var s datasettev1alpha1.ClusterDatasetteSigner
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Name: name}, &s)).To(Succeed())
		c := meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionInstanceVerified)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason), c.Message)
	}, 30*time.Second, poll).Should(Succeed())
	t.Logf("kubectl get cdssigner -o wide:\n%s", signerRow(&s))
	return &s
}

// signerRow renders a ClusterDatasetteSigner as `kubectl get cdssigner -o wide` does (its
// printer columns), with its conditions below.
func signerRow(s *datasettev1alpha1.ClusterDatasetteSigner) string {
	cond := func(typ string) (string, string) {
		if c := meta.FindStatusCondition(s.Status.Conditions, typ); c != nil {
			return string(c.Status), c.Reason
		}
		return "", ""
	}
	inst := s.Status.Instance
	if inst == nil {
		inst = &datasettev1alpha1.InstanceStatus{}
	}
	ready, reason := cond(datasettev1alpha1.ConditionReady)
	_, verified := cond(datasettev1alpha1.ConditionInstanceVerified)
	ttl := ""
	if s.Spec.MaxSignedTokensTTL != nil {
		ttl = s.Spec.MaxSignedTokensTTL.Duration.String()
	}
	probed := ""
	if inst.ProbedAt != nil {
		probed = inst.ProbedAt.UTC().Format(time.RFC3339)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "NAME\tREADY\tREASON\tNAMESPACE\tSECRET\tMAX TTL\tDATASETTE\tVERSION\tINSTANCE\tKEY\tPROBED\n")
	fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, ready, reason, s.Spec.SecretRef.Namespace, s.Spec.SecretRef.Name,
		ttl, s.Spec.DatasetteVersion, inst.Version, verified, inst.KeyState, probed)
	for _, c := range s.Status.Conditions {
		fmt.Fprintf(&b, "  %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	if inst.MaxSignedTokensTTL != nil || inst.AllowSignedTokens != nil {
		allow := "?"
		if inst.AllowSignedTokens != nil {
			allow = fmt.Sprint(*inst.AllowSignedTokens)
		}
		fmt.Fprintf(&b, "  status.instance: maxSignedTokensTTL=%v allowSignedTokens=%s\n", durationOf(inst.MaxSignedTokensTTL), allow)
	}
	return b.String()
}

// actorOf asks server which actor it reads token as ("" for none).
func actorOf(t *testing.T, server *testenv.DatasetteServer, token string) string {
	t.Helper()
	status, body, err := server.Get("/-/actor.json", token)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		return ""
	}
	var v struct {
		Actor *struct {
			ID string `json:"id"`
		} `json:"actor"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Actor == nil {
		return ""
	}
	return v.Actor.ID
}

// probeToken is a DatasetteToken of the ClusterDatasetteSigner signer.
func probeToken(ns, name, actor, signer string, actions ...datasettev1alpha1.Action) *datasettev1alpha1.DatasetteToken {
	tok := &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: datasettev1alpha1.DatasetteTokenSpec{
			Actor:        actor,
			SignerRef:    &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: signer},
			ExpiresAfter: &metav1.Duration{Duration: 72 * time.Hour},
		},
	}
	if len(actions) > 0 {
		tok.Spec.Restrictions = &datasettev1alpha1.Restrictions{Databases: []datasettev1alpha1.DatabaseRestriction{{Name: "_memory", Actions: actions}}}
	}
	return tok
}

// TestProbeRealMatchingKeyAndTTL: a 1.0a37 instance with the signer's key and
// max_signed_tokens_ttl 3600 is verified; its TTL dates the signer's tokens (72 h asked, 1 h
// given), and the server accepts the token.
func TestProbeRealMatchingKeyAndTTL(t *testing.T) {
	requireEnvtest(t)
	server := testenv.Datasette(t, "1.0a37").ServeT(t, "matching-key", "--setting", "max_signed_tokens_ttl", "3600")
	platform, ns := newNamespace(t), newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns, withNamespaces(ns, platform))
	signingSecret(t, platform, "datasette", "matching-key")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Probe: probeOf(server.URL)})
	s := waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyAccepted)
	inst := s.Status.Instance
	if inst.Version != "1.0a37" || durationOf(inst.MaxSignedTokensTTL) != time.Hour || inst.AllowSignedTokens == nil || !*inst.AllowSignedTokens ||
		inst.KeyState != datasettev1alpha1.KeyStateAccepted || inst.ProbedAt == nil {
		t.Fatalf("status.instance = %+v", inst)
	}
	if v, ok := gaugeOnce(t, true, "datasette_signer_instance_verified", signer.Name, datasettev1alpha1.ReasonKeyAccepted); !ok || v != 1 {
		t.Errorf("datasette_signer_instance_verified{reason=KeyAccepted} = %v (present %v)", v, ok)
	}
	if v, ok := gaugeOnce(t, true, "datasette_signer_instance_info", signer.Name, "1.0a37"); !ok || v != 1 {
		t.Errorf("datasette_signer_instance_info{version=1.0a37} = %v (present %v)", v, ok)
	}

	tok := probeToken(ns, "reader", "ci-reader", signer.Name, "view-database", "execute-sql")
	create(t, tok)
	got := waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)
	if lifetime := got.Status.ExpiresAt.Sub(got.Status.IssuedAt.Time); lifetime != time.Hour {
		t.Errorf("the token lives %s: want the instance's max_signed_tokens_ttl, 1h", lifetime)
	}
	token := tokenOf(t, client.ObjectKeyFromObject(tok))
	if actor := actorOf(t, server, token); actor != "ci-reader" {
		t.Errorf("the instance reads the token as actor %q", actor)
	}
	if strings.Contains(managerLogs.String(), "matching-key") {
		t.Error("the key appears in the manager's logs")
	}

	// A spec.maxSignedTokensTTL longer than the instance's is reported.
	setSignerSpec(t, signer.Name, func(s *datasettev1alpha1.ClusterDatasetteSigner) {
		s.Spec.MaxSignedTokensTTL = &metav1.Duration{Duration: 2 * time.Hour}
	})
	waitInstance(t, signer.Name, datasettev1alpha1.ReasonTTLMismatch)
}

// setSignerSpec changes a ClusterDatasetteSigner's spec.
func setSignerSpec(t *testing.T, name string, change func(*datasettev1alpha1.ClusterDatasetteSigner)) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		var s datasettev1alpha1.ClusterDatasetteSigner
		if err := k8sClient.Get(ctx, types.NamespacedName{Name: name}, &s); err != nil {
			return err
		}
		change(&s)
		return k8sClient.Update(ctx, &s)
	}, eventually, poll).Should(Succeed())
}

// TestProbeRealWrongKey: an instance started with another key rejects the signer's: the
// signer says KeyRejected, its tokens InstanceRejectsKey (Reconciling) with nothing written;
// once the Secret holds the instance's key, the token is issued and accepted.
func TestProbeRealWrongKey(t *testing.T) {
	requireEnvtest(t)
	server := testenv.Datasette(t, "1.0a37").ServeT(t, "the-instance-key")
	platform, ns := newNamespace(t), newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns, withNamespaces(ns, platform))
	secret := signingSecret(t, platform, "datasette", "a-typo-key")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Probe: probeOf(server.URL)})
	s := waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyRejected)
	if s.Status.Instance.KeyState != datasettev1alpha1.KeyStateRejected || s.Status.Instance.Version != "1.0a37" {
		t.Fatalf("status.instance = %+v", s.Status.Instance)
	}
	if v, ok := gaugeOnce(t, true, "datasette_signer_instance_verified", signer.Name, datasettev1alpha1.ReasonKeyRejected); !ok || v != 0 {
		t.Errorf("datasette_signer_instance_verified{reason=KeyRejected} = %v (present %v), want 0", v, ok)
	}
	tok := probeToken(ns, "reader", "ci-reader", signer.Name)
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	got := waitReason(t, key, datasettev1alpha1.ReasonInstanceRejectsKey)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionReconciling) || meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) {
		t.Errorf("InstanceRejectsKey must be Reconciling, not Stalled: %+v", got.Status.Conditions)
	}
	requireNoSecret(t, ns, "reader")
	t.Logf("token: Ready=False %s", datasettev1alpha1.ReasonInstanceRejectsKey)

	secret.StringData = map[string]string{defaultSigningKey: "the-instance-key"}
	if err := k8sClient.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyAccepted)
	if _, ok := gaugeOnce(t, false, "datasette_signer_instance_verified", signer.Name, datasettev1alpha1.ReasonKeyRejected); ok {
		t.Error("the KeyRejected series outlives the fix")
	}
	if v, ok := gaugeOnce(t, true, "datasette_signer_instance_verified", signer.Name, datasettev1alpha1.ReasonKeyAccepted); !ok || v != 1 {
		t.Errorf("datasette_signer_instance_verified{reason=KeyAccepted} = %v (present %v) after the fix", v, ok)
	}
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	if actor := actorOf(t, server, tokenOf(t, key)); actor != "ci-reader" {
		t.Errorf("the instance reads the token as actor %q", actor)
	}
}

// TestProbeRealUnreachable: nothing listens at the URL: the signer says Unreachable, and its
// tokens are issued as without a probe.
func TestProbeRealUnreachable(t *testing.T) {
	requireEnvtest(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.URL
	closed.Close()
	platform, ns := newNamespace(t), newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns, withNamespaces(ns, platform))
	signingSecret(t, platform, "datasette", "k")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Probe: probeOf(addr)})
	s := waitInstance(t, signer.Name, datasettev1alpha1.ReasonUnreachable)
	if c := meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionInstanceVerified); !strings.Contains(c.Message, "GET /-/actor.json") {
		t.Errorf("message %q", c.Message)
	}
	tok := probeToken(ns, "reader", "ci-reader", signer.Name)
	create(t, tok)
	waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)
}

// TestProbeRealDiscovers1_0a19: a signer without spec.datasetteVersion whose instance runs
// 1.0a19 mints by 1.0a19's rules: an action it does not know is refused, and a token it knows
// is accepted by the server without a 500.
func TestProbeRealDiscovers1_0a19(t *testing.T) {
	requireEnvtest(t)
	server := testenv.Datasette(t, "1.0a19").ServeT(t, "k19")
	platform, ns := newNamespace(t), newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns, withNamespaces(ns, platform))
	signingSecret(t, platform, "datasette", "k19")
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Probe: probeOf(server.URL)})
	s := waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyAccepted)
	if s.Status.Instance.Version != "1.0a19" {
		t.Fatalf("version %q", s.Status.Instance.Version)
	}

	unknown := probeToken(ns, "alter", "ci-alter", signer.Name, "set-column-type")
	create(t, unknown)
	got := waitReason(t, client.ObjectKeyFromObject(unknown), datasettev1alpha1.ReasonUnsupportedByDatasette)
	if c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady); !strings.Contains(c.Message, "1.0a19") {
		t.Errorf("message %q does not name the release", c.Message)
	}
	requireNoSecret(t, ns, "alter")

	known := probeToken(ns, "reader", "ci-reader", signer.Name, "view-instance", "view-database", "execute-sql")
	create(t, known)
	waitReason(t, client.ObjectKeyFromObject(known), datasettev1alpha1.ReasonIssued)
	token := tokenOf(t, client.ObjectKeyFromObject(known))
	if actor := actorOf(t, server, token); actor != "ci-reader" {
		t.Errorf("1.0a19 reads the token as actor %q", actor)
	}
	status, _, err := server.Get("/_memory.json?sql=select+1", token)
	if err != nil || status != http.StatusOK {
		t.Errorf("1.0a19 answers %d (%v) to a query with the token", status, err)
	}

	// A spec.datasetteVersion that is not what the instance runs is reported.
	setSignerSpec(t, signer.Name, func(s *datasettev1alpha1.ClusterDatasetteSigner) { s.Spec.DatasetteVersion = "1.0a37" })
	waitInstance(t, signer.Name, datasettev1alpha1.ReasonVersionMismatch)
}

// TestProbeRefusedForNamespacedSigners: without --allow-namespaced-probes a DatasetteSigner's
// probe is refused with a status, and no request reaches the URL; with it, the probe runs.
func TestProbeRefusedForNamespacedSigners(t *testing.T) {
	requireEnvtest(t)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	for _, allowed := range []bool{false, true} {
		ns := newNamespace(t)
		startManager(t, ns, func(_ *ctrl.Options, r *DatasetteTokenReconciler) {
			r.AllowNamespacedProbes = allowed
			// The test server listens on loopback, which a DatasetteSigner's probe may reach only when allowed so.
			r.ProbeAddresses = &dsprobe.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		})
		signingSecret(t, ns, "datasette", "k")
		signer := &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own"},
			Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{Probe: probeOf(srv.URL)}}}
		create(t, signer)
		want := datasettev1alpha1.ReasonProbeRefused
		if allowed {
			want = datasettev1alpha1.ReasonUnreachable // the test server answers 404
		}
		NewWithT(t).Eventually(func(g Gomega) {
			var s datasettev1alpha1.DatasetteSigner
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(signer), &s)).To(Succeed())
			c := meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionInstanceVerified)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(want))
		}, eventually, poll).Should(Succeed())
		if n := hits.Load(); (n > 0) != allowed {
			t.Errorf("allowed=%v: %d requests reached the URL", allowed, n)
		}
	}
}

// TestProbeRealRotationWaitsForTheInstance rotates a probed ClusterDatasetteSigner's key under
// 3 namespaces × 20 tokens. The signer restarts its Datasette workload; the instance itself is
// restarted with the new key some seconds later: until then every token keeps the token signed
// with the old key (RotationPending, still Ready); after, every token is re-minted and accepted
// by the restarted server.
func TestProbeRealRotationWaitsForTheInstance(t *testing.T) {
	requireEnvtest(t)
	const perNamespace = 20
	release := testenv.Datasette(t, "1.0a37")
	oldServer := release.ServeT(t, "old-key")
	// The instance's address, as a Service's would be: it forwards to whichever server runs.
	instance := newSwitch(t, oldServer.URL)
	platform := newNamespace(t)
	namespaces := []string{newNamespace(t), newNamespace(t), newNamespace(t)}
	for _, ns := range namespaces {
		labelTeamData(t, ns)
	}
	startManager(t, namespaces[0], withNamespaces(append([]string{platform}, namespaces...)...),
		func(_ *ctrl.Options, r *DatasetteTokenReconciler) { r.MaxConcurrentReconciles = 4 }) // the manager's default
	deployment := workloads(t, platform, "datasette")[:1]
	signing := signingSecret(t, platform, "datasette", "old-key")
	probe := probeOf(instance.URL)
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Probe: probe,
		RolloutRestartTargets: []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "datasette"}}})
	waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyAccepted)
	keys := make([]types.NamespacedName, 0, len(namespaces)*perNamespace)
	for _, ns := range namespaces {
		for i := range perNamespace {
			tok := probeToken(ns, fmt.Sprintf("tok-%02d", i), fmt.Sprintf("ci-%02d", i), signer.Name)
			create(t, tok)
			keys = append(keys, client.ObjectKeyFromObject(tok))
		}
	}
	for _, key := range keys {
		waitReason(t, key, datasettev1alpha1.ReasonIssued)
	}
	// countUnder counts the tokens that verify under key.
	countUnder := func(key string) int {
		n := 0
		verifier := dstoken.NewVerifier([]byte(key))
		for _, k := range keys {
			var s corev1.Secret
			if err := k8sClient.Get(ctx, k, &s); err != nil {
				continue
			}
			if _, err := verifier.Verify(string(s.Data[tokenKey]), dstoken.VerifyOptions{Now: time.Now()}); err == nil {
				n++
			}
		}
		return n
	}

	signing.StringData = map[string]string{defaultSigningKey: "new-key"}
	if err := k8sClient.Update(ctx, signing); err != nil {
		t.Fatal(err)
	}
	// The signer restarts its workload and waits; the tokens keep their token.
	s := waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyRejected)
	if s.Status.Instance.KeyState != datasettev1alpha1.KeyStateRotationPending {
		t.Fatalf("keyState %q, want RotationPending", s.Status.Instance.KeyState)
	}
	NewWithT(t).Eventually(func() string { return restartedAt(t, deployment)["Deployment"] }, eventually, poll).ShouldNot(BeEmpty())
	for _, key := range keys {
		waitReason(t, key, datasettev1alpha1.ReasonRotationPending)
	}
	time.Sleep(6 * time.Second) // the instance takes its time to restart
	if n := countUnder("old-key"); n != len(keys) {
		t.Fatalf("%d of %d tokens still signed with the old key before the instance restarted", n, len(keys))
	}
	for _, key := range keys[:3] {
		if actor := actorOf(t, oldServer, tokenOf(t, key)); actor == "" {
			t.Errorf("the old instance rejects %s's token while the rotation waits", key)
		}
	}

	// The instance restarts with the new key, behind the same address.
	oldServer.Stop()
	instance.to("")
	newServer := release.ServeT(t, "new-key")
	instance.to(newServer.URL)
	restarted := time.Now()
	NewWithT(t).Eventually(func() int { return countUnder("new-key") }, time.Minute, 50*time.Millisecond).Should(Equal(len(keys)))
	elapsed := time.Since(restarted)
	t.Logf("instance restarted with the new key → last of %d tokens (%d namespaces × %d) re-minted in %s",
		len(keys), len(namespaces), perNamespace, elapsed.Round(time.Millisecond))
	waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyAccepted)
	for _, key := range keys {
		waitReason(t, key, datasettev1alpha1.ReasonIssued)
		if actor := actorOf(t, newServer, tokenOf(t, key)); actor == "" {
			t.Errorf("the restarted instance rejects %s's token", key)
		}
	}
}

// instanceSwitch is a reverse proxy standing for a Service in front of a Datasette instance:
// it forwards to the server it is switched to, and answers 503 while there is none.
type instanceSwitch struct {
	*httptest.Server
	backend atomic.Pointer[url.URL]
}

func newSwitch(t *testing.T, backend string) *instanceSwitch {
	t.Helper()
	s := &instanceSwitch{}
	s.to(backend)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := s.backend.Load()
		if b == nil {
			http.Error(w, "no endpoints", http.StatusServiceUnavailable)
			return
		}
		httputil.NewSingleHostReverseProxy(b).ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// to switches the proxy to backend ("" for none).
func (s *instanceSwitch) to(backend string) {
	if backend == "" {
		s.backend.Store(nil)
		return
	}
	u, err := url.Parse(backend)
	if err != nil {
		panic(err)
	}
	s.backend.Store(u)
}

// gauge reads the ClusterDatasetteSigner name's series of metric whose last label (reason or
// version) is value from the manager's registry, without creating it.
func gauge(t *testing.T, metric, name, value string) (float64, bool) {
	t.Helper()
	return gatheredSeries(t, metric, func(labels map[string]string) bool {
		return labels["kind"] == datasettev1alpha1.ClusterDatasetteSignerKind && labels["name"] == name &&
			(labels["reason"] == value || labels["version"] == value)
	})
}

// gaugeOnce is gauge once the series is present (present true) or absent (false), or at the
// end of eventually: the series are read from the manager's cache, a moment behind the API
// server that the waits read.
func gaugeOnce(t *testing.T, present bool, metric, name, value string) (float64, bool) {
	t.Helper()
	for end := time.Now().Add(eventually); ; time.Sleep(poll) {
		if v, ok := gauge(t, metric, name, value); ok == present || time.Now().After(end) {
			return v, ok
		}
	}
}

// TestProbeRealRotationTimeout: the key changes and the instance never restarts with it: the
// tokens keep their token until probe.rotationTimeout, then are re-minted anyway, and the signer
// says so.
func TestProbeRealRotationTimeout(t *testing.T) {
	requireEnvtest(t)
	server := testenv.Datasette(t, "1.0a37").ServeT(t, "old-key")
	platform, ns := newNamespace(t), newNamespace(t)
	labelTeamData(t, ns)
	startManager(t, ns, withNamespaces(ns, platform))
	signing := signingSecret(t, platform, "datasette", "old-key")
	probe := probeOf(server.URL)
	probe.RotationTimeout = &metav1.Duration{Duration: 10 * time.Second}
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Probe: probe})
	waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyAccepted)
	tok := probeToken(ns, "reader", "ci-reader", signer.Name)
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	old := tokenOf(t, key)

	changed := time.Now()
	signing.StringData = map[string]string{defaultSigningKey: "new-key"}
	if err := k8sClient.Update(ctx, signing); err != nil {
		t.Fatal(err)
	}
	waitReason(t, key, datasettev1alpha1.ReasonRotationPending)
	if tokenOf(t, key) != old {
		t.Fatal("the token changed while the rotation waits")
	}
	NewWithT(t).Eventually(func(g Gomega) {
		var s datasettev1alpha1.ClusterDatasetteSigner
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Name: signer.Name}, &s)).To(Succeed())
		g.Expect(s.Status.Instance.KeyState).To(Equal(datasettev1alpha1.KeyStateRotationTimedOut))
	}, 30*time.Second, poll).Should(Succeed())
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	if waited := time.Since(changed); waited < 10*time.Second {
		t.Errorf("re-minted %s after the key changed, before the 10s rotationTimeout", waited)
	}
	if _, err := dstoken.NewVerifier([]byte("new-key")).Verify(tokenOf(t, key), dstoken.VerifyOptions{Now: time.Now()}); err != nil {
		t.Errorf("after the timeout the token is not signed with the new key: %v", err)
	}
	s := waitInstance(t, signer.Name, datasettev1alpha1.ReasonKeyRejected)
	if c := meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionInstanceVerified); !strings.Contains(c.Message, "re-minted with it anyway") {
		t.Errorf("message %q does not say the tokens were re-minted anyway", c.Message)
	}
}
