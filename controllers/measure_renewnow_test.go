package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// TestRenewNowStormWrites: one token, with two rollout restart targets, whose renew-now
// annotation changes every 100 ms for 10 s, under the default floor of 1m: at most one mint
// and one restart of each target.
func TestRenewNowStormWrites(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "k")
	m := startManager(t, ns, withFloor(time.Minute))
	tok := newToken(ns, "renew-now", "bot")
	tok.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
	tok.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "app"}, {Kind: "StatefulSet", Name: "app"}}
	workloads(t, ns, "app")
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	nextSecond(waitReason(t, key, datasettev1alpha1.ReasonIssued).Status.IssuedAt.Time)
	waitQuiet(t, m.requests)
	mark, before := m.requests.mark(), m.writes.Load()
	const window = 10 * time.Second
	for i, stop := 0, time.Now().Add(window); time.Now().Before(stop); i++ {
		var cur datasettev1alpha1.DatasetteToken
		if k8sClient.Get(ctx, key, &cur) == nil {
			cur.Annotations = map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: fmt.Sprint(i)}
			_ = k8sClient.Update(ctx, &cur)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	writes := m.writes.Load() - before
	t.Logf("renew-now changed every 100 ms for %v: %d writes (%.1f/s): %v", window, writes, float64(writes)/window.Seconds(), m.requests.summary(mark))
	if writes > 8 {
		t.Errorf("%d writes; want at most 8 (one mint: Secret, status, two restarts, events)", writes)
	}
}
