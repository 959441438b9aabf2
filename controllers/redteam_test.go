package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// TestKeyCacheOneNamespaceCannotFillIt: a tenant who walks many tokens through many Secrets'
// keys holds at most its namespace's share of the key cache, so that another namespace's key
// still fits (before the per-namespace cap, the first tenant filled the shared cap and every
// other tenant's new or rotated key was refused as over budget).
func TestKeyCacheOneNamespaceCannotFillIt(t *testing.T) {
	c := newKeyCache(nil, nil, nil, 2*keyOverhead+100, 64*keyOverhead)
	data := map[string][]byte{"k1": []byte("one"), "k2": []byte("two")}
	for i := range 60 { // 120 keys of 60 Secrets, in namespace "hostile"
		s := types.NamespacedName{Namespace: "hostile", Name: fmt.Sprint("s", i)}
		for _, name := range []string{"k1", "k2"} {
			c.use(fmt.Sprint("tok", i, name), keyUse{secret: s, keyName: name})
			c.store(s, "1", name, data)
		}
	}
	if total, _ := c.heldBytes(); total > 64*keyOverhead/namespaceShare+2*keyOverhead {
		t.Errorf("one namespace holds %d bytes, over its share of the cache", total)
	}
	other := types.NamespacedName{Namespace: "victim", Name: "s"}
	c.use("victim-token", keyUse{secret: other, keyName: "k1"})
	c.store(other, "7", "k1", data)
	if k, _ := c.cachedAny(other, "7", "k1", true); k.minter == nil {
		t.Errorf("another namespace's key does not fit once one tenant walked through 120 keys: %+v", k)
	}
	for i := range 60 {
		c.release(fmt.Sprint("tok", i, "k1"))
		c.release(fmt.Sprint("tok", i, "k2"))
	}
	c.release("victim-token")
	if total, names := c.heldBytes(); total != 0 || names != 0 || c.size() != 0 {
		t.Errorf("after every user left: %d bytes, %d names, %d Secrets; want none", total, names, c.size())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.namespaceBytes) != 0 {
		t.Errorf("namespaces still counted after every user left: %v", c.namespaceBytes)
	}
}

// TestProbeTokenStaysRestrictedWhateverTheInstanceClaims: an instance that reports a release
// ignoring "_r" (1.0a0) must not earn an unrestricted probe token at the next probe: a hostile
// instance could otherwise replay it, for a minute, as the probe actor with all its
// permissions against any other instance sharing the key. Only the signer's own
// spec.datasetteVersion may say so.
func TestProbeTokenStaysRestrictedWhateverTheInstanceClaims(t *testing.T) {
	var got []dsprobe.Config
	fake := func(_ context.Context, _ *dstoken.Minter, cfg dsprobe.Config, _ time.Time) dsprobe.Result {
		got = append(got, cfg)
		return dsprobe.Result{Verdict: dsprobe.KeyAccepted, Version: "1.0a0"}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &signerReconciler{Recorder: events.NewFakeRecorder(100), kind: signerKinds[1],
		probes: probeSettings{probe: fake, now: func() time.Time { return now }}}
	signer := &datasettev1alpha1.ClusterDatasetteSigner{ObjectMeta: metav1.ObjectMeta{Name: "shared", Generation: 1}}
	signer.Spec.Probe = &datasettev1alpha1.SignerProbe{URL: "http://datasette.tenant.svc:8001"}
	key := keyLookup{secretFound: true, minter: dstoken.NewMinter([]byte("key")), since: "1"}
	next := &datasettev1alpha1.DatasetteSignerStatus{ObservedGeneration: 1}
	defer forgetInstanceMetrics(signerKinds[1].name, "", "shared")
	for range 2 {
		r.probeInstance(context.Background(), signer, key, next)
		now = now.Add(time.Minute)
	}
	if len(got) != 2 || got[1].Unrestricted {
		t.Errorf("after the instance claimed Datasette 1.0a0, the probe configs were %+v; want a restricted probe token", got)
	}
	signer.Spec.DatasetteVersion = "1.0a0" // the signer's owner says so: the token may go without "_r"
	signer.Generation = 2
	r.probeInstance(context.Background(), signer, key, next)
	if len(got) != 3 || !got[2].Unrestricted {
		t.Errorf("with spec.datasetteVersion 1.0a0 the probe configs were %+v; want an unrestricted probe token", got)
	}
}
