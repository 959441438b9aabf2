package controllers

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
)

// tokenLabels name a DatasetteToken's series.
var tokenLabels = []string{"namespace", "name"}

// signerLabels name a signer's series; namespace is empty for a ClusterDatasetteSigner.
var signerLabels = []string{"kind", "namespace", "name"}

// Metrics on the manager's endpoint. They carry names and times, never a key or a token.
// The mints counter and the build info are kept by the operator; the series that describe
// objects (a token's dates and readiness, a signer's readiness, its tokens and its instance) are
// read from the manager's cache at each scrape by objectCollector.
var (
	tokenMints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "datasette_token_mints_total",
		Help: "Tokens minted, by reason: issue, renewal, rotation, repair or manual.",
	}, []string{"reason"})
	buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_token_operator_build_info",
		Help: "1, labelled with the operator's version, commit and Go version.",
	}, []string{"version", "commit", "goversion"})
)

// The descriptions of the series objectCollector reads from the cache.
var (
	tokenExpiryDesc = prometheus.NewDesc("datasette_token_expiry_timestamp_seconds",
		"Unix time at which the DatasetteToken's current token expires (absent for tokens that never expire).", tokenLabels, nil)
	tokenIssuedDesc = prometheus.NewDesc("datasette_token_issued_timestamp_seconds",
		"Unix time at which the DatasetteToken's current token was issued.", tokenLabels, nil)
	tokenReadyReasonDesc = prometheus.NewDesc("datasette_token_ready_reason",
		"1 for the reason of the DatasetteToken's Ready condition (one series per token): Issued, Suspended, Ended, PolicyViolation, ...",
		append(tokenLabels[:len(tokenLabels):len(tokenLabels)], "reason"), nil)
	tokenReadyDesc = prometheus.NewDesc("datasette_token_ready",
		"1 when the DatasetteToken's Secret holds a valid token for its current spec, else 0.", tokenLabels, nil)
	// Platform metrics (issue 18): the renewal time, signer health, tokens per signer.
	tokenRenewalDesc = prometheus.NewDesc("datasette_token_renewal_timestamp_seconds",
		"Unix time at which the operator renews the DatasetteToken's token (status.renewalTime; absent when it never does).", tokenLabels, nil)
	signerReadyDesc = prometheus.NewDesc("datasette_signer_ready",
		"1 when the signer (kind DatasetteSigner or ClusterDatasetteSigner) holds a usable key, else 0.", signerLabels, nil)
	signerReadyReasonDesc = prometheus.NewDesc("datasette_signer_ready_reason",
		"1 for the reason of the signer's Ready condition (one series per signer): Ready, SecretNotFound, KeyMissing, ...",
		append(signerLabels[:len(signerLabels):len(signerLabels)], "reason"), nil)
	signerTokensDesc = prometheus.NewDesc("datasette_signer_tokens",
		"DatasetteTokens whose spec.signerRef names the signer (whether or not it exists).", signerLabels, nil)
)

func init() {
	metrics.Registry.MustRegister(tokenMints, buildInfo, objectCollector)
	buildInfo.WithLabelValues(version.Version, version.Commit, runtime.Version()).Set(1)
}

// collectTimeout bounds the cache reads of one scrape (they wait only for a cache not yet synced).
const collectTimeout = 5 * time.Second

// objectCollector is the one collector of the series describing DatasetteTokens and signers.
// It keeps nothing between scrapes: each scrape lists the objects from the caches of the
// managers that lead (see metricsSource), so a series goes with its object, or its reason,
// without anyone deleting it.
var objectCollector = &objectMetrics{sources: map[*metricsSource]struct{}{}}

// objectMetrics is a prometheus.Collector reading its objects from a set of client.Readers:
// one in the operator, one per running manager in the tests, which start many in one process.
type objectMetrics struct {
	mu      sync.Mutex
	sources map[*metricsSource]struct{}
}

// metricsSource is a manager's cache, read by objectCollector while the manager leads. It is a
// manager.Runnable needing leader election, so that the series are those of the replica
// reconciling the objects, as they were when reconciles set them: a follower reports none (its
// cache would say the same, and dashboards' and alerts' sums would count each object once per
// replica).
type metricsSource struct {
	reader client.Reader
}

// Start adds the source to objectCollector until ctx ends (its manager stops, or leads no more).
func (s *metricsSource) Start(ctx context.Context) error {
	objectCollector.add(s)
	<-ctx.Done()
	objectCollector.remove(s)
	return nil
}

// NeedLeaderElection says the source is read only while its manager leads.
func (*metricsSource) NeedLeaderElection() bool { return true }

func (c *objectMetrics) add(s *metricsSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources[s] = struct{}{}
}

func (c *objectMetrics) remove(s *metricsSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sources, s)
}

