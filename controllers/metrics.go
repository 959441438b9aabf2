package controllers

import (
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
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
	if meta.IsStatusConditionTrue(tok.Status.Conditions, datasettev1alpha1.ConditionReady) {
		ready = 1
	}
	tokenReady.WithLabelValues(tok.Namespace, tok.Name).Set(ready)
	if c := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady); c != nil {
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
	recordRenewalAndSigner(tok)
}

// forgetTokenMetrics drops the series of a deleted DatasetteToken.
func forgetTokenMetrics(name types.NamespacedName) {
	tokenReady.DeleteLabelValues(name.Namespace, name.Name)
	tokenExpiry.DeleteLabelValues(name.Namespace, name.Name)
	tokenIssued.DeleteLabelValues(name.Namespace, name.Name)
	if before, ok := readyReasons.LoadAndDelete(name); ok {
		tokenReadyReason.DeleteLabelValues(name.Namespace, name.Name, before.(string))
	}
	forgetRenewalAndSigner(name)
}

// Platform metrics (issue 18): the renewal time, signer health, tokens per signer, build info.
var (
	tokenRenewal = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_token_renewal_timestamp_seconds",
		Help: "Unix time at which the operator renews the DatasetteToken's token (status.renewalTime; absent when it never does).",
	}, tokenLabels)
	signerReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_signer_ready",
		Help: "1 when the signer (kind DatasetteSigner or ClusterDatasetteSigner) holds a usable key, else 0.",
	}, signerLabels)
	signerReadyReason = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_signer_ready_reason",
		Help: "1 for the reason of the signer's Ready condition (one series per signer): Ready, SecretNotFound, KeyMissing, ...",
	}, append(signerLabels, "reason"))
	signerTokens = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_signer_tokens",
		Help: "DatasetteTokens whose spec.signerRef names the signer (whether or not it exists).",
	}, signerLabels)
	buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_token_operator_build_info",
		Help: "1, labelled with the operator's version, commit and Go version.",
	}, []string{"version", "commit", "goversion"})
)

// signerLabels name a signer's series; namespace is empty for a ClusterDatasetteSigner.
var signerLabels = []string{"kind", "namespace", "name"}

// signerKey is a signer's series labels.
type signerKey struct{ kind, namespace, name string }

// tokenSigners counts the tokens naming each signer; signerOfToken remembers each token's signer.
var tokenSigners = struct {
	sync.Mutex
	count   map[signerKey]int
	ofToken map[types.NamespacedName]signerKey
}{count: map[signerKey]int{}, ofToken: map[types.NamespacedName]signerKey{}}

// signerReasons remembers each signer's last Ready reason, so that its old reason series goes.
var signerReasons sync.Map // signerKey -> string

func init() {
	metrics.Registry.MustRegister(tokenRenewal, signerReady, signerReadyReason, signerTokens, buildInfo)
	buildInfo.WithLabelValues(version.Version, version.Commit, runtime.Version()).Set(1)
}

// recordRenewalAndSigner publishes a token's renewal time and counts it against its signer.
func recordRenewalAndSigner(tok *datasettev1alpha1.DatasetteToken) {
	if r := tok.Status.RenewalTime; r != nil {
		tokenRenewal.WithLabelValues(tok.Namespace, tok.Name).Set(float64(r.Unix()))
	} else {
		tokenRenewal.DeleteLabelValues(tok.Namespace, tok.Name)
	}
	name := types.NamespacedName{Namespace: tok.Namespace, Name: tok.Name}
	var key signerKey
	if ref := tok.Spec.SignerRef; ref != nil {
		key = signerKey{kind: ref.Kind, name: ref.Name}
		if ref.Kind != datasettev1alpha1.ClusterDatasetteSignerKind {
			key.namespace = tok.Namespace
		}
	}
	setTokenSigner(name, key)
}

// forgetRenewalAndSigner drops a deleted token's renewal series and its count against its signer.
func forgetRenewalAndSigner(name types.NamespacedName) {
	tokenRenewal.DeleteLabelValues(name.Namespace, name.Name)
	setTokenSigner(name, signerKey{})
}

// setTokenSigner moves token's count to signer key (the zero key: none); a signer's series goes
// when no token names it.
func setTokenSigner(token types.NamespacedName, key signerKey) {
	tokenSigners.Lock()
	defer tokenSigners.Unlock()
	before, had := tokenSigners.ofToken[token]
	if had && before == key {
		return
	}
	if had {
		if n := tokenSigners.count[before] - 1; n > 0 {
			tokenSigners.count[before] = n
			signerTokens.WithLabelValues(before.kind, before.namespace, before.name).Set(float64(n))
		} else {
			delete(tokenSigners.count, before)
			signerTokens.DeleteLabelValues(before.kind, before.namespace, before.name)
		}
		delete(tokenSigners.ofToken, token)
	}
	if key == (signerKey{}) {
		return
	}
	tokenSigners.ofToken[token] = key
	tokenSigners.count[key]++
	signerTokens.WithLabelValues(key.kind, key.namespace, key.name).Set(float64(tokenSigners.count[key]))
}

// recordSignerMetrics publishes a signer's readiness from its conditions.
func recordSignerMetrics(kind string, name types.NamespacedName, conditions []metav1.Condition) {
	key := signerKey{kind: kind, namespace: name.Namespace, name: name.Name}
	ready := 0.0
	if meta.IsStatusConditionTrue(conditions, datasettev1alpha1.ConditionReady) {
		ready = 1
	}
	signerReady.WithLabelValues(kind, name.Namespace, name.Name).Set(ready)
	if c := meta.FindStatusCondition(conditions, datasettev1alpha1.ConditionReady); c != nil {
		if before, ok := signerReasons.Swap(key, c.Reason); ok && before != c.Reason {
			signerReadyReason.DeleteLabelValues(kind, name.Namespace, name.Name, before.(string))
		}
		signerReadyReason.WithLabelValues(kind, name.Namespace, name.Name, c.Reason).Set(1)
	}
}

// forgetSignerMetrics drops a deleted signer's readiness series (its token count stays while
// tokens name it).
func forgetSignerMetrics(kind string, name types.NamespacedName) {
	signerReady.DeleteLabelValues(kind, name.Namespace, name.Name)
	if before, ok := signerReasons.LoadAndDelete(signerKey{kind: kind, namespace: name.Namespace, name: name.Name}); ok {
		signerReadyReason.DeleteLabelValues(kind, name.Namespace, name.Name, before.(string))
	}
}
