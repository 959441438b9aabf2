package controllers

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// TestNoSecretLeaks runs a whole lifecycle (failure, issue, renewal, rotation, tampering, a
// conflict) and then looks for every signing key and every token, whole or in part, in the
// managers' logs, in the events, in the status and in the metrics.
func TestNoSecretLeaks(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	g := NewWithT(t)
	keys := []string{"first-signing-key-8f2c", "rotated-signing-key-77d1"}
	var tokens []string
	remember := func(name string) {
		if tok := string(outputSecret(t, ns, name).Data["token"]); tok != "" && !slices.Contains(tokens, tok) {
			tokens = append(tokens, tok)
		}
	}

	tok := newToken(ns, "lifecycle", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: 4 * time.Second}
	tok.Spec.RenewBefore = &metav1.Duration{Duration: 2 * time.Second}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonSigningSecretNotFound)
	signing := signingSecret(t, ns, "datasette", keys[0])
	first := waitReason(t, key, datasettev1alpha1.ReasonIssued)
	remember("lifecycle")

	// Renewal.
	waitReissued(t, key, first.Status.IssuedAt.Time)
	remember("lifecycle")

	// Rotation.
	signing.StringData = map[string]string{defaultSigningKey: keys[1]}
	g.Expect(k8sClient.Update(ctx, signing)).To(Succeed())
	waitEvent(t, ns, "datasette", "TokensReminted")
	remember("lifecycle")

	// Tampering.
	s := outputSecret(t, ns, "lifecycle")
	s.Data["token"] = []byte("edited" + tokens[0])
	g.Expect(k8sClient.Update(ctx, s)).To(Succeed())
	g.Eventually(func() string { return string(outputSecret(t, ns, "lifecycle").Data["token"]) }, eventually, poll).
		ShouldNot(HavePrefix("edited"))
	remember("lifecycle")

	// A conflict, whose foreign Secret holds a token too.
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign"}, StringData: map[string]string{"token": tokens[1]}}
	create(t, foreign)
	clash := newToken(ns, "clash", "bot")
	clash.Spec.SecretName = "foreign"
	create(t, clash)
	waitReason(t, client.ObjectKeyFromObject(clash), datasettev1alpha1.ReasonSecretConflict)

	// Where a secret could leak.
	places := map[string]string{"manager logs": managerLogs.String()}
	var events eventsv1.EventList
	g.Expect(k8sClient.List(ctx, &events)).To(Succeed())
	eventsJSON, _ := json.Marshal(events.Items)
	places["events"] = string(eventsJSON)
	var toks datasettev1alpha1.DatasetteTokenList
	g.Expect(k8sClient.List(ctx, &toks, client.InNamespace(ns))).To(Succeed())
	statusJSON, _ := json.Marshal(toks.Items)
	places["DatasetteTokens"] = string(statusJSON)
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	metricsJSON, _ := json.Marshal(families)
	places["metrics"] = string(metricsJSON)

	if len(tokens) < 3 || len(events.Items) == 0 || !strings.Contains(places["manager logs"], "lifecycle") {
		t.Fatalf("the lifecycle did not run as planned: %d tokens, %d events", len(tokens), len(events.Items))
	}
	for where, text := range places {
		for _, k := range keys {
			if strings.Contains(text, k) {
				t.Errorf("a signing key appears in the %s", where)
			}
		}
		for _, tok := range tokens {
			body, sig, _ := strings.Cut(strings.TrimPrefix(tok, "dstok_"), ".")
			if strings.Contains(text, body) || strings.Contains(text, sig) {
				t.Errorf("a token (or its signature) appears in the %s", where)
			}
		}
	}

	// While we are here: the metrics say what they should.
	var cur datasettev1alpha1.DatasetteToken
	g.Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
	// The series are read from the manager's cache, a moment behind the API server.
	g.Eventually(func() float64 { return seriesValue(t, "datasette_token_ready", "namespace", ns, "name", "lifecycle") }, eventually, poll).
		Should(Equal(1.0), "datasette_token_ready")
	g.Eventually(func() float64 { return seriesValue(t, "datasette_token_ready", "namespace", ns, "name", "clash") }, eventually, poll).
		Should(Equal(0.0), "datasette_token_ready for a conflict")
	g.Eventually(func() float64 {
		return seriesValue(t, "datasette_token_expiry_timestamp_seconds", "namespace", ns, "name", "lifecycle")
	}, eventually, poll).Should(BeNumerically(">=", float64(cur.Status.ExpiresAt.Unix())))
	for _, reason := range []mintReason{mintIssue, mintRenewal, mintRotation, mintRepair} {
		if testutil.ToFloat64(tokenMints.WithLabelValues(string(reason))) == 0 {
			t.Errorf("no mint counted for reason %s", reason)
		}
	}
}
