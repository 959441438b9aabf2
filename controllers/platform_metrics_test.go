package controllers

import (
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
)

func metricsToken(ns, name string, ref *datasettev1alpha1.SignerReference, renewal *metav1.Time) *datasettev1alpha1.DatasetteToken {
	return &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       datasettev1alpha1.DatasetteTokenSpec{Actor: "a", SignerRef: ref},
		Status:     datasettev1alpha1.DatasetteTokenStatus{RenewalTime: renewal},
	}
}

// TestRenewalMetric: the renewal time is published, moves with the status, and goes with the token.
func TestRenewalMetric(t *testing.T) {
	at := metav1.NewTime(time.Unix(1_800_000_000, 0))
	recordTokenMetrics(metricsToken("metrics-renewal", "t", nil, &at))
	if got := testutil.ToFloat64(tokenRenewal.WithLabelValues("metrics-renewal", "t")); got != 1_800_000_000 {
		t.Errorf("renewal %v", got)
	}
	recordTokenMetrics(metricsToken("metrics-renewal", "t", nil, nil))
	forgetTokenMetrics(types.NamespacedName{Namespace: "metrics-renewal", Name: "t"})
	if n := seriesWith(t, "datasette_token_renewal_timestamp_seconds", `namespace="metrics-renewal"`); n != 0 {
		t.Errorf("%d renewal series left for a deleted token", n)
	}
}

// TestTokensPerSigner counts tokens against the signer they name, across kinds, moves and deletes.
func TestTokensPerSigner(t *testing.T) {
	ns := "metrics-signers"
	local := &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "s"}
	cluster := &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: "metrics-c"}
	recordTokenMetrics(metricsToken(ns, "one", local, nil))
	recordTokenMetrics(metricsToken(ns, "two", local, nil))
	recordTokenMetrics(metricsToken(ns, "two", local, nil)) // a second reconcile counts once
	recordTokenMetrics(metricsToken(ns, "three", cluster, nil))
	count := func(kind, namespace, name string) float64 {
		return testutil.ToFloat64(signerTokens.WithLabelValues(kind, namespace, name))
	}
	if got := count("DatasetteSigner", ns, "s"); got != 2 {
		t.Errorf("DatasetteSigner %s/s: %v tokens, want 2", ns, got)
	}
	if got := count("ClusterDatasetteSigner", "", "metrics-c"); got != 1 {
		t.Errorf("ClusterDatasetteSigner metrics-c: %v tokens, want 1 (and no namespace label)", got)
	}
	recordTokenMetrics(metricsToken(ns, "two", cluster, nil))
	if a, b := count("DatasetteSigner", ns, "s"), count("ClusterDatasetteSigner", "", "metrics-c"); a != 1 || b != 2 {
		t.Errorf("after a move: %v and %v, want 1 and 2", a, b)
	}
	for _, n := range []string{"one", "two", "three"} {
		forgetTokenMetrics(types.NamespacedName{Namespace: ns, Name: n})
	}
	if n := seriesWith(t, "datasette_signer_tokens", `name="metrics-c"`) + seriesWith(t, "datasette_signer_tokens", `namespace="`+ns+`"`); n != 0 {
		t.Errorf("%d signer token series left when no token names them", n)
	}
}

