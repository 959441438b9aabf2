package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// reconcilerError is the line controller-runtime logs when a reconcile returns an error.
const reconcilerError = "Reconciler error"

// bench is one run of the benchmark: the control plane, the manager, and what was measured.
type bench struct {
	cfg     config
	started time.Time
	work    string // the run's work folder: the manager's kubeconfig and log
	logPath string

	cp      *controlPlane
	track   *tracker
	mgrArgs []string
	mgr     *managerProcess
	logSeen int64 // how much of the manager's log has been counted

	floor    floorResults
	operator operatorResults
	notes    []string
}

// floorResults are the raw floor's measures.
type floorResults struct {
	burst, rotation floorRun
	// bursts and rotations are every run, in the order run (rounds × worker counts).
	bursts, rotations []floorRun
	createLatencies   []time.Duration // until a watch saw the Secret, as a repair is timed
	createReturns     []time.Duration // until the create returned
	cacheSync         time.Duration
	cacheSyncRequests requestCounts
}

// operatorResults are the operator's measures.
type operatorResults struct {
	workers                float64 // the controller's worker count, from its metrics
	burstReady, burstIdle  time.Duration
	burstEvents            time.Duration // create → the last first-issue event sent
	burstReconciles        float64
	burstRequests          requestCounts
	burstClient            map[string]float64
	burstCPU               processCPU      // create → all Ready
	rotation, rotationIdle time.Duration   // the fastest round's
	rotations              []time.Duration // every round's, in order
	rotationRequests       requestCounts
	rotationCPU            processCPU // the fastest round's, key change → all re-minted
	restart                time.Duration
	restartShort           bool
	restartReconciles      float64
	restartRequests        requestCounts
	restartClient          map[string]float64
	rss, rssUnrelated      memorySample
	repairs                []time.Duration
	repairRequests         requestCounts
	errorsLogged           map[string]int
}

// run runs every phase and returns the results. It stops the manager and the control plane
// whatever happens, and keeps the manager's log when the run fails.
func run(ctx context.Context, cfg config) (*results, error) {
	if _, err := os.Stat(cfg.managerBin); err != nil {
		return nil, fmt.Errorf("the manager binary: %w (build it with: go build -o bin/manager ./cmd/manager)", err)
	}
	work, err := os.MkdirTemp("", "bench-operator-")
	if err != nil {
		return nil, fmt.Errorf("creating a work folder: %w", err)
	}
	b := &bench{cfg: cfg, started: time.Now(), work: work, logPath: filepath.Join(work, "manager.log"),
		operator: operatorResults{errorsLogged: map[string]int{}}}
	err = b.phases(ctx)
	err = errors.Join(err, b.cleanUp())
	if err != nil {
		if _, statErr := os.Stat(b.logPath); statErr == nil {
			return nil, fmt.Errorf("%w\nthe manager's log is kept in %s", err, b.logPath)
		}
		return nil, errors.Join(err, os.RemoveAll(work))
	}
	if cfg.keepManagerLogOnExit {
		b.logf("the manager's log is kept in %s", b.logPath)
	} else if err := os.RemoveAll(work); err != nil {
		return nil, fmt.Errorf("removing the work folder: %w", err)
	}
	return b.results(), nil
}

// phases runs the benchmark's phases in order, stopping at the first error.
func (b *bench) phases(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"starting the control plane", b.startCluster},
		{"raw floor", b.measureFloor},
		{"starting the manager", b.launchManager},
		{"burst", b.measureBurst},
		{"restart floor (a fresh cache sync)", b.measureCacheSyncFloor},
		{"rotation", b.measureRotation},
		{"restart", b.measureRestart},
		{"memory", b.measureMemory},
		{"repair", b.measureRepair},
	}
	for _, step := range steps {
		b.logf("%s…", step.name)
		if err := step.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return nil
}

// cleanUp stops the manager and the control plane.
func (b *bench) cleanUp() error {
	var errs []error
	if b.mgr != nil {
		errs = append(errs, b.mgr.stop(30*time.Second))
	}
	if b.track != nil {
		b.track.stop()
	}
	if b.cp != nil {
		b.logf("stopping the control plane")
		errs = append(errs, b.cp.stop())
	}
	return errors.Join(errs...)
}

// logf prints a progress line on stderr.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-operator [%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

