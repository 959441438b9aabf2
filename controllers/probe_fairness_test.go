package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// TestSlowProbesOfOneNamespaceDoNotHoldOthers: with --allow-namespaced-probes, a tenant whose
// DatasetteSigners probe instances that answer only at the probe's timeout (a tarpit) must not
// hold every other namespace's DatasetteSigners behind them. Before, the DatasetteSigner
// controller ran one reconcile at a time, so each slow probe stopped every signer of every
// tenant for up to 5 s; now the signer controllers run --max-concurrent-reconciles at once
// and a namespace has at most one probe in flight.
func TestSlowProbesOfOneNamespaceDoNotHoldOthers(t *testing.T) {
	requireEnvtest(t)
	hostile, quiet := newNamespace(t), newNamespace(t)
	entered := make(chan struct{}, 16)
	prober := func(ctx context.Context, _ *dstoken.Minter, cfg dsprobe.Config, _ time.Time) dsprobe.Result {
		if strings.Contains(cfg.URL, "tarpit") {
			entered <- struct{}{}
			select {
			case <-ctx.Done():
			case <-time.After(4 * time.Second):
			}
			return dsprobe.Result{Verdict: dsprobe.Unreachable, Detail: "no answer within the probe's timeout"}
		}
		return dsprobe.Result{Verdict: dsprobe.KeyAccepted, Version: "1.0a37"}
	}
	startManager(t, hostile, func(o *ctrl.Options, r *DatasetteTokenReconciler) {
		o.Cache.DefaultNamespaces = map[string]cache.Config{hostile: {}, quiet: {}}
		r.AllowNamespacedProbes, r.Prober, r.MaxConcurrentReconciles = true, prober, 4
	})
	signerIn := func(ns, name, url string) *datasettev1alpha1.DatasetteSigner {
		return &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{Probe: probeOf(url)}}}
	}
	signingSecret(t, hostile, "datasette", "k")
	signingSecret(t, quiet, "datasette", "k")
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		create(t, signerIn(hostile, name, "http://tarpit.example:8001"))
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no tarpit probe started")
	}
	time.Sleep(200 * time.Millisecond) // let every free worker take a tarpit signer, if it may
	start := time.Now()
	other := signerIn(quiet, "other", "http://datasette.quiet.svc:8001")
	create(t, other)
	deadline := start.Add(3 * time.Second)
	for {
		var s datasettev1alpha1.DatasetteSigner
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(other), &s); err != nil {
			t.Fatal(err)
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, ConditionInstanceVerified); c != nil && c.Reason == ReasonKeyAccepted {
			t.Logf("another namespace's signer verified %v after it was created, behind 6 tarpit signers", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("another namespace's signer is not verified %v after it was created: it waits behind one tenant's tarpit probes", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