// TestSignerReadinessMetrics: one reason series per signer, replaced when the reason changes.
func TestSignerReadinessMetrics(t *testing.T) {
	name := types.NamespacedName{Namespace: "metrics-ready", Name: "s"}
	notReady := []metav1.Condition{{Type: datasettev1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "SecretNotFound"}}
	ready := []metav1.Condition{{Type: datasettev1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"}}
	recordSignerMetrics("DatasetteSigner", name, notReady)
	if got := testutil.ToFloat64(signerReady.WithLabelValues("DatasetteSigner", name.Namespace, name.Name)); got != 0 {
		t.Errorf("ready %v, want 0", got)
	}
	recordSignerMetrics("DatasetteSigner", name, ready)
	if got := testutil.ToFloat64(signerReady.WithLabelValues("DatasetteSigner", name.Namespace, name.Name)); got != 1 {
		t.Errorf("ready %v, want 1", got)
	}
	if n := seriesWith(t, "datasette_signer_ready_reason", `namespace="metrics-ready"`); n != 1 {
		t.Errorf("%d reason series, want 1 (Ready only)", n)
	}
	forgetSignerMetrics("DatasetteSigner", name)
	if n := seriesWith(t, "datasette_signer_ready_reason", `namespace="metrics-ready"`) + seriesWith(t, "datasette_signer_ready", `namespace="metrics-ready"`); n != 0 {
		t.Errorf("%d series left for a deleted signer", n)
	}
}

func TestBuildInfo(t *testing.T) {
	if got := testutil.ToFloat64(buildInfo.WithLabelValues(version.Version, version.Commit, runtime.Version())); got != 1 {
		t.Errorf("build info %v", got)
	}
	if n := seriesWith(t, "datasette_token_operator_build_info", `goversion="`+runtime.Version()+`"`); n != 1 {
		t.Errorf("%d build info series on the manager's registry, want 1", n)
	}
}

// seriesWith counts the series of metric on the manager's registry whose labels include label.
func seriesWith(t *testing.T, metric, label string) int {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			var b strings.Builder
			for _, l := range m.GetLabel() {
				b.WriteString(l.GetName() + `="` + l.GetValue() + `",`)
			}
			if strings.Contains(b.String(), label) {
				n++
			}
		}
	}
	return n
}

// TestSignerMetricsFromReconciles: with the operator running against a real API server, a
// DatasetteSigner's readiness series follow its status (SecretNotFound, then Ready), the tokens
// naming it are counted, a token's renewal time is published, and deleting the signer drops its
// readiness series.
func TestSignerMetricsFromReconciles(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signer := &datasettev1alpha1.DatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "metrics"},
		Spec:       datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "metrics-key"}},
	}
	create(t, signer)
	for _, name := range []string{"one", "two"} {
		tok := newToken(ns, name, "bot")
		tok.Spec.SigningSecretRef = nil
		tok.Spec.SignerRef = &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "metrics"}
		tok.Spec.ExpiresAfter = &metav1.Duration{Duration: 24 * time.Hour}
		create(t, tok)
	}
	reason := func(r string) func() int {
		return func() int {
			return seriesWith(t, "datasette_signer_ready_reason", `namespace="`+ns+`",reason="`+r+`"`)
		}
	}
	NewWithT(t).Eventually(reason(datasettev1alpha1.ReasonSecretNotFound), eventually, poll).Should(Equal(1))
	NewWithT(t).Eventually(func() float64 {
		return testutil.ToFloat64(signerTokens.WithLabelValues(datasettev1alpha1.DatasetteSignerKind, ns, "metrics"))
	}, eventually, poll).Should(Equal(2.0))

	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "metrics-key"}, Data: map[string][]byte{defaultSigningKey: []byte("k")}})
	NewWithT(t).Eventually(reason(datasettev1alpha1.ReasonSignerReady), eventually, poll).Should(Equal(1))
	if n := reason(datasettev1alpha1.ReasonSecretNotFound)(); n != 0 {
		t.Errorf("the old reason series stayed (%d)", n)
	}
	if got := testutil.ToFloat64(signerReady.WithLabelValues(datasettev1alpha1.DatasetteSignerKind, ns, "metrics")); got != 1 {
		t.Errorf("datasette_signer_ready %v, want 1", got)
	}
	tok := waitReason(t, types.NamespacedName{Namespace: ns, Name: "one"}, datasettev1alpha1.ReasonIssued)
	if tok.Status.RenewalTime == nil {
		t.Fatal("an issued token has no renewal time")
	}
	NewWithT(t).Eventually(func() float64 {
		return testutil.ToFloat64(tokenRenewal.WithLabelValues(ns, "one"))
	}, eventually, poll).Should(Equal(float64(tok.Status.RenewalTime.Unix())))

	NewWithT(t).Expect(k8sClient.Delete(ctx, signer)).To(Succeed())
	NewWithT(t).Eventually(func() int {
		return seriesWith(t, "datasette_signer_ready", `namespace="`+ns+`"`) + reason(datasettev1alpha1.ReasonSignerReady)()
	}, eventually, poll).Should(Equal(0))
}
