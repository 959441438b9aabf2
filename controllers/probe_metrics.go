package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// Metrics of signers' probes, read from signers' status.instance and InstanceVerified condition
// by objectCollector. They carry names, reasons and releases, never a key or a token.
var (
	signerInstanceVerifiedDesc = prometheus.NewDesc("datasette_signer_instance_verified",
		"1 when the signer's live Datasette instance accepts its key and agrees with its spec (reason KeyAccepted), else 0; "+
			"one series per signer, labelled with the InstanceVerified reason "+
			"(KeyRejected, Unreachable, SignedTokensDisabled, VersionMismatch, TTLMismatch, ProbeRefused).",
		append(signerLabels[:len(signerLabels):len(signerLabels)], "reason"), nil)
	signerInstanceInfoDesc = prometheus.NewDesc("datasette_signer_instance_info",
		"1, labelled with the Datasette release the signer's instance reported at its last probe.",
		append(signerLabels[:len(signerLabels):len(signerLabels)], "version"), nil)
)

// collectInstance sends the series of a signer's last probe: its InstanceVerified reason and its
// instance's release. A signer that was never probed, or probes no more (no status.instance:
// no spec.probe, or a refused probe), has none.
func collectInstance(ch chan<- prometheus.Metric, key signerKey, status *datasettev1alpha1.DatasetteSignerStatus) {
	if status.Instance == nil {
		return
	}
	c := meta.FindStatusCondition(status.Conditions, datasettev1alpha1.ConditionInstanceVerified)
	if c == nil {
		return
	}
	verified := 0.0
	if c.Reason == datasettev1alpha1.ReasonKeyAccepted {
		verified = 1
	}
	ch <- prometheus.MustNewConstMetric(signerInstanceVerifiedDesc, prometheus.GaugeValue, verified, key.kind, key.namespace, key.name, c.Reason)
	if v := status.Instance.Version; v != "" {
		ch <- prometheus.MustNewConstMetric(signerInstanceInfoDesc, prometheus.GaugeValue, 1, key.kind, key.namespace, key.name, v)
	}
}
