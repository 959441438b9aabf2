package controllers

import (
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// Fairness between namespaces, and what a storming tenant costs: one manager serves a stormy
// namespace and a quiet one, with the operator's default renewal floor of 1m.

// timeToIssued creates a token in ns and returns how long it took to be Ready (Issued).
func timeToIssued(t *testing.T, ns, name string) time.Duration {
	t.Helper()
	tok := newToken(ns, name, "bot")
	start := time.Now()
	create(t, tok)
	waitReason(t, client.ObjectKeyFromObject(tok), datasettev1alpha1.ReasonIssued)
	return time.Since(start)
}

// TestTenantStormIsBounded: 40 tokens whose spec renews every second, then one token whose
// renew-now annotation changes every 100 ms with two rollout targets; meanwhile a new token in
// another namespace is Ready within 2 s.
func TestTenantStormIsBounded(t *testing.T) {
	requireEnvtest(t)
	stormy, quiet := newNamespace(t), newNamespace(t)
	signingSecret(t, stormy, "datasette", "stormy-key")
	signingSecret(t, quiet, "datasette", "quiet-key")
	m := startManager(t, stormy, withNamespaces(stormy, quiet), withMaxConcurrentReconciles(4), withFloor(time.Minute))

	const n = 40
	for i := range n {
		tok := newToken(stormy, fmt.Sprintf("storm-%02d", i), "bot")
		tok.Spec.ExpiresAfter = &metav1.Duration{Duration: 168 * time.Hour}
		tok.Spec.RenewBefore = &metav1.Duration{Duration: 168*time.Hour - time.Second} // within maxExpiresAfter 168h; renews every second
		create(t, tok)
	}
	time.Sleep(3 * time.Second) // the first issues (or refusals) settle
	before, window := m.writes.Load(), 10*time.Second
	wait := timeToIssued(t, quiet, "during-renewal-storm")
	time.Sleep(window - min(wait, window))
	rate := float64(m.writes.Load()-before) / window.Seconds()
	t.Logf("40 tokens set to renew every second: %.1f writes/s; a new token in another namespace was Ready in %v", rate, wait.Round(time.Millisecond))
	if rate > 5 || wait > 2*time.Second {
		t.Errorf("%.1f writes/s and %v to Ready; want under 5 writes/s and under 2 s", rate, wait)
	}

	manual := newToken(stormy, "renew-now", "bot")
	manual.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
	manual.Spec.RolloutRestartTargets = []datasettev1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "app"}, {Kind: "StatefulSet", Name: "app"}}
	workloads(t, stormy, "app")
	create(t, manual)
	key := client.ObjectKeyFromObject(manual)
	nextSecond(waitReason(t, key, datasettev1alpha1.ReasonIssued).Status.IssuedAt.Time)
	before = m.writes.Load()
	start, stop := time.Now(), time.Now().Add(window)
	go func() {
		for i := 0; time.Now().Before(stop); i++ {
			var tok datasettev1alpha1.DatasetteToken
			if k8sClient.Get(ctx, key, &tok) == nil {
				tok.Annotations = map[string]string{datasettev1alpha1.AnnotationRenewRequestedAt: fmt.Sprint(i)}
				_ = k8sClient.Update(ctx, &tok)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wait = timeToIssued(t, quiet, "during-renew-now-storm")
	time.Sleep(time.Until(stop) + time.Second)
	writes := m.writes.Load() - before
	t.Logf("renew-now changed every 100 ms for %v: %d writes (%.1f/s); a new token in another namespace was Ready in %v",
		time.Since(start).Round(time.Second), writes, float64(writes)/window.Seconds(), wait.Round(time.Millisecond))
	if writes > 15 || wait > 2*time.Second {
		t.Errorf("%d writes in %v and %v to Ready; want at most 15 and under 2 s", writes, window, wait)
	}
}

// TestTenantBacklogFairness: a new token in one namespace is Ready within 2 s while another
// namespace has 1 500 tokens waiting to be issued. Set DSTOK_SCALE=1 to run it (it creates 1 500
// objects).
func TestTenantBacklogFairness(t *testing.T) {
	requireEnvtest(t)
	if os.Getenv("DSTOK_SCALE") == "" {
		t.Skip("a scale test: set DSTOK_SCALE=1")
	}
	for _, wakeUp := range []bool{false, true} {
		busy, quiet := newNamespace(t), newNamespace(t)
		signingSecret(t, quiet, "datasette", "quiet-key")
		if !wakeUp {
			signingSecret(t, busy, "datasette", "busy-key")
		}
		const n = 1500
		for i := range n {
			create(t, newToken(busy, fmt.Sprintf("backlog-%04d", i), "bot"))
		}
		// The backlog is either the manager's initial list (1 500 tokens to issue at start), or,
		// with wakeUp, 1 500 tokens that waited for their signing Secret and all become work when it appears.
		m := startManager(t, busy, withNamespaces(busy, quiet), withMaxConcurrentReconciles(4), withFloor(time.Minute))
		if wakeUp {
			time.Sleep(3 * time.Second) // the initial list is done: every token waits for the Secret
			signingSecret(t, busy, "datasette", "busy-key")
			time.Sleep(200 * time.Millisecond)
		} else {
			// The manager runs and works through its initial list.
			NewWithT(t).Eventually(func() bool {
				var s corev1.SecretList
				return k8sClient.List(ctx, &s, client.InNamespace(busy)) == nil && len(s.Items) > 10
			}, eventually, 10*time.Millisecond).Should(BeTrue())
		}
		wait := timeToIssued(t, quiet, "behind-backlog")
		t.Logf("wake-up %v: a new token in another namespace behind a backlog of %d tokens to issue: Ready in %v (%d writes so far)",
			wakeUp, n, wait.Round(time.Millisecond), m.writes.Load())
		if wait > 2*time.Second {
			t.Errorf("wake-up %v: Ready in %v; want under 2 s", wakeUp, wait)
		}
		m.Stop()
	}
}