// startCluster starts the control plane, the bench namespace with its signing Secret, and the
// harness's watch on that namespace.
func (b *bench) startCluster(ctx context.Context) error {
	cp, err := startControlPlane(b.cfg.crds, b.work, b.cfg.attachControlPlane)
	if err != nil {
		return err
	}
	b.cp = cp
	if b.cfg.splitCores {
		split, err := splitCores()
		if err != nil {
			return err
		}
		b.notes = append(b.notes, "cores: "+split)
		b.logf("  %s", split)
	}
	if err := createNamespace(ctx, cp, benchNamespace); err != nil {
		return err
	}
	if err := writeSigningSecret(ctx, cp); err != nil {
		return err
	}
	b.track, err = startTracker(ctx, cp, cp.tokens, benchNamespace)
	return err
}

// measureFloor runs the raw floor for the burst, the rotation and one Secret create, then deletes
// the floor's objects before the manager starts.
func (b *bench) measureFloor(ctx context.Context) error {
	var bursts, rotations []floorRun
	var set *floorSet
	var namespaces []string
	for round := 1; round <= b.cfg.floorRounds; round++ {
		for _, w := range b.cfg.floorWorkers {
			run, s, err := floorBurst(ctx, b.cp, b.cfg.tokens, w, round)
			if err != nil {
				return err
			}
			b.logf("  floor burst, round %d, %d workers: %s (the client returned after %s; seen: %s; CPU: %s)", round, w,
				run.elapsed.Round(time.Millisecond), run.returned.Round(time.Millisecond), run.spread, run.cpu)
			bursts, set = append(bursts, run), s
			namespaces = append(namespaces, s.namespace)
		}
		for _, w := range b.cfg.floorWorkers {
			run, err := floorRotate(ctx, b.cp, set, w, round)
			if err != nil {
				return err
			}
			b.logf("  floor rotation, round %d, %d workers: %s (the client returned after %s; seen: %s; CPU: %s)", round, w,
				run.elapsed.Round(time.Millisecond), run.returned.Round(time.Millisecond), run.spread, run.cpu)
			rotations = append(rotations, run)
		}
	}
	b.floor.bursts, b.floor.rotations = bursts, rotations
	b.floor.burst, b.floor.rotation = bestRun(bursts), bestRun(rotations)
	var err error
	if b.floor.createLatencies, b.floor.createReturns, err = floorCreateLatencies(ctx, b.cp, set.namespace, b.cfg.repairs); err != nil {
		return err
	}
	return deleteFloor(ctx, b.cp, namespaces)
}

// launchManager starts the manager and waits until it is up and idle.
func (b *bench) launchManager(ctx context.Context) error {
	args, note, err := managerArgs(b.cfg.managerBin, b.cp.kubeconfig, b.cfg.maxConcurrent, b.cfg.cpuProfile != "")
	if err != nil {
		return err
	}
	if note != "" {
		b.notes = append(b.notes, note)
	}
	b.mgrArgs = args
	if b.mgr, err = startManager(b.cfg.managerBin, args, b.logPath); err != nil {
		return err
	}
	idle, err := b.mgr.waitIdle(ctx, b.cfg.controller, 0, b.cfg.idleWindow, b.cfg.phaseTimeout)
	b.operator.workers = idle.sample.workers
	return err
}

