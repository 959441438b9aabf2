package controllers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// Run with
//
//	go test ./controllers -run '^$' -bench BenchmarkScrape -benchtime 200x -count 3
//
// BenchmarkScrape compares one scrape (Gather and text encoding, as the metrics endpoint does)
// of 2 000 DatasetteTokens and their signers: the gauges reconciles kept in step until issue
// 27 (re-created here, as they were, for the comparison) against objectCollector listing an
// informer cache holding the same objects. cpu-ms/op is the process's user+system CPU per scrape.
func BenchmarkScrape(b *testing.B) {
	const tokens, namespaces = 2000, 40
	toks, signers, clusterSigners := scrapeWorkload(tokens, namespaces)
	b.Run("gauges", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		old := newOldGauges(reg)
		for i := range toks.Items {
			old.recordToken(&toks.Items[i])
		}
		for i := range signers.Items {
			s := &signers.Items[i]
			old.recordSigner(datasettev1alpha1.DatasetteSignerKind, s.Namespace, s.Name, &s.Status)
		}
		for i := range clusterSigners.Items {
			s := &clusterSigners.Items[i]
			old.recordSigner(datasettev1alpha1.ClusterDatasetteSignerKind, "", s.Name, &s.Status)
		}
		benchScrape(b, reg)
	})
	b.Run("collector", func(b *testing.B) {
		c := informerCache(b, toks, signers, clusterSigners)
		coll := &objectMetrics{sources: map[*metricsSource]struct{}{{reader: c}: {}}}
		reg := prometheus.NewRegistry()
		reg.MustRegister(coll)
		benchScrape(b, reg)
	})
}

// benchScrape gathers and encodes reg b.N times, reporting the series and the CPU per scrape.
func benchScrape(b *testing.B, reg *prometheus.Registry) {
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	series := 0
	for _, f := range fams {
		series += len(f.GetMetric())
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		fams, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range fams {
			if err := enc.Encode(f); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(series), "series")
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scrapeWorkload is tokens DatasetteTokens spread over namespaces namespaces, each with a
// DatasetteSigner; half the tokens name it, half one of two probed ClusterDatasetteSigners.
func scrapeWorkload(tokens, namespaces int) (*datasettev1alpha1.DatasetteTokenList, *datasettev1alpha1.DatasetteSignerList,
	*datasettev1alpha1.ClusterDatasetteSignerList) {
	now := metav1.NewTime(time.Unix(1_800_000_000, 0))
	later, renew := metav1.NewTime(now.Add(24*time.Hour)), metav1.NewTime(now.Add(16*time.Hour))
	ready := []metav1.Condition{
		{Type: datasettev1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: datasettev1alpha1.ReasonIssued, Message: "the Secret holds a token", LastTransitionTime: now},
		{Type: datasettev1alpha1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: datasettev1alpha1.ReasonIssued, LastTransitionTime: now},
		{Type: datasettev1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: datasettev1alpha1.ReasonIssued, LastTransitionTime: now},
	}
	signerReady := []metav1.Condition{{Type: datasettev1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: datasettev1alpha1.ReasonSignerReady, LastTransitionTime: now}}
	toks := &datasettev1alpha1.DatasetteTokenList{}
	for i := range tokens {
		ns := fmt.Sprintf("team-%02d", i%namespaces)
		ref := &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "signer"}
		if i%2 == 1 {
			ref = &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: fmt.Sprintf("platform-%d", i%4/2)}
		}
		tok := datasettev1alpha1.DatasetteToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("token-%04d", i), ResourceVersion: "1", Generation: 1},
			Spec:       datasettev1alpha1.DatasetteTokenSpec{Actor: "bot", SignerRef: ref, ExpiresAfter: &metav1.Duration{Duration: 24 * time.Hour}},
			Status: datasettev1alpha1.DatasetteTokenStatus{ObservedGeneration: 1, Conditions: ready,
				IssuedAt: &now, ExpiresAt: &later, RenewalTime: &renew},
		}
		toks.Items = append(toks.Items, tok)
	}
	signers := &datasettev1alpha1.DatasetteSignerList{}
	for i := range namespaces {
		s := datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("team-%02d", i), Name: "signer", ResourceVersion: "1"}}
		s.Status.Conditions = signerReady
		signers.Items = append(signers.Items, s)
	}
	clusterSigners := &datasettev1alpha1.ClusterDatasetteSignerList{}
	for i := range 2 {
		s := datasettev1alpha1.ClusterDatasetteSigner{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("platform-%d", i), ResourceVersion: "1"}}
		s.Status.Conditions = append(signerReady[:1:1], metav1.Condition{Type: datasettev1alpha1.ConditionInstanceVerified,
			Status: metav1.ConditionTrue, Reason: datasettev1alpha1.ReasonKeyAccepted, LastTransitionTime: now})
		s.Status.Instance = &datasettev1alpha1.InstanceStatus{Version: "1.0a37", ProbedAt: &now}
		clusterSigners.Items = append(clusterSigners.Items, s)
	}
	return toks, signers, clusterSigners
}

