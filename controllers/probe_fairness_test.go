package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	slowProbesOfOneNamespaceDoNotHoldOthers(t, 4)
}

// TestSlowProbesOfOneNamespaceDoNotHoldOthersWithOneWorker: the same with
// --max-concurrent-reconciles=1. Before, the probe ran on the signer controller's only worker,
// so each tarpit probe held every other namespace's signer for its whole timeout; now probes run
// off the workers, and a reconcile only starts a probe or records its result.
func TestSlowProbesOfOneNamespaceDoNotHoldOthersWithOneWorker(t *testing.T) {
	slowProbesOfOneNamespaceDoNotHoldOthers(t, 1)
}

// slowProbesOfOneNamespaceDoNotHoldOthers runs six tarpit signers of one namespace, with workers
// signer workers, and wants another namespace's signer verified within 3 s.
func slowProbesOfOneNamespaceDoNotHoldOthers(t *testing.T, workers int) {
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
		r.AllowNamespacedProbes, r.Prober, r.MaxConcurrentReconciles = true, prober, workers
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
	other := signerIn(quiet, "other", "http://datasette.quiet.svc.cluster.local:8001")
	create(t, other)
	deadline := start.Add(3 * time.Second)
	for {
		var s datasettev1alpha1.DatasetteSigner
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(other), &s); err != nil {
			t.Fatal(err)
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, datasettev1alpha1.ConditionInstanceVerified); c != nil && c.Reason == datasettev1alpha1.ReasonKeyAccepted {
			t.Logf("another namespace's signer verified %v after it was created, behind 6 tarpit signers", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("another namespace's signer is not verified %v after it was created: it waits behind one tenant's tarpit probes", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProbeRunner: a namespace has one probe in flight; a cluster signer's probe is limited only
// to one per signer; a finished probe wakes its signer, and is collected once, for the
// generation and key it was made for.
func TestProbeRunner(t *testing.T) {
	runner := newProbeRunner(signerKinds[0].newObject)
	release := make(chan struct{})
	slow := func(context.Context) dsprobe.Result {
		<-release
		return dsprobe.Result{Verdict: dsprobe.KeyAccepted, Version: "1.0a37"}
	}
	a, b := types.NamespacedName{Namespace: "hostile", Name: "a"}, types.NamespacedName{Namespace: "hostile", Name: "b"}
	other, cluster := types.NamespacedName{Namespace: "quiet", Name: "a"}, types.NamespacedName{Name: "prod"}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		signer types.NamespacedName
		want   bool
	}{{a, true}, {a, true}, {b, false}, {other, true}, {cluster, true}, {cluster, true}} {
		if got := runner.start(t.Context(), tt.signer, 1, "7", at, slow); got != tt.want {
			t.Errorf("start(%s) = %v, want %v", tt.signer, got, tt.want)
		}
	}
	if _, ok := runner.collect(a, 1, "7"); ok {
		t.Error("collected a probe still in flight")
	}
	close(release)
	woken := map[string]bool{}
	for range 3 {
		select {
		case e := <-runner.wake:
			woken[e.Object.GetNamespace()+"/"+e.Object.GetName()] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("woken %v; want hostile/a, quiet/a and /prod", woken)
		}
	}
	if done, ok := runner.collect(a, 1, "7"); !ok || done.result.Version != "1.0a37" || !done.at.Equal(at) {
		t.Errorf("collect(a) = %+v, %v", done, ok)
	}
	if _, ok := runner.collect(a, 1, "7"); ok {
		t.Error("collected a probe twice")
	}
	if _, ok := runner.collect(other, 2, "7"); ok {
		t.Error("collected a probe made for an older generation")
	}
	if _, ok := runner.collect(other, 1, "7"); ok {
		t.Error("kept a probe made for an older generation")
	}
	if !runner.start(t.Context(), b, 1, "7", at, slow) {
		t.Error("the namespace's slot was not freed")
	}
}