// measureBurst creates N DatasetteTokens and times them to all Ready, then to the manager idle.
func (b *bench) measureBurst(ctx context.Context) error {
	n := b.cfg.tokens
	before, sampleBefore, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	tokens := b.cp.dyn.Resource(b.cp.tokens).Namespace(benchNamespace)
	apiVersion := b.cp.tokens.GroupVersion().String()
	cpuBefore := sampleCPU(b.mgr.pid())
	start := time.Now()
	err = forEach(ctx, b.cfg.workers, n, func(ctx context.Context, i int) error {
		if _, err := tokens.Create(ctx, newToken(apiVersion, benchNamespace, i), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating a DatasetteToken: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.logf("  created %d DatasetteTokens in %s", n, time.Since(start).Round(time.Millisecond))

	var ready arrivals
	if err := b.track.wait(ctx, "all tokens Ready", b.cfg.phaseTimeout, allReady(n, &ready)); err != nil {
		return err
	}
	b.operator.burstReady = ready.last().Sub(start)
	b.operator.burstCPU = sampleCPU(b.mgr.pid()).since(cpuBefore)
	b.logf("  all %d Ready after %s (seen: %s; CPU: %s)", n, b.operator.burstReady.Round(time.Millisecond), ready.spread(start),
		b.operator.burstCPU)

	idle, err := b.mgr.waitIdle(ctx, b.cfg.controller, sampleBefore.reconciles+float64(n), b.cfg.idleWindow, b.cfg.phaseTimeout)
	if err != nil {
		return err
	}
	b.operator.burstIdle = idle.since.Sub(start)
	b.operator.burstReconciles = (idle.sample.reconciles - sampleBefore.reconciles) / float64(n)
	// The first-issue events follow the state writes at the manager's --event-qps: wait for them
	// all, so that they count in this phase and do not load the next.
	eventsSent, err := b.waitEvents(ctx, before, n)
	if err != nil {
		return err
	}
	b.operator.burstEvents = eventsSent.Sub(start)
	b.logf("  all %d first-issue events sent after %s", n, b.operator.burstEvents.Round(time.Millisecond))
	after, sampleAfter, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	b.operator.burstRequests = after.since(before).minus(harnessCreates(n, "201"))
	b.operator.burstClient = clientDelta(sampleBefore.client, sampleAfter.client)
	return b.countErrors("burst")
}

// waitEvents waits until the API server has created n events since before and returns when it
// saw the n-th (to within its 100 ms poll).
func (b *bench) waitEvents(ctx context.Context, before requestCounts, n int) (time.Time, error) {
	deadline := time.Now().Add(b.cfg.phaseTimeout)
	for {
		now, err := b.cp.apiRequests(ctx)
		if err != nil {
			return time.Time{}, err
		}
		created := 0.0
		for k, v := range now.since(before) {
			if k.Verb == verbCreate && k.Group == "events.k8s.io" && k.Resource == "events" && k.Code == "201" {
				created += v
			}
		}
		if created >= float64(n) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%.0f of %d first-issue events sent after %s", created, n, b.cfg.phaseTimeout)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// measureCacheSyncFloor times fresh informers syncing the bench namespace's tokens and Secrets.
func (b *bench) measureCacheSyncFloor(ctx context.Context) error {
	const runs = 3
	for i := range runs {
		var elapsed time.Duration
		requests, err := requestsDuring(ctx, b.cp, func() (err error) {
			elapsed, err = floorCacheSync(ctx, b.cp)
			return err
		})
		if err != nil {
			return err
		}
		if i == 0 || elapsed < b.floor.cacheSync {
			b.floor.cacheSync = elapsed
		}
		b.floor.cacheSyncRequests = requests
		b.logf("  cache sync: %s", elapsed.Round(time.Millisecond))
	}
	return nil
}

// measureRotation changes the signing key -rotation-rounds times and keeps the fastest round, as
// the floor keeps its fastest run: each round times every token to re-minted (its output Secret
// changed and its status.issuedAt at or after the rotation's second) and to the manager idle.
func (b *bench) measureRotation(ctx context.Context) error {
	for round := 1; round <= b.cfg.rotationRounds; round++ {
		r, err := b.rotateOnce(ctx, round == 1)
		if err != nil {
			return err
		}
		b.logf("  round %d: all %d re-minted after %s", round, b.cfg.tokens, r.elapsed.Round(time.Millisecond))
		b.operator.rotations = append(b.operator.rotations, r.elapsed)
		if round == 1 || r.elapsed < b.operator.rotation {
			b.operator.rotation, b.operator.rotationIdle, b.operator.rotationRequests, b.operator.rotationCPU = r.elapsed, r.idle, r.requests, r.cpu
		}
		if err := b.countErrors("rotation"); err != nil {
			return err
		}
	}
	return nil
}

// rotationRun is one rotation of the signing key.
type rotationRun struct {
	elapsed, idle time.Duration
	requests      requestCounts
	cpu           processCPU
}

// rotateOnce rotates the signing key once; with profile, the manager's CPU profile covers it.
func (b *bench) rotateOnce(ctx context.Context, profile bool) (rotationRun, error) {
	n := b.cfg.tokens
	if err := waitNewSecond(ctx); err != nil {
		return rotationRun{}, err
	}
	oldData := map[string][sha256.Size]byte{}
	b.track.locked(func() {
		for name, s := range b.track.tokens {
			oldData[name] = b.track.secrets[s.secretName].dataHash
		}
	})
	before, sampleBefore, err := b.snapshot(ctx)
	if err != nil {
		return rotationRun{}, err
	}
	if profile {
		defer b.startCPUProfile(ctx)()
	}
	cpuBefore := sampleCPU(b.mgr.pid())
	start := time.Now()
	since := start.Truncate(time.Second)
	if err := writeSigningSecret(ctx, b.cp); err != nil {
		return rotationRun{}, err
	}

	var seen arrivals
	err = b.track.wait(ctx, "all tokens re-minted", b.cfg.phaseTimeout, func(t *tracker) (bool, string) {
		seen.restart()
		done := 0
		for name, s := range t.tokens {
			secret := t.secrets[s.secretName]
			if s.ready && !s.issuedAt.Before(since) && !secret.deleted && secret.dataHash != oldData[name] {
				done++
				seen.add(later(s.issuedSeenAt, secret.seenAt))
			}
		}
		return done >= n, fmt.Sprintf("%d of %d re-minted", done, n)
	})
	if err != nil {
		return rotationRun{}, err
	}
	cpu := sampleCPU(b.mgr.pid()).since(cpuBefore)
	idle, err := b.mgr.waitIdle(ctx, b.cfg.controller, sampleBefore.reconciles+float64(n), b.cfg.idleWindow, b.cfg.phaseTimeout)
	if err != nil {
		return rotationRun{}, err
	}
	after, _, err := b.snapshot(ctx)
	if err != nil {
		return rotationRun{}, err
	}
	b.logf("  re-minted, from the key's change: %s; CPU: %s", seen.spread(start), cpu)
	own := requestCounts{{Verb: verbUpdate, Resource: "secrets", Code: "200"}: 1}
	return rotationRun{elapsed: seen.last().Sub(start), idle: idle.since.Sub(start), requests: after.since(before).minus(own), cpu: cpu}, nil
}

// measureRestart stops the manager, starts it again, and times it to idle after N reconciles,
// counting the API requests it made meanwhile.
func (b *bench) measureRestart(ctx context.Context) error {
	before, err := b.cp.apiRequests(ctx)
	if err != nil {
		return err
	}
	if err := b.mgr.stop(30 * time.Second); err != nil {
		return err
	}
	start := time.Now()
	if b.mgr, err = startManager(b.cfg.managerBin, b.mgrArgs, b.logPath); err != nil {
		return err
	}
	idle, err := b.mgr.waitIdle(ctx, b.cfg.controller, float64(b.cfg.tokens), b.cfg.idleWindow, b.cfg.phaseTimeout)
	if err != nil {
		return err
	}
	after, err := b.cp.apiRequests(ctx)
	if err != nil {
		return err
	}
	o := &b.operator
	o.restart, o.restartShort, o.restartReconciles = idle.since.Sub(start), idle.short, idle.sample.reconciles
	o.restartRequests, o.restartClient = after.since(before), idle.sample.client
	b.logf("  idle after %s, %.0f reconciles", o.restart.Round(time.Millisecond), o.restartReconciles)
	if idle.short {
		b.notes = append(b.notes, fmt.Sprintf("restart: the manager went quiet after %.0f reconciles, fewer than the %d tokens",
			o.restartReconciles, b.cfg.tokens))
	}
	return b.countErrors("restart")
}

// measureMemory reads the idle manager's memory, creates the unrelated Secrets, and reads it again
// once it has settled.
func (b *bench) measureMemory(ctx context.Context) error {
	var err error
	if b.operator.rss, err = b.settledMemory(ctx); err != nil {
		return err
	}
	b.logf("  idle with %d tokens: RSS %.1f MiB", b.cfg.tokens, mib(b.operator.rss.rss))
	if b.cfg.unrelated == 0 {
		b.operator.rssUnrelated = b.operator.rss
		return nil
	}
	start := time.Now()
	if err := createUnrelatedSecrets(ctx, b.cp, b.cfg.unrelated, b.cfg.unrelatedNamespaces, b.cfg.unrelatedSize, b.cfg.workers); err != nil {
		return err
	}
	b.logf("  created %d unrelated Secrets in %s", b.cfg.unrelated, time.Since(start).Round(time.Millisecond))
	if b.operator.rssUnrelated, err = b.settledMemory(ctx); err != nil {
		return err
	}
	b.logf("  with them: RSS %.1f MiB", mib(b.operator.rssUnrelated.rss))
	return nil
}

// measureRepair deletes output Secrets one at a time and times each until the watch sees it again.
func (b *bench) measureRepair(ctx context.Context) error {
	before, err := b.cp.apiRequests(ctx)
	if err != nil {
		return err
	}
	secrets := b.cp.kube.CoreV1().Secrets(benchNamespace)
	for r := range b.cfg.repairs {
		name := b.outputSecretName(tokenName(r * b.cfg.tokens / b.cfg.repairs))
		latency, err := b.repairOne(ctx, secrets.Delete, name)
		if err != nil {
			return err
		}
		b.operator.repairs = append(b.operator.repairs, latency)
		// Let the reconciles the repair causes finish before the next one.
		if _, err := b.mgr.waitIdle(ctx, b.cfg.controller, 0, 200*time.Millisecond, b.cfg.phaseTimeout); err != nil {
			return err
		}
	}
	after, err := b.cp.apiRequests(ctx)
	if err != nil {
		return err
	}
	own := requestCounts{{Verb: verbDelete, Resource: "secrets", Code: "200"}: float64(b.cfg.repairs)}
	b.operator.repairRequests = after.since(before).minus(own)
	return b.countErrors("repair")
}

// deleteFunc deletes a Secret by name, as a typed client's Delete does.
type deleteFunc func(ctx context.Context, name string, opts metav1.DeleteOptions) error

// repairOne deletes one output Secret and returns the time from its deletion to its re-creation,
// both as the harness's watch saw them.
func (b *bench) repairOne(ctx context.Context, remove deleteFunc, name string) (time.Duration, error) {
	var oldUID types.UID
	b.track.locked(func() { oldUID = b.track.secrets[name].uid })
	if oldUID == "" {
		return 0, fmt.Errorf("the watch has not seen Secret %s", name)
	}
	if err := remove(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &oldUID}}); err != nil {
		return 0, fmt.Errorf("deleting Secret %s: %w", name, err)
	}
	var latency time.Duration
	err := b.track.wait(ctx, "Secret "+name+" re-created", b.cfg.phaseTimeout, func(t *tracker) (bool, string) {
		s := t.secrets[name]
		if s.deleted || s.uid == oldUID || s.deletedAt.IsZero() {
			return false, "not yet"
		}
		latency = s.seenAt.Sub(s.deletedAt)
		return true, ""
	})
	return latency, err
}

// outputSecretName is the Secret a token's status names (its own name until it has one).
func (b *bench) outputSecretName(token string) string {
	name := token
	b.track.locked(func() {
		if s := b.track.tokens[token].secretName; s != "" {
			name = s
		}
	})
	return name
}

// snapshot reads the API server's request counts and a sample of the manager's metrics.
func (b *bench) snapshot(ctx context.Context) (requestCounts, managerSample, error) {
	requests, err := b.cp.apiRequests(ctx)
	if err != nil {
		return nil, managerSample{}, err
	}
	sample, err := b.mgr.sample(ctx, b.cfg.controller)
	if err != nil {
		return nil, managerSample{}, err
	}
	return requests, sample, nil
}

// countErrors counts the "Reconciler error" lines the manager logged since the last count.
func (b *bench) countErrors(phase string) error {
	n, size, err := countInFile(b.logPath, b.logSeen, reconcilerError)
	if err != nil {
		return err
	}
	b.logSeen = size
	b.operator.errorsLogged[phase] = n
	return nil
}

// memorySample is the manager's memory at one moment.
type memorySample struct {
	rss, peak, heapInuse float64 // bytes
	settled              bool    // the resident size had stopped moving
}

// settledMemory waits until the manager's resident size has stayed within 1 MiB (or 1 %) for
// three seconds, for at most a minute, and returns it.
func (b *bench) settledMemory(ctx context.Context) (memorySample, error) {
	const (
		interval = 250 * time.Millisecond
		window   = 3 * time.Second
		limit    = time.Minute
	)
	var history []float64
	start := time.Now()
	for {
		rss, peak, err := b.mgr.memory()
		if err != nil {
			return memorySample{}, err
		}
		history = append(history, rss)
		if settled := isSettled(history, int(window/interval)); settled || time.Since(start) > limit {
			sample, err := b.mgr.sample(ctx, b.cfg.controller)
			if err != nil {
				return memorySample{}, err
			}
			return memorySample{rss: rss, peak: peak, heapInuse: sample.heapInuse, settled: settled}, nil
		}
		if err := sleep(ctx, interval); err != nil {
			return memorySample{}, err
		}
	}
}

// isSettled tells whether the last `samples` values stay within 1 MiB or 1 % of each other.
func isSettled(history []float64, samples int) bool {
	if len(history) < samples {
		return false
	}
	recent := history[len(history)-samples:]
	lo, hi := recent[0], recent[0]
	for _, v := range recent {
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi-lo <= max(1<<20, hi/100)
}

// waitNewSecond waits for the next whole second. A status's times have whole seconds: a rotation
// that starts in a new second writes a status that differs from every earlier one, so that no
// earlier write can look new and no write of the same status is skipped by the API server.
func waitNewSecond(ctx context.Context) error {
	return sleep(ctx, time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
