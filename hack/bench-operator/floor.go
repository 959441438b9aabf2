package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// The raw floor: the API work the operator does for N tokens, done by a plain client with no
// operator running, on a copy of the CRD the operator does not watch. Each measure is the best of
// the worker counts of -floor-workers.

// floorRun is one timed run of the floor.
type floorRun struct {
	round    int // 1 for the first run at each worker count, 2 for the second, …
	workers  int
	elapsed  time.Duration // until the harness's watch saw the last write, as the operator is timed
	returned time.Duration // until the client's last write returned
	spread   string        // when the first, half, … of the writes were seen (arrivals.spread)
	cpu      processCPU    // the CPU each process used meanwhile
	requests requestCounts // the API requests it made (the floor's group counted as the operator's)
}

// floorSet is the floor's objects in one namespace, kept to be rotated.
type floorSet struct {
	namespace string
	tokens    []*unstructured.Unstructured
	secrets   []*corev1.Secret
}

// floorNamespace names the namespace of the floor run with `workers` workers.
func floorNamespace(workers, round int) string {
	return fmt.Sprintf("bench-floor-r%d-w%d", round, workers)
}

// requestsDuring runs f and returns the API requests made meanwhile.
func requestsDuring(ctx context.Context, cp *controlPlane, f func() error) (requestCounts, error) {
	before, err := cp.apiRequests(ctx)
	if err != nil {
		return nil, err
	}
	if err := f(); err != nil {
		return nil, err
	}
	after, err := cp.apiRequests(ctx)
	if err != nil {
		return nil, err
	}
	return after.since(before).withGroup(floorGroup, tokenGroup), nil
}

// timedFloor runs write, the floor's writes, and times it as the operator is timed: until the
// harness's watch on the namespace, started before, has seen every write (done), so that both
// sides pay for the same observer. It returns the run with the API requests made meanwhile.
func timedFloor(ctx context.Context, cp *controlPlane, namespace string, write func() error,
	done func(start time.Time, seen *arrivals) condition) (floorRun, error) {
	track, err := startTracker(ctx, cp, cp.floor, namespace)
	if err != nil {
		return floorRun{}, err
	}
	defer track.stop()
	var start time.Time
	var seen arrivals
	var returned time.Duration
	var cpu processCPU
	requests, err := requestsDuring(ctx, cp, func() error {
		cpuBefore := sampleCPU(0)
		defer func() { cpu = sampleCPU(0).since(cpuBefore) }()
		start = time.Now()
		if err := write(); err != nil {
			return err
		}
		returned = time.Since(start)
		return track.wait(ctx, "the floor's writes seen", time.Minute, done(start, &seen))
	})
	return floorRun{elapsed: seen.last().Sub(start), returned: returned, spread: seen.spread(start), cpu: cpu, requests: requests}, err
}

// floorBurst creates n tokens with their Secrets and Ready statuses: per token, create the
// DatasetteToken, create its Secret, update its status.
func floorBurst(ctx context.Context, cp *controlPlane, n, workers, round int) (floorRun, *floorSet, error) {
	set := &floorSet{namespace: floorNamespace(workers, round), tokens: make([]*unstructured.Unstructured, n), secrets: make([]*corev1.Secret, n)}
	if err := createNamespace(ctx, cp, set.namespace); err != nil {
		return floorRun{}, nil, err
	}
	apiVersion := floorGroup + "/" + cp.floor.Version
	tokens := cp.dyn.Resource(cp.floor).Namespace(set.namespace)
	secrets := cp.kube.CoreV1().Secrets(set.namespace)
	write := func() error {
		return forEach(ctx, workers, n, func(ctx context.Context, i int) error {
			tok, err := tokens.Create(ctx, newToken(apiVersion, set.namespace, i), metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("floor: creating a token: %w", err)
			}
			now := time.Now()
			if set.secrets[i], err = secrets.Create(ctx, floorSecret(tok, now), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("floor: creating a Secret: %w", err)
			}
			setReadyStatus(tok, now)
			if set.tokens[i], err = tokens.UpdateStatus(ctx, tok, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("floor: updating a status: %w", err)
			}
			return nil
		})
	}
	run, err := timedFloor(ctx, cp, set.namespace, write, func(_ time.Time, seen *arrivals) condition { return allReady(n, seen) })
	run.round, run.workers = round, workers
	return run, set, err
}

// floorRotate re-mints every token of set: per token, update its Secret, update its status.
func floorRotate(ctx context.Context, cp *controlPlane, set *floorSet, workers, round int) (floorRun, error) {
	if err := waitNewSecond(ctx); err != nil { // else a status could be rewritten as it was, a no-op
		return floorRun{}, err
	}
	tokens := cp.dyn.Resource(cp.floor).Namespace(set.namespace)
	secrets := cp.kube.CoreV1().Secrets(set.namespace)
	write := func() error {
		return forEach(ctx, workers, len(set.tokens), func(ctx context.Context, i int) error {
			now := time.Now()
			secret := set.secrets[i].DeepCopy()
			secret.Data = fakeSecretData()
			secret.Annotations["datasette.io/issued-at"] = now.UTC().Format(time.RFC3339)
			var err error
			if set.secrets[i], err = secrets.Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("floor: updating a Secret: %w", err)
			}
			tok := set.tokens[i].DeepCopy()
			setReadyStatus(tok, now)
			if set.tokens[i], err = tokens.UpdateStatus(ctx, tok, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("floor: updating a status: %w", err)
			}
			return nil
		})
	}
	run, err := timedFloor(ctx, cp, set.namespace, write, func(start time.Time, seen *arrivals) condition {
		return allRewritten(len(set.tokens), start, seen)
	})
	run.round, run.workers = round, workers
	return run, err
}

