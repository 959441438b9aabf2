package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// recheckInterval bounds how often a waiter re-evaluates its condition: the times it reports come
// from when each event arrived, so coalescing wake-ups costs no precision.
const recheckInterval = 20 * time.Millisecond

// tokenState is what the harness has seen of one DatasetteToken.
type tokenState struct {
	ready        bool      // Ready is True and status.observedGeneration == metadata.generation
	readySeenAt  time.Time // when it was first seen ready (zero while it is not)
	issuedAt     time.Time // status.issuedAt
	issuedSeenAt time.Time // when issuedAt was first seen at its current value
	secretName   string    // status.secretName
	version      string    // metadata.resourceVersion
	versionAt    time.Time // when this resourceVersion was first seen
}

// secretState is what the harness has seen of one Secret.
type secretState struct {
	uid       types.UID
	dataHash  [sha256.Size]byte // a digest of its data: the harness never keeps or prints a token
	seenAt    time.Time         // when this data (or this Secret) was first seen
	deleted   bool              // it is deleted now
	deletedAt time.Time         // when it (a Secret of this name) was last seen deleted
}

// tracker follows the DatasetteTokens and Secrets of one namespace through informers, recording
// when each change arrived, and wakes whoever waits for a condition on them.
type tracker struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	tokens  map[string]tokenState
	secrets map[string]secretState
	stop    func() // stops the informers
}

// startTracker starts informers on the namespace's tokens (of resource, the operator's CRD or the
// floor's copy) and Secrets and returns once they have synced. The caller must call stop: the API
// server does not stop while they watch.
func startTracker(ctx context.Context, cp *controlPlane, resource schema.GroupVersionResource, namespace string) (*tracker, error) {
	t := &tracker{changed: make(chan struct{}), tokens: map[string]tokenState{}, secrets: map[string]secretState{}}

	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cp.dyn, 0, namespace, nil)
	tokens := dynFactory.ForResource(resource).Informer()
	if _, err := tokens.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.observeToken(obj) },
		UpdateFunc: func(_, obj any) { t.observeToken(obj) },
	}); err != nil {
		return nil, fmt.Errorf("watching DatasetteTokens: %w", err)
	}

	kubeFactory := informers.NewSharedInformerFactoryWithOptions(cp.kube, 0, informers.WithNamespace(namespace))
	secrets := kubeFactory.Core().V1().Secrets().Informer()
	if _, err := secrets.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.observeSecret(obj) },
		UpdateFunc: func(_, obj any) { t.observeSecret(obj) },
		DeleteFunc: func(obj any) { t.forgetSecret(obj) },
	}); err != nil {
		return nil, fmt.Errorf("watching Secrets: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	dynFactory.Start(ctx.Done())
	kubeFactory.Start(ctx.Done())
	t.stop = func() {
		cancel()
		dynFactory.Shutdown()
		kubeFactory.Shutdown()
	}
	if !cache.WaitForCacheSync(ctx.Done(), tokens.HasSynced, secrets.HasSynced) {
		t.stop()
		return nil, fmt.Errorf("watching namespace %s: the informers did not sync: %w", namespace, context.Cause(ctx))
	}
	return t, nil
}

// observeToken records a DatasetteToken's state.
func (t *tracker) observeToken(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	now := time.Now()
	ready, issuedAt, secretName := tokenStatus(u)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.tokens[u.GetName()]
	s := tokenState{ready: ready, issuedAt: issuedAt, secretName: secretName, readySeenAt: old.readySeenAt, issuedSeenAt: old.issuedSeenAt,
		version: u.GetResourceVersion(), versionAt: old.versionAt}
	if s.version != old.version {
		s.versionAt = now
	}
	switch {
	case !ready:
		s.readySeenAt = time.Time{}
	case !old.ready:
		s.readySeenAt = now
	}
	if !issuedAt.Equal(old.issuedAt) {
		s.issuedSeenAt = now
	}
	t.tokens[u.GetName()] = s
	t.notifyLocked()
}

// tokenStatus reads what the harness needs from a DatasetteToken: whether it is Ready for its
// current generation, when its token was issued, and the Secret it is in.
func tokenStatus(u *unstructured.Unstructured) (ready bool, issuedAt time.Time, secretName string) {
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if ok && cond["type"] == "Ready" && cond["status"] == string(metav1.ConditionTrue) {
			ready = observed == u.GetGeneration()
		}
	}
	if s, ok, _ := unstructured.NestedString(u.Object, "status", "issuedAt"); ok {
		issuedAt, _ = time.Parse(time.RFC3339, s)
	}
	secretName, _, _ = unstructured.NestedString(u.Object, "status", "secretName")
	return ready, issuedAt, secretName
}