// informerCache is a controller-runtime cache, with the operator's options, whose informers
// list lists and watch nothing: the manager's cache, without an API server.
func informerCache(b testing.TB, lists ...runtime.Object) cache.Cache {
	b.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	gv := datasettev1alpha1.GroupVersion
	mapper.Add(gv.WithKind("DatasetteToken"), meta.RESTScopeNamespace)
	mapper.Add(gv.WithKind("DatasetteSigner"), meta.RESTScopeNamespace)
	mapper.Add(gv.WithKind("ClusterDatasetteSigner"), meta.RESTScopeRoot)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Secret"), meta.RESTScopeNamespace) // CacheOptions' ByObject
	listOf := map[string]runtime.Object{}
	for _, l := range lists {
		listOf[fmt.Sprintf("%T", l)] = l
	}
	opts := CacheOptions()
	opts.Scheme, opts.Mapper, opts.HTTPClient = scheme, mapper, &http.Client{}
	opts.NewInformer = func(_ toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
		list := listOf[fmt.Sprintf("%TList", obj)]
		lw := &toolscache.ListWatch{
			ListWithContextFunc:  func(context.Context, metav1.ListOptions) (runtime.Object, error) { return list.DeepCopyObject(), nil },
			WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
		}
		return toolscache.NewSharedIndexInformer(listOnly{lw}, obj, resync, indexers)
	}
	c, err := cache.New(&rest.Config{Host: "http://127.0.0.1:1"}, opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = c.Start(ctx) }()
	for _, obj := range []runtime.Object{&datasettev1alpha1.DatasetteToken{}, &datasettev1alpha1.DatasetteSigner{}, &datasettev1alpha1.ClusterDatasetteSigner{}} {
		if _, err := c.GetInformer(ctx, obj.(client.Object)); err != nil {
			b.Fatal(err)
		}
	}
	syncCtx, done := context.WithTimeout(ctx, 10*time.Second)
	defer done()
	if !c.WaitForCacheSync(syncCtx) {
		b.Fatal("the cache did not sync")
	}
	return c
}

// listOnly is a ListWatch without watch-list semantics: the reflector lists, then watches.
type listOnly struct{ *toolscache.ListWatch }

func (listOnly) IsWatchListSemanticsUnSupported() bool { return true }

// oldGauges are the token and signer gauges as reconciles kept them until issue 27, item 4.
type oldGauges struct {
	expiry, issued, ready, renewal, readyReason                  *prometheus.GaugeVec
	signerReady, signerReadyReason, signerTokens, verified, info *prometheus.GaugeVec
	tokensOf                                                     map[signerKey]int
}

