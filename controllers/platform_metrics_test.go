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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
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

// metricsFrom makes a fake cache holding objs a source of objectCollector until the test ends,
// as a leading manager's cache is.
func metricsFrom(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	src := &metricsSource{reader: c}
	objectCollector.add(src)
	t.Cleanup(func() { objectCollector.remove(src) })
	return c
}

// TestRenewalMetric: the renewal time is published, moves with the status, and goes with the token.
func TestRenewalMetric(t *testing.T) {
	at := metav1.NewTime(time.Unix(1_800_000_000, 0))
	tok := metricsToken("metrics-renewal", "t", nil, &at)
	c := metricsFrom(t, tok)
	if got := seriesValue(t, "datasette_token_renewal_timestamp_seconds", "namespace", "metrics-renewal", "name", "t"); got != 1_800_000_000 {
		t.Errorf("renewal %v", got)
	}
	tok.Status.RenewalTime = nil
	if err := c.Update(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if n := seriesWith(t, "datasette_token_renewal_timestamp_seconds", `namespace="metrics-renewal"`); n != 0 {
		t.Errorf("%d renewal series left for a token without a renewal time", n)
	}
	if err := c.Delete(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if n := seriesWith(t, "datasette_token_renewal_timestamp_seconds", `namespace="metrics-renewal"`); n != 0 {
		t.Errorf("%d renewal series left for a deleted token", n)
	}
}

// TestTokensPerSigner counts tokens against the signer they name, across kinds, moves and deletes.
func TestTokensPerSigner(t *testing.T) {
	ns := "metrics-signers"
	local := &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "s"}
	cluster := &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: "metrics-c"}
	one, two, three := metricsToken(ns, "one", local, nil), metricsToken(ns, "two", local, nil), metricsToken(ns, "three", cluster, nil)
	c := metricsFrom(t, one, two, three)
	count := func(kind, namespace, name string) float64 {
		return seriesValue(t, "datasette_signer_tokens", "kind", kind, "namespace", namespace, "name", name)
	}
	if got := count("DatasetteSigner", ns, "s"); got != 2 {
		t.Errorf("DatasetteSigner %s/s: %v tokens, want 2", ns, got)
	}
	if got := count("ClusterDatasetteSigner", "", "metrics-c"); got != 1 {
		t.Errorf("ClusterDatasetteSigner metrics-c: %v tokens, want 1 (and no namespace label)", got)
	}
	two.Spec.SignerRef = cluster
	if err := c.Update(ctx, two); err != nil {
		t.Fatal(err)
	}
	if a, b := count("DatasetteSigner", ns, "s"), count("ClusterDatasetteSigner", "", "metrics-c"); a != 1 || b != 2 {
		t.Errorf("after a move: %v and %v, want 1 and 2", a, b)
	}
	for _, tok := range []*datasettev1alpha1.DatasetteToken{one, two, three} {
		if err := c.Delete(ctx, tok); err != nil {
			t.Fatal(err)
		}
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
	signer := &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name}}
	signer.Status.Conditions = notReady
	c := metricsFrom(t, signer)
	readyValue := func() float64 {
		return seriesValue(t, "datasette_signer_ready", "kind", "DatasetteSigner", "namespace", name.Namespace, "name", name.Name)
	}
	if got := readyValue(); got != 0 {
		t.Errorf("ready %v, want 0", got)
	}
	signer.Status.Conditions = ready
	if err := c.Update(ctx, signer); err != nil {
		t.Fatal(err)
	}
	if got := readyValue(); got != 1 {
		t.Errorf("ready %v, want 1", got)
	}
	if n := seriesWith(t, "datasette_signer_ready_reason", `namespace="metrics-ready"`); n != 1 {
		t.Errorf("%d reason series, want 1 (Ready only)", n)
	}
	if err := c.Delete(ctx, signer); err != nil {
		t.Fatal(err)
	}
	if n := seriesWith(t, "datasette_signer_ready_reason", `namespace="metrics-ready"`) + seriesWith(t, "datasette_signer_ready", `namespace="metrics-ready"`); n != 0 {
		t.Errorf("%d series left for a deleted signer", n)
	}
}

