package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// readyReasons remembers each token's last Ready reason, so that its old reason series goes.
var readyReasons sync.Map // types.NamespacedName -> string

// tokenLabels name a DatasetteToken's series.
var tokenLabels = []string{"namespace", "name"}

// Metrics on the manager's endpoint. They carry names and times, never a key or a token.
var (
	tokenExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_token_expiry_timestamp_seconds",
		Help: "Unix time at which the DatasetteToken's current token expires (absent for tokens that never expire).",
	}, tokenLabels)
	tokenIssued = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_token_issued_timestamp_seconds",
		Help: "Unix time at which the DatasetteToken's current token was issued.",
	}, tokenLabels)
	tokenReadyReason = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_token_ready_reason",
		Help: "1 for the reason of the DatasetteToken's Ready condition (one series per token): Issued, Suspended, Ended, PolicyViolation, ...",
	}, append(tokenLabels, "reason"))
	tokenReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_token_ready",
		Help: "1 when the DatasetteToken's Secret holds a valid token for its current spec, else 0.",
	}, tokenLabels)
	tokenMints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "datasette_token_mints_total",
		Help: "Tokens minted, by reason: issue, renewal, rotation, repair or manual.",
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(tokenExpiry, tokenIssued, tokenReadyReason, tokenReady, tokenMints)
}

// recordTokenMetrics publishes a DatasetteToken's readiness and expiry.
func recordTokenMetrics(tok *datasettev1alpha1.DatasetteToken) {
	ready := 0.0
	if meta.IsStatusConditionTrue(tok.Status.Conditions, ConditionReady) {
		ready = 1
	}
	tokenReady.WithLabelValues(tok.Namespace, tok.Name).Set(ready)
	if c := meta.FindStatusCondition(tok.Status.Conditions, ConditionReady); c != nil {
		key := types.NamespacedName{Namespace: tok.Namespace, Name: tok.Name}
		if before, ok := readyReasons.Swap(key, c.Reason); ok && before != c.Reason {
			tokenReadyReason.DeleteLabelValues(tok.Namespace, tok.Name, before.(string))
		}
		tokenReadyReason.WithLabelValues(tok.Namespace, tok.Name, c.Reason).Set(1)
	}
	if issued := tok.Status.IssuedAt; issued != nil {
		tokenIssued.WithLabelValues(tok.Namespace, tok.Name).Set(float64(issued.Unix()))
	}
	if exp := tok.Status.ExpiresAt; exp != nil {
		tokenExpiry.WithLabelValues(tok.Namespace, tok.Name).Set(float64(exp.Unix()))
	} else {
		tokenExpiry.DeleteLabelValues(tok.Namespace, tok.Name)
	}
}

// forgetTokenMetrics drops the series of a deleted DatasetteToken.
func forgetTokenMetrics(name types.NamespacedName) {
	tokenReady.DeleteLabelValues(name.Namespace, name.Name)
	tokenExpiry.DeleteLabelValues(name.Namespace, name.Name)
	tokenIssued.DeleteLabelValues(name.Namespace, name.Name)
	if before, ok := readyReasons.LoadAndDelete(name); ok {
		tokenReadyReason.DeleteLabelValues(name.Namespace, name.Name, before.(string))
	}
}