func newOldGauges(reg *prometheus.Registry) *oldGauges {
	gauge := func(desc *prometheus.Desc, labels ...string) *prometheus.GaugeVec {
		name, help := descNameHelp(desc)
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	return &oldGauges{
		expiry: gauge(tokenExpiryDesc, tokenLabels...), issued: gauge(tokenIssuedDesc, tokenLabels...),
		ready: gauge(tokenReadyDesc, tokenLabels...), renewal: gauge(tokenRenewalDesc, tokenLabels...),
		readyReason:       gauge(tokenReadyReasonDesc, "namespace", "name", "reason"),
		signerReady:       gauge(signerReadyDesc, signerLabels...),
		signerReadyReason: gauge(signerReadyReasonDesc, "kind", "namespace", "name", "reason"),
		signerTokens:      gauge(signerTokensDesc, signerLabels...),
		verified:          gauge(signerInstanceVerifiedDesc, "kind", "namespace", "name", "reason"),
		info:              gauge(signerInstanceInfoDesc, "kind", "namespace", "name", "version"),
		tokensOf:          map[signerKey]int{},
	}
}

func (g *oldGauges) recordToken(tok *datasettev1alpha1.DatasetteToken) {
	ready := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady)
	g.ready.WithLabelValues(tok.Namespace, tok.Name).Set(conditionTrue(ready))
	if ready != nil {
		g.readyReason.WithLabelValues(tok.Namespace, tok.Name, ready.Reason).Set(1)
	}
	g.issued.WithLabelValues(tok.Namespace, tok.Name).Set(float64(tok.Status.IssuedAt.Unix()))
	g.expiry.WithLabelValues(tok.Namespace, tok.Name).Set(float64(tok.Status.ExpiresAt.Unix()))
	g.renewal.WithLabelValues(tok.Namespace, tok.Name).Set(float64(tok.Status.RenewalTime.Unix()))
	key := signerKey{kind: tok.Spec.SignerRef.Kind, name: tok.Spec.SignerRef.Name}
	if key.kind != datasettev1alpha1.ClusterDatasetteSignerKind {
		key.namespace = tok.Namespace
	}
	g.tokensOf[key]++
	g.signerTokens.WithLabelValues(key.kind, key.namespace, key.name).Set(float64(g.tokensOf[key]))
}

func (g *oldGauges) recordSigner(kind, namespace, name string, status *datasettev1alpha1.DatasetteSignerStatus) {
	ready := meta.FindStatusCondition(status.Conditions, datasettev1alpha1.ConditionReady)
	g.signerReady.WithLabelValues(kind, namespace, name).Set(conditionTrue(ready))
	if ready != nil {
		g.signerReadyReason.WithLabelValues(kind, namespace, name, ready.Reason).Set(1)
	}
	if c := meta.FindStatusCondition(status.Conditions, datasettev1alpha1.ConditionInstanceVerified); c != nil && status.Instance != nil {
		g.verified.WithLabelValues(kind, namespace, name, c.Reason).Set(conditionTrue(c))
		g.info.WithLabelValues(kind, namespace, name, status.Instance.Version).Set(1)
	}
}

// descNameHelp reads a description's name and help text.
func descNameHelp(d *prometheus.Desc) (name, help string) {
	m := regexp.MustCompile(`fqName: "([^"]*)", help: "([^"]*)"`).FindStringSubmatch(d.String())
	if m == nil {
		panic("unexpected Desc.String(): " + d.String())
	}
	return m[1], m[2]
}

// TestCollectorMatchesGauges: for the benchmark's workload, the collector's exposition is the
// gauges' to the byte: the same names, help texts, labels and values.
func TestCollectorMatchesGauges(t *testing.T) {
	toks, signers, clusterSigners := scrapeWorkload(200, 7)
	oldReg := prometheus.NewRegistry()
	old := newOldGauges(oldReg)
	for i := range toks.Items {
		old.recordToken(&toks.Items[i])
	}
	for i := range signers.Items {
		old.recordSigner(datasettev1alpha1.DatasetteSignerKind, signers.Items[i].Namespace, signers.Items[i].Name, &signers.Items[i].Status)
	}
	for i := range clusterSigners.Items {
		old.recordSigner(datasettev1alpha1.ClusterDatasetteSignerKind, "", clusterSigners.Items[i].Name, &clusterSigners.Items[i].Status)
	}
	newReg := prometheus.NewRegistry()
	newReg.MustRegister(&objectMetrics{sources: map[*metricsSource]struct{}{{reader: informerCache(t, toks, signers, clusterSigners)}: {}}})
	expose := func(reg *prometheus.Registry) string {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range fams {
			if err := enc.Encode(f); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	if a, b := expose(oldReg), expose(newReg); a != b {
		t.Errorf("the collector's exposition differs from the gauges':\n%s", cmp.Diff(a, b))
	} else if n := strings.Count(b, "\n"); n < 1000 {
		t.Errorf("only %d lines exposed", n)
	}
}