// Describe sends the fixed descriptions.
func (*objectMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tokenExpiryDesc, tokenIssuedDesc, tokenReadyReasonDesc, tokenReadyDesc, tokenRenewalDesc,
		signerReadyDesc, signerReadyReasonDesc, signerTokensDesc, signerInstanceVerifiedDesc, signerInstanceInfoDesc} {
		ch <- d
	}
}

// signerKey is a signer's series labels.
type signerKey struct{ kind, namespace, name string }

// Collect lists the DatasetteTokens and signers of every source and sends their series. Two
// sources may see the same object (a ClusterDatasetteSigner, seen by every manager; two
// managers of one namespace in the tests): each object counts once, as the first source lists it.
func (c *objectMetrics) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	readers := make([]client.Reader, 0, len(c.sources))
	for s := range c.sources {
		readers = append(readers, s.reader)
	}
	c.mu.Unlock()
	if len(readers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	log := logf.Log.WithName("metrics")
	var seenTokens map[types.NamespacedName]bool
	seenSigners := map[signerKey]bool{}
	if len(readers) > 1 {
		seenTokens = map[types.NamespacedName]bool{}
	}
	tokensOf := map[signerKey]int{}
	for _, r := range readers {
		var tokens datasettev1alpha1.DatasetteTokenList
		if err := r.List(ctx, &tokens, client.UnsafeDisableDeepCopy); err != nil {
			log.Error(err, "listing DatasetteTokens for the metrics")
		}
		for i := range tokens.Items {
			tok := &tokens.Items[i]
			if seenTokens != nil {
				key := types.NamespacedName{Namespace: tok.Namespace, Name: tok.Name}
				if seenTokens[key] {
					continue
				}
				seenTokens[key] = true
			}
			collectToken(ch, tok)
			if tok.Spec.SignerRef != nil {
				tokensOf[signerKey(summaryTargetOf(tok))]++ // where its key comes from: its signer
			}
		}
		for _, kind := range signerKinds {
			list := kind.newList()
			if err := r.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
				log.Error(err, "listing "+kind.name+"s for the metrics")
			}
			items, _ := meta.ExtractList(list) // a typed list of client.Objects
			for _, item := range items {
				s := item.(client.Object)
				collectSigner(ch, seenSigners, signerKey{kind.name, s.GetNamespace(), s.GetName()}, kind.statusOf(s))
			}
		}
	}
	for key, n := range tokensOf {
		ch <- prometheus.MustNewConstMetric(signerTokensDesc, prometheus.GaugeValue, float64(n), key.kind, key.namespace, key.name)
	}
}

// collectToken sends a DatasetteToken's readiness and dates, from its status.
func collectToken(ch chan<- prometheus.Metric, tok *datasettev1alpha1.DatasetteToken) {
	ns, name := tok.Namespace, tok.Name
	ready := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady)
	ch <- prometheus.MustNewConstMetric(tokenReadyDesc, prometheus.GaugeValue, conditionTrue(ready), ns, name)
	if ready != nil {
		ch <- prometheus.MustNewConstMetric(tokenReadyReasonDesc, prometheus.GaugeValue, 1, ns, name, ready.Reason)
	}
	sendTime(ch, tokenIssuedDesc, tok.Status.IssuedAt, ns, name)
	sendTime(ch, tokenExpiryDesc, tok.Status.ExpiresAt, ns, name)
	sendTime(ch, tokenRenewalDesc, tok.Status.RenewalTime, ns, name)
}

// collectSigner sends a signer's readiness and its instance's series, once per signer.
func collectSigner(ch chan<- prometheus.Metric, seen map[signerKey]bool, key signerKey, status *datasettev1alpha1.DatasetteSignerStatus) {
	if seen[key] {
		return
	}
	seen[key] = true
	ready := meta.FindStatusCondition(status.Conditions, datasettev1alpha1.ConditionReady)
	ch <- prometheus.MustNewConstMetric(signerReadyDesc, prometheus.GaugeValue, conditionTrue(ready), key.kind, key.namespace, key.name)
	if ready != nil {
		ch <- prometheus.MustNewConstMetric(signerReadyReasonDesc, prometheus.GaugeValue, 1, key.kind, key.namespace, key.name, ready.Reason)
	}
	collectInstance(ch, key, status)
}

// conditionTrue is 1 for a condition whose status is True, else 0.
func conditionTrue(c *metav1.Condition) float64 {
	if c != nil && c.Status == metav1.ConditionTrue {
		return 1
	}
	return 0
}

// sendTime sends t as Unix seconds, when set.
func sendTime(ch chan<- prometheus.Metric, desc *prometheus.Desc, t *metav1.Time, labels ...string) {
	if t != nil {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(t.Unix()), labels...)
	}
}
