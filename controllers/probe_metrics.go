package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// Metrics of signers' probes. They carry names, reasons and releases, never a key or a token.
var (
	signerInstanceVerified = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_signer_instance_verified",
		Help: "1 when the signer's live Datasette instance accepts its key and agrees with its spec (reason KeyAccepted), else 0; " +
			"one series per signer, labelled with the InstanceVerified reason " +
			"(KeyRejected, Unreachable, SignedTokensDisabled, VersionMismatch, TTLMismatch, ProbeRefused).",
	}, append(signerLabels, "reason"))
	signerInstanceInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "datasette_signer_instance_info",
		Help: "1, labelled with the Datasette release the signer's instance reported at its last probe.",
	}, append(signerLabels, "version"))
)

// signerSeries remembers each signer's last reason and version, so that old series go.
var signerSeries sync.Map // "kind/namespace/name" -> [2]string{reason, version}

func init() {
	metrics.Registry.MustRegister(signerInstanceVerified, signerInstanceInfo)
}

// recordInstanceMetrics publishes a signer's InstanceVerified reason and its instance's release.
func recordInstanceMetrics(kind, namespace, name, reason, version string) {
	key := kind + "/" + namespace + "/" + name
	if before, ok := signerSeries.Swap(key, [2]string{reason, version}); ok {
		b := before.([2]string)
		if b[0] != reason {
			signerInstanceVerified.DeleteLabelValues(kind, namespace, name, b[0])
		}
		if b[1] != version && b[1] != "" {
			signerInstanceInfo.DeleteLabelValues(kind, namespace, name, b[1])
		}
	}
	verified := 0.0
	if reason == datasettev1alpha1.ReasonKeyAccepted {
		verified = 1
	}
	signerInstanceVerified.WithLabelValues(kind, namespace, name, reason).Set(verified)
	if version != "" {
		signerInstanceInfo.WithLabelValues(kind, namespace, name, version).Set(1)
	}
}

// forgetInstanceMetrics drops the series of a signer that is gone or probes no more.
func forgetInstanceMetrics(kind, namespace, name string) {
	if before, ok := signerSeries.LoadAndDelete(kind + "/" + namespace + "/" + name); ok {
		b := before.([2]string)
		signerInstanceVerified.DeleteLabelValues(kind, namespace, name, b[0])
		if b[1] != "" {
			signerInstanceInfo.DeleteLabelValues(kind, namespace, name, b[1])
		}
	}
}