// allRewritten is the condition that n tokens and their Secrets, each written once by the floor's
// rotation, were seen changed since start; seen holds when each was seen so.
func allRewritten(n int, start time.Time, seen *arrivals) condition {
	return func(t *tracker) (bool, string) {
		seen.restart()
		done := 0
		for name, s := range t.tokens {
			secret := t.secrets[name]
			if s.versionAt.After(start) && secret.seenAt.After(start) {
				done++
				seen.add(later(s.versionAt, secret.seenAt))
			}
		}
		return done >= n, fmt.Sprintf("%d of %d rewritten", done, n)
	}
}

// floorCreateLatencies creates count Secrets one at a time and returns how long each took to be
// seen by a watch on the namespace, as a repair is timed, and how long each create took to return.
func floorCreateLatencies(ctx context.Context, cp *controlPlane, namespace string, count int) (seen, returned []time.Duration, err error) {
	track, err := startTracker(ctx, cp, cp.floor, namespace)
	if err != nil {
		return nil, nil, err
	}
	defer track.stop()
	secrets := cp.kube.CoreV1().Secrets(namespace)
	seen, returned = make([]time.Duration, 0, count), make([]time.Duration, 0, count)
	for i := range count {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("repair-floor-%03d", i), Namespace: namespace,
				Labels: map[string]string{managedByLabel: "bench-floor"}},
			Data: fakeSecretData(),
		}
		start := time.Now()
		if _, err := secrets.Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			return nil, nil, fmt.Errorf("floor: creating a Secret: %w", err)
		}
		returned = append(returned, time.Since(start))
		created := func(t *tracker) (bool, string) {
			_, ok := t.secrets[secret.Name]
			return ok, "not yet"
		}
		if err := track.wait(ctx, "Secret "+secret.Name+" seen", time.Minute, created); err != nil {
			return nil, nil, err
		}
		track.locked(func() { seen = append(seen, track.secrets[secret.Name].seenAt.Sub(start)) })
	}
	return seen, returned, nil
}

// floorCacheSync lists and watches the bench namespace's DatasetteTokens and Secrets with fresh
// informers and returns how long they took to sync: the least work any restart does.
func floorCacheSync(ctx context.Context, cp *controlPlane) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cp.dyn, 0, benchNamespace, nil)
	tokens := dynFactory.ForResource(cp.tokens).Informer()
	kubeFactory := informers.NewSharedInformerFactoryWithOptions(cp.kube, 0, informers.WithNamespace(benchNamespace))
	secrets := kubeFactory.Core().V1().Secrets().Informer()
	dynFactory.Start(ctx.Done())
	kubeFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), tokens.HasSynced, secrets.HasSynced) {
		return 0, fmt.Errorf("floor: the informers did not sync: %w", context.Cause(ctx))
	}
	elapsed := time.Since(start)
	cancel()
	dynFactory.Shutdown()
	kubeFactory.Shutdown()
	return elapsed, nil
}

// deleteFloor deletes the floor's objects, so that the operator never sees them.
func deleteFloor(ctx context.Context, cp *controlPlane, namespaces []string) error {
	for _, ns := range namespaces {
		if err := cp.dyn.Resource(cp.floor).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("floor: deleting the tokens of %s: %w", ns, err)
		}
		if err := cp.kube.CoreV1().Secrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("floor: deleting the Secrets of %s: %w", ns, err)
		}
	}
	return nil
}

// floorSecret is the Secret the operator would write for tok: owned by it, labelled, annotated.
func floorSecret(tok *unstructured.Unstructured, issued time.Time) *corev1.Secret {
	isController := true
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: tok.GetName(), Namespace: tok.GetNamespace(),
			Labels: map[string]string{managedByLabel: "bench-floor"},
			Annotations: map[string]string{
				"datasette.io/issued-at":  issued.UTC().Format(time.RFC3339),
				"datasette.io/expires-at": issued.Add(24 * time.Hour).UTC().Format(time.RFC3339),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: tok.GetAPIVersion(), Kind: tok.GetKind(), Name: tok.GetName(), UID: tok.GetUID(),
				Controller: &isController, BlockOwnerDeletion: &isController,
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: fakeSecretData(),
	}
}

// fakeSecretData is an output Secret's data with a random stand-in of a minted token's size: the
// floor measures API work, not signing.
func fakeSecretData() map[string][]byte {
	return map[string][]byte{"token": []byte("dstok_" + randomHex(96))}
}

// setReadyStatus writes into tok the status the operator writes for a token issued at `issued`.
func setReadyStatus(tok *unstructured.Unstructured, issued time.Time) {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	status := map[string]any{
		"observedGeneration": tok.GetGeneration(),
		"secretName":         tok.GetName(),
		"issuedAt":           at(issued),
		"expiresAt":          at(issued.Add(24 * time.Hour)),
		"renewalTime":        at(issued.Add(16 * time.Hour)),
		"conditions": []any{map[string]any{
			"type": "Ready", "status": "True", "reason": "Issued", "observedGeneration": tok.GetGeneration(),
			"lastTransitionTime": at(issued), "message": fmt.Sprintf("Secret %q holds a token", tok.GetName()),
		}},
	}
	tok.Object["status"] = status
}

// bestRun returns the fastest of runs.
func bestRun(runs []floorRun) floorRun {
	best := runs[0]
	for _, r := range runs[1:] {
		if r.elapsed < best.elapsed {
			best = r
		}
	}
	return best
}