// observeSecret records a Secret's identity and a digest of its data.
func (t *tracker) observeSecret(obj any) {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	now := time.Now()
	s := secretState{uid: secret.UID, dataHash: digest(secret.Data), seenAt: now}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.secrets[secret.Name]
	if !old.deleted && old.uid == s.uid && old.dataHash == s.dataHash {
		s.seenAt = old.seenAt
	}
	s.deletedAt = old.deletedAt
	t.secrets[secret.Name] = s
	t.notifyLocked()
}

// forgetSecret records a Secret's deletion.
func (t *tracker) forgetSecret(obj any) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.secrets[secret.Name]
	s.deleted, s.deletedAt = true, now
	t.secrets[secret.Name] = s
	t.notifyLocked()
}

func (t *tracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// digest is a SHA-256 of a Secret's data, keys in order.
func digest(data map[string][]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(data[k])
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// condition is evaluated with the tracker locked: done, or a description of the progress so far.
type condition func(t *tracker) (done bool, progress string)

// wait blocks until cond holds, for at most timeout.
func (t *tracker) wait(ctx context.Context, what string, timeout time.Duration, cond condition) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		done, progress := cond(t)
		changed := t.changed
		t.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (%s)", what, context.Cause(ctx), progress)
		case <-deadline.C:
			return fmt.Errorf("%s: not done within %s (%s)", what, timeout, progress)
		case <-changed:
		}
		select { // let a burst of events land before the next look
		case <-ctx.Done():
		case <-time.After(recheckInterval):
		}
	}
}

// locked runs f with the tracker locked.
func (t *tracker) locked(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
}

// allReady is the condition that n tokens are Ready; seen holds when each was seen so.
func allReady(n int, seen *arrivals) condition {
	return func(t *tracker) (bool, string) {
		seen.restart()
		ready := 0
		for _, s := range t.tokens {
			if s.ready {
				ready++
				seen.add(s.readySeenAt)
			}
		}
		return ready >= n, fmt.Sprintf("%d of %d Ready", ready, n)
	}
}

// arrivals are when each object a condition counted as done was seen so, as of its latest look
// (the condition starts them afresh each time it looks).
type arrivals struct{ times []time.Time }

func (a *arrivals) restart()         { a.times = a.times[:0] }
func (a *arrivals) add(at time.Time) { a.times = append(a.times, at) }

// last is when the last of them arrived (zero when none did).
func (a *arrivals) last() time.Time {
	var last time.Time
	for _, at := range a.times {
		last = later(last, at)
	}
	return last
}

// spread says, from start, when the first, half, 90 % and 99 % of them had arrived: whether the
// time goes in a steady pace or in a few late ones.
func (a *arrivals) spread(start time.Time) string {
	if len(a.times) == 0 {
		return "none arrived"
	}
	sorted := make([]time.Duration, 0, len(a.times))
	for _, at := range a.times {
		sorted = append(sorted, at.Sub(start))
	}
	slices.Sort(sorted)
	at := func(p float64) time.Duration { return nearestRank(sorted, p).Round(time.Millisecond) }
	return fmt.Sprintf("first %s, 50 %% %s, 90 %% %s, 99 %% %s", at(0), at(0.5), at(0.9), at(0.99))
}
