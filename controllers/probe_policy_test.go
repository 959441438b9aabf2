package controllers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// TestNamespacedProbeLearnsNothingOfWhatAnswered: with --allow-namespaced-probes a tenant
// could point its DatasetteSigner's probe at any address: loopback (named "localhost", so that
// only the dial sees the address), the cloud metadata address. Before, the operator connected,
// and the condition and its event said what answered (the status code, the dial error); now the
// connection is refused when dialled, nothing reaches the server, and the tenant reads only that
// the instance did not answer as Datasette. A ClusterDatasetteSigner's condition still says why.
func TestNamespacedProbeLearnsNothingOfWhatAnswered(t *testing.T) {
	requireEnvtest(t)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Server", "kubelet")
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	platform, ns := newNamespace(t), newNamespace(t)
	startManager(t, ns, withNamespaces(ns, platform), func(_ *ctrl.Options, r *DatasetteTokenReconciler) { r.AllowNamespacedProbes = true })
	signingSecret(t, ns, "datasette", "k")
	signingSecret(t, platform, "datasette", "k")
	targets := map[string]string{
		"loopback": strings.Replace(srv.URL, "127.0.0.1", "localhost", 1),
		"metadata": "http://169.254.169.254:80",
	}
	for name, url := range targets {
		create(t, &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{Probe: probeOf(url)}}})
	}
	opaque := func(what, msg string) {
		t.Helper()
		if !strings.HasPrefix(msg, "the instance did not answer as Datasette") {
			t.Errorf("%s: %q does not say only that the instance did not answer as Datasette", what, msg)
		}
		for _, detail := range []string{"403", "forbidden", "kubelet", "127.0.0.1", "localhost", "169.254", "::1", "refused", "policy", "dial", "GET"} {
			if strings.Contains(msg, detail) {
				t.Errorf("%s: %q tells the tenant %q", what, msg, detail)
			}
		}
	}
	for name := range targets {
		var s datasettev1alpha1.DatasetteSigner
		NewWithT(t).Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)).To(Succeed())
			c := meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionInstanceVerified)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(datasettev1alpha1.ReasonUnreachable), c.Message)
		}, eventually, poll).Should(Succeed())
		opaque(name+"'s condition", meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionInstanceVerified).Message)
		opaque(name+"'s event", waitEvent(t, ns, name, datasettev1alpha1.ReasonUnreachable).Note)
	}
	if n := hits.Load(); n > 0 {
		t.Errorf("%d requests of a DatasetteSigner's probe reached a loopback server", n)
	}

	// The platform team's signer says why.
	signer := clusterSigner(t, platform, datasettev1alpha1.SignerSettings{Probe: probeOf("http://169.254.169.254:80")})
	c := meta.FindStatusCondition(waitInstance(t, signer.Name, datasettev1alpha1.ReasonUnreachable).Status.Conditions, datasettev1alpha1.ConditionInstanceVerified)
	if !strings.Contains(c.Message, "169.254.169.254:80 is a link-local address") || !strings.Contains(c.Message, "address policy") {
		t.Errorf("a ClusterDatasetteSigner's condition %q does not say that the address policy refused the metadata address", c.Message)
	}
}