// TestObjectMetricsOnce: two caches seeing the same objects (every manager sees the
// ClusterDatasetteSigners; two managers may watch one namespace) publish each object's series
// once, and count its token once, so that a scrape does not fail on duplicate series.
func TestObjectMetricsOnce(t *testing.T) {
	ref := &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: "metrics-once"}
	objs := func() []client.Object {
		s := &datasettev1alpha1.ClusterDatasetteSigner{ObjectMeta: metav1.ObjectMeta{Name: "metrics-once"}}
		s.Status.Conditions = []metav1.Condition{{Type: datasettev1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"}}
		return []client.Object{s, metricsToken("metrics-once", "t", ref, nil)}
	}
	metricsFrom(t, objs()...)
	metricsFrom(t, objs()...)
	if n := seriesWith(t, "datasette_signer_ready", `name="metrics-once"`); n != 1 {
		t.Errorf("%d ready series for one ClusterDatasetteSigner seen by two caches, want 1", n)
	}
	if n := seriesWith(t, "datasette_token_ready", `namespace="metrics-once"`); n != 1 {
		t.Errorf("%d ready series for one DatasetteToken seen by two caches, want 1", n)
	}
	if got := seriesValue(t, "datasette_signer_tokens", "kind", "ClusterDatasetteSigner", "namespace", "", "name", "metrics-once"); got != 1 {
		t.Errorf("datasette_signer_tokens %v, want 1", got)
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

// seriesValue reads the series of metric whose labels are exactly the name, value pairs labels
// from the manager's registry, without creating it; -1 when there is none.
func seriesValue(t *testing.T, metric string, labels ...string) float64 {
	t.Helper()
	v, ok := gatheredSeries(t, metric, func(got map[string]string) bool {
		if len(got) != len(labels)/2 {
			return false
		}
		for k := 0; k+1 < len(labels); k += 2 {
			if v, ok := got[labels[k]]; !ok || v != labels[k+1] {
				return false
			}
		}
		return true
	})
	if !ok {
		return -1
	}
	return v
}

// gatheredSeries gathers the manager's registry and returns the value of the first series of
// metric whose labels match, without creating it.
func gatheredSeries(t *testing.T, metric string, match func(labels map[string]string) bool) (float64, bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if match(labels) {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
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
		return seriesValue(t, "datasette_signer_tokens", "kind", datasettev1alpha1.DatasetteSignerKind, "namespace", ns, "name", "metrics")
	}, eventually, poll).Should(Equal(2.0))

	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "metrics-key"}, Data: map[string][]byte{defaultSigningKey: []byte("k")}})
	NewWithT(t).Eventually(reason(datasettev1alpha1.ReasonSignerReady), eventually, poll).Should(Equal(1))
	if n := reason(datasettev1alpha1.ReasonSecretNotFound)(); n != 0 {
		t.Errorf("the old reason series stayed (%d)", n)
	}
	// The series are read from the manager's cache, a moment behind the API server.
	NewWithT(t).Eventually(func() float64 {
		return seriesValue(t, "datasette_signer_ready", "kind", datasettev1alpha1.DatasetteSignerKind, "namespace", ns, "name", "metrics")
	}, eventually, poll).Should(Equal(1.0), "datasette_signer_ready")
	tok := waitReason(t, types.NamespacedName{Namespace: ns, Name: "one"}, datasettev1alpha1.ReasonIssued)
	if tok.Status.RenewalTime == nil {
		t.Fatal("an issued token has no renewal time")
	}
	NewWithT(t).Eventually(func() float64 {
		return seriesValue(t, "datasette_token_renewal_timestamp_seconds", "namespace", ns, "name", "one")
	}, eventually, poll).Should(Equal(float64(tok.Status.RenewalTime.Unix())))

	NewWithT(t).Expect(k8sClient.Delete(ctx, signer)).To(Succeed())
	NewWithT(t).Eventually(func() int {
		return seriesWith(t, "datasette_signer_ready", `namespace="`+ns+`"`) + reason(datasettev1alpha1.ReasonSignerReady)()
	}, eventually, poll).Should(Equal(0))
}
