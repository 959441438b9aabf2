package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

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
	stubProbe := func(_ context.Context, _ *dstoken.Minter, cfg dsprobe.Config, _ time.Time) dsprobe.Result {
		got = append(got, cfg)
		return dsprobe.Result{Verdict: dsprobe.KeyAccepted, Version: "1.0a0"}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &signerReconciler{Recorder: events.NewFakeRecorder(100), kind: signerKinds[1],
		probes: probeSettings{probe: stubProbe, now: func() time.Time { return now }}}
	signer := &datasettev1alpha1.ClusterDatasetteSigner{ObjectMeta: metav1.ObjectMeta{Name: "shared", Generation: 1}}
	signer.Spec.Probe = &datasettev1alpha1.SignerProbe{URL: "http://datasette.tenant.svc:8001"}
	key := keyLookup{secretFound: true, minter: dstoken.NewMinter([]byte("key")), since: "1"}
	next := &datasettev1alpha1.DatasetteSignerStatus{ObservedGeneration: 1}
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

// TestSignerEventsFitTheEventsAPI: a signer's Ready event repeats a malformed pattern of up to
// 1 024 characters (admission lets a backwards range through); the events API refuses a note
// over 1 KiB, so the event must be cut to fit, as the tokens' events are, not lost.
func TestSignerEventsFitTheEventsAPI(t *testing.T) {
	pattern := datasettev1alpha1.ActorPattern(strings.Repeat("\x01", 1000) + "[z-a]")
	signer := &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
			SignerSettings: datasettev1alpha1.SignerSettings{Policy: &datasettev1alpha1.SigningPolicy{
				Actors: &datasettev1alpha1.ActorPolicy{Denied: []datasettev1alpha1.ActorPattern{pattern}}}}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "datasette"}, Data: map[string][]byte{defaultSigningKey: []byte("k")}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(signer, secret).WithStatusSubresource(signer).Build()
	recorder := events.NewFakeRecorder(10)
	r := &signerReconciler{Client: c, Recorder: recorder, keys: newKeyCache(c, c, nil, 0, 0), kind: signerKinds[0]}
	if _, err := r.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(signer)}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-recorder.Events:
		// FakeRecorder writes "type reason note".
		if note := strings.TrimPrefix(e, corev1.EventTypeWarning+" "+datasettev1alpha1.ReasonInvalidPolicy+" "); len(note) > maxNote {
			t.Errorf("the InvalidPolicy event's note is %d bytes; the events API takes at most %d", len(note), maxNote)
		}
	default:
		t.Fatal("no event")
	}
}

// TestSignerSideChangesWaitForTheFloor: an instance that reports another release at every
// probe (1.0a25, then 1.0a37, ...) changes how its tokens' actions are written (set-column-type
// in full, then "sct"). Without the floor every such flip re-minted every token of the signer
// at once (a Secret write, a status write, an event each, every probe interval), a write rate
// nobody's spec asked for. A change from the signer's side now waits for the renewal floor
// after the token's last mint; an edit of the token's own spec still mints at once.
func TestSignerSideChangesWaitForTheFloor(t *testing.T) {
	f := newDecideFixture(t)
	f.tok.Spec.Restrictions = &datasettev1alpha1.Restrictions{All: []datasettev1alpha1.Action{"view-instance", "set-column-type"}}
	var err error
	if f.want, err = desiredFromSpec(f.tok); err != nil {
		t.Fatal(err)
	}
	a37, _ := dstoken.ProfileForVersion("1.0a37")
	kept := f.want.claims
	kept.Profile = a37
	held := f.token(f.key, kept)
	for _, tt := range []struct {
		name       string
		generation int64
		after      time.Duration
		mint       mintReason
		wait       time.Duration
	}{
		{name: "the release flips 20 s after the last mint", generation: 1, after: 20 * time.Second, wait: 10*time.Minute - 20*time.Second},
		{name: "the release flipped, and the floor has passed", generation: 1, after: 10 * time.Minute, mint: mintIssue},
		{name: "the token's own spec changed", generation: 2, after: 20 * time.Second, mint: mintIssue},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.tok = f.tok.DeepCopy()
			f.tok.Generation = tt.generation
			f.tok.Status = datasettev1alpha1.DatasetteTokenStatus{ObservedGeneration: 1, LastMintReason: "issue",
				IssuedAt: &metav1.Time{Time: f.t0}, RestartedFor: &metav1.Time{Time: f.t0}}
			in := f.gathered(held, f.minter)
			in.signing.viaSigner, in.signing.signerFound, in.signing.namespaceAllowed = true, true, true
			in.signing.instance = &datasettev1alpha1.InstanceStatus{Version: "1.0a25"} // its probe found 1.0a25
			in.floor = 10 * time.Minute
			p := decide(in, f.t0.Add(tt.after))
			if p.mint != tt.mint || p.readiness.reason != datasettev1alpha1.ReasonIssued {
				t.Fatalf("decide = mint %q, %s; want %q, Issued: %s", p.mint, p.readiness.reason, tt.mint, p.readiness.message)
			}
			if tt.wait != 0 && (p.requeueAfter != tt.wait || p.token != held || p.restart) {
				t.Errorf("requeueAfter %s, kept %v, restart %v; want %s, the held token, no restart", p.requeueAfter, p.token == held, p.restart, tt.wait)
			}
		})
	}
}
