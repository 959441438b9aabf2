package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Probe timing.
const (
	// defaultProbeInterval is spec.probe.interval's default.
	defaultProbeInterval = 5 * time.Minute
	// minProbeInterval is the shortest interval honoured, whatever the object says.
	minProbeInterval = 10 * time.Second
	// defaultRotationTimeout is spec.probe.rotationTimeout's default.
	defaultRotationTimeout = 10 * time.Minute
	// rotationPoll is how often the instance is probed while a rotation waits for it.
	rotationPoll = 5 * time.Second
)

// Prober asks an instance about a key; dsprobe.Probe in production.
type Prober func(ctx context.Context, minter *dstoken.Minter, cfg dsprobe.Config, now time.Time) dsprobe.Result

// probeSettings are what the signer controller needs to probe.
type probeSettings struct {
	// allowNamespaced lets DatasetteSigners probe (--allow-namespaced-probes).
	allowNamespaced bool
	// probe asks the instance; nil means dsprobe.Probe.
	probe Prober
	// now tells the time.
	now func() time.Time
	// runner runs the probes off the reconcile workers, one in flight per namespace (nil: on
	// the reconcile's goroutine, unlimited, as unit tests do).
	runner *probeRunner
	// addresses is where probes may connect (nil: dsprobe's built-in refusals only).
	addresses *dsprobe.AddressPolicy
}

// tenantUnreachable is all a DatasetteSigner's condition says of a probe that failed: what
// answered at an address, or why nothing did, would let a tenant map what the operator reaches.
const tenantUnreachable = "the instance did not answer as Datasette (the operator does not tell a DatasetteSigner why: " +
	"the platform team finds it in the manager's log)"

// instanceInput is what decideInstance needs: the signer's settings, what its status says, the
// key and the probe's result.
type instanceInput struct {
	settings datasettev1alpha1.SignerSettings
	// tenant says the signer is a DatasetteSigner: an unreachable instance's details are not told.
	tenant   bool
	previous *datasettev1alpha1.InstanceStatus
	// keySince identifies the current key: the Secret's resourceVersion at which it took its
	// value.
	keySince string
	result   dsprobe.Result
}

// instanceDecision is what the signer records after a probe.
type instanceDecision struct {
	instance  *datasettev1alpha1.InstanceStatus
	condition metav1.Condition
	// requeueAfter is when to probe next.
	requeueAfter time.Duration
	// rotationStarted and rotationTimedOut say that this probe changed the rotation's state.
	rotationStarted, rotationTimedOut bool
}

// decideInstance is the signer's probe decision, a pure function: the instance status, the
// InstanceVerified condition and when to probe again.
func decideInstance(in instanceInput, now time.Time) instanceDecision {
	probe := in.settings.Probe
	prev := in.previous
	if prev == nil {
		prev = &datasettev1alpha1.InstanceStatus{}
	}
	next := prev.DeepCopy()
	res := in.result
	at := metav1.NewTime(now.Truncate(time.Second))
	next.ProbedAt = &at
	if res.Verdict != dsprobe.Unreachable {
		next.Version = res.Version
		if res.SettingsKnown {
			allow := res.AllowSignedTokens
			next.AllowSignedTokens = &allow
			next.MaxSignedTokensTTL = nil
			if res.MaxSignedTokensTTL > 0 {
				next.MaxSignedTokensTTL = &metav1.Duration{Duration: res.MaxSignedTokensTTL}
			}
		}
	}
	d := instanceDecision{instance: next}

	// The key's state, for the tokens.
	keyChanged := prev.KeyResourceVersion != "" && prev.KeyResourceVersion != in.keySince
	wasAccepted := prev.KeyState == datasettev1alpha1.KeyStateAccepted
	next.KeyResourceVersion = in.keySince
	switch {
	case res.Verdict == dsprobe.KeyAccepted:
		next.KeyState, next.RotationStartedAt = datasettev1alpha1.KeyStateAccepted, nil
	case keyChanged && (wasAccepted || prev.KeyState == datasettev1alpha1.KeyStateRotationPending ||
		prev.KeyState == datasettev1alpha1.KeyStateRotationTimedOut):
		// A new key while the instance accepted the previous one (or a rotation was under way).
		next.KeyState, next.RotationStartedAt = datasettev1alpha1.KeyStateRotationPending, &at
		d.rotationStarted = true
	case keyChanged && res.Verdict == dsprobe.Unreachable:
		next.KeyState, next.RotationStartedAt = "", nil // nothing known about the new key
	case res.Verdict == dsprobe.Unreachable:
		// Nothing learned: the state stays.
	case prev.KeyState == datasettev1alpha1.KeyStateRotationPending || prev.KeyState == datasettev1alpha1.KeyStateRotationTimedOut:
		// Still rejected during the rotation: it stays so, until the timeout below.
	default:
		next.KeyState, next.RotationStartedAt = datasettev1alpha1.KeyStateRejected, nil
	}
	timeout := defaultRotationTimeout
	if probe != nil && probe.RotationTimeout != nil && probe.RotationTimeout.Duration > 0 {
		timeout = probe.RotationTimeout.Duration
	}
	if next.KeyState == datasettev1alpha1.KeyStateRotationPending && next.RotationStartedAt != nil &&
		!now.Before(next.RotationStartedAt.Add(timeout)) {
		next.KeyState, d.rotationTimedOut = datasettev1alpha1.KeyStateRotationTimedOut, true
	}

	d.condition = instanceCondition(in.settings, next, res, timeout, in.tenant)
	d.requeueAfter = probeInterval(probe)
	if next.KeyState == datasettev1alpha1.KeyStateRotationPending {
		d.requeueAfter = rotationPoll
	}
	return d
}

// instanceCondition is the InstanceVerified condition for a probe's result; tenant: for a
// DatasetteSigner, which is told of a failed probe only that it failed.
func instanceCondition(settings datasettev1alpha1.SignerSettings, inst *datasettev1alpha1.InstanceStatus, res dsprobe.Result,
	timeout time.Duration, tenant bool) metav1.Condition {
	c := metav1.Condition{Type: datasettev1alpha1.ConditionInstanceVerified, Status: metav1.ConditionFalse}
	if tenant && res.Verdict == dsprobe.KeyAccepted {
		res.Detail = "" // what else the instance answered, its own Datasette's or not
	}
	switch {
	case res.Verdict == dsprobe.Unreachable && tenant:
		c.Reason, c.Message = datasettev1alpha1.ReasonUnreachable, tenantUnreachable
	case res.Verdict == dsprobe.Unreachable:
		c.Reason, c.Message = datasettev1alpha1.ReasonUnreachable, "the instance did not answer the probe: "+res.Detail
	case res.Verdict == dsprobe.KeyRejected:
		c.Reason, c.Message = datasettev1alpha1.ReasonKeyRejected, res.Detail+
			"; the signer's Secret and the instance's DATASETTE_SECRET (or --secret) differ: make them the same, or restart the instance with the Secret's key"
	case res.Verdict == dsprobe.SignedTokensDisabled:
		c.Reason, c.Message = datasettev1alpha1.ReasonSignedTokensDisabled, res.Detail+"; set allow_signed_tokens on, or stop lending this key"
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, datasettev1alpha1.ReasonKeyAccepted,
			fmt.Sprintf("the instance (Datasette %s) accepts tokens signed with the signer's key", orUnknown(inst.Version))
		if res.Detail != "" {
			c.Message += " (" + res.Detail + ")"
		}
	}
	if res.Verdict == dsprobe.KeyAccepted {
		if want := settings.DatasetteVersion; want != "" && inst.Version != "" && !sameRelease(want, inst.Version) {
			c.Status, c.Reason = metav1.ConditionFalse, datasettev1alpha1.ReasonVersionMismatch
			c.Message = fmt.Sprintf("spec.datasetteVersion is %s, and the instance runs Datasette %s: tokens are minted for the "+
				"stricter (older) of the two; correct spec.datasetteVersion or remove it",
				want, inst.Version)
		} else if spec, got := durationOf(settings.MaxSignedTokensTTL), durationOf(inst.MaxSignedTokensTTL); spec > 0 && got > 0 && spec > got {
			c.Status, c.Reason = metav1.ConditionFalse, datasettev1alpha1.ReasonTTLMismatch
			c.Message = fmt.Sprintf("spec.maxSignedTokensTTL (%s) is longer than the instance's max_signed_tokens_ttl (%s): "+
				"tokens are dated by the instance's; shorten spec.maxSignedTokensTTL",
				spec, got)
		}
	}
	switch inst.KeyState {
	case datasettev1alpha1.KeyStateRotationPending:
		c.Message += fmt.Sprintf("; the key changed at %s: tokens keep the previous key's token until the instance accepts the new one (at most %s)",
			inst.RotationStartedAt.UTC().Format(time.RFC3339), timeout)
	case datasettev1alpha1.KeyStateRotationTimedOut:
		c.Message += fmt.Sprintf("; the instance did not accept the new key within %s of the change: tokens were re-minted with it anyway", timeout)
	case datasettev1alpha1.KeyStateRejected:
		c.Message += "; the signer's tokens mint nothing until the instance accepts the key"
	}
	c.Message = truncate(c.Message, maxNote)
	return c
}

// sameRelease reports whether two release strings name the same release.
func sameRelease(a, b string) bool {
	ra, errA := dstoken.ParseRelease(a)
	rb, errB := dstoken.ParseRelease(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return ra.Compare(rb) == 0
}

// orUnknown is s, or "of an unknown release".
func orUnknown(s string) string {
	if s == "" {
		return "of an unknown release"
	}
	return s
}

// probeInterval is the signer's probe interval, defaulted and bounded.
func probeInterval(probe *datasettev1alpha1.SignerProbe) time.Duration {
	if probe == nil || probe.Interval == nil {
		return defaultProbeInterval
	}
	return max(probe.Interval.Duration, minProbeInterval)
}

// probeInstance probes the signer's instance when it has spec.probe, records status.instance
// and the InstanceVerified condition in next, with an event on each change, and says when to
// probe again (zero: never).
func (r *signerReconciler) probeInstance(ctx context.Context, signer client.Object, key keyLookup,
	next *datasettev1alpha1.DatasetteSignerStatus) time.Duration {
	settings := r.kind.settingsOf(signer)
	if settings.Probe == nil {
		next.Instance = nil
		meta.RemoveStatusCondition(&next.Conditions, datasettev1alpha1.ConditionInstanceVerified)
		r.probes.runner.forget(client.ObjectKeyFromObject(signer))
		return 0
	}
	if signer.GetNamespace() != "" && !r.probes.allowNamespaced {
		next.Instance = nil
		r.setInstanceCondition(signer, next, metav1.Condition{Type: datasettev1alpha1.ConditionInstanceVerified, Status: metav1.ConditionFalse,
			Reason: datasettev1alpha1.ReasonProbeRefused, Message: "DatasetteSigners may not probe: the operator runs without --allow-namespaced-probes " +
				"(ask the platform team for a ClusterDatasetteSigner, or to enable namespaced probes); no request was made"})
		return 0
	}
	if key.minter == nil {
		return 0 // the Ready condition says why; the Secret's watch brings the signer back
	}
	now := r.probes.now()
	if wait := probeSpacing(signer.GetGeneration(), r.kind.statusOf(signer), key.since, now); wait > 0 {
		return wait // probed a moment ago for this spec and key: Secret events do not make probes faster
	}
	probe := r.probes.probe
	if probe == nil {
		probe = dsprobe.Probe
	}
	tenant := signer.GetNamespace() != ""
	// Only the signer's own spec.datasetteVersion may leave "_r" out of the probe token: a
	// release the instance merely claims is no reason to hand it an unrestricted token.
	release, _ := dstoken.ProfileForVersion(settings.DatasetteVersion)
	cfg := dsprobe.Config{URL: settings.Probe.URL, CABundle: []byte(settings.Probe.CABundle), Actor: settings.Probe.Actor,
		Unrestricted: release != nil && !release.EnforcesRestrictions, Addresses: r.probes.addresses, Tenant: tenant}
	run := func(ctx context.Context) dsprobe.Result { return probe(ctx, key.minter, cfg, now) }
	var result dsprobe.Result
	if runner := r.probes.runner; runner == nil {
		result = run(ctx)
	} else {
		id := client.ObjectKeyFromObject(signer)
		done, ok := runner.collect(id, signer.GetGeneration(), key.since)
		if !ok {
			if !runner.start(ctx, id, signer.GetGeneration(), key.since, now, run) {
				return probeSlotRetry // another signer of this namespace is probing: wait for it
			}
			return probeResultWait // the probe's end wakes the signer sooner
		}
		result, now = done.result, done.at
	}
	if tenant && result.Verdict == dsprobe.Unreachable {
		logf.FromContext(ctx).Info("a DatasetteSigner's instance did not answer the probe; its condition does not say why",
			"signer", client.ObjectKeyFromObject(signer), "detail", result.Detail)
	}
	d := decideInstance(instanceInput{settings: settings, tenant: tenant, previous: next.Instance, keySince: key.since, result: result}, now)
	next.Instance = d.instance
	r.setInstanceCondition(signer, next, d.condition)
	if d.rotationStarted {
		r.Recorder.Eventf(signer, nil, corev1.EventTypeNormal, "RotationPending", "Probe",
			"the signing key changed: tokens keep their token until the instance accepts the new key")
	}
	if d.rotationTimedOut {
		r.Recorder.Eventf(signer, nil, corev1.EventTypeWarning, "RotationTimedOut", "Probe",
			"the instance did not accept the new key in time: tokens are re-minted with it anyway")
	}
	return d.requeueAfter
}

// minProbeSpacing is the least time between two probes of a signer for the same spec and key,
// however many events wake it.
const minProbeSpacing = 4 * time.Second

// probeSpacing says how long to wait before probing again, given the signer's recorded status:
// zero when a probe is due (the spec or the key changed, or the last probe is minProbeSpacing old).
func probeSpacing(generation int64, status *datasettev1alpha1.DatasetteSignerStatus, keySince string, now time.Time) time.Duration {
	inst := status.Instance
	if inst == nil || inst.ProbedAt == nil || status.ObservedGeneration != generation || inst.KeyResourceVersion != keySince {
		return 0
	}
	// probedAt is in whole seconds: count from the end of its second.
	next := inst.ProbedAt.Add(minProbeSpacing + time.Second)
	if now.Before(next) {
		return next.Sub(now)
	}
	return 0
}

// setInstanceCondition records c, with an event when its status or reason changed.
func (r *signerReconciler) setInstanceCondition(signer client.Object, next *datasettev1alpha1.DatasetteSignerStatus, c metav1.Condition) {
	before := meta.FindStatusCondition(next.Conditions, datasettev1alpha1.ConditionInstanceVerified)
	c.ObservedGeneration = signer.GetGeneration()
	if before != nil && before.Status == c.Status && before.Reason == c.Reason && before.Message != c.Message &&
		c.Reason == datasettev1alpha1.ReasonUnreachable {
		c.Message = before.Message // an unreachable instance's details vary: keep the first, write less
	}
	meta.SetStatusCondition(&next.Conditions, c)
	if before == nil || before.Status != c.Status || before.Reason != c.Reason {
		eventType := corev1.EventTypeNormal
		if c.Status != metav1.ConditionTrue {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(signer, nil, eventType, c.Reason, "Probe", "%s", c.Message)
	}
}

// restartInstance restarts the signer's rolloutRestartTargets once per key value: when the key
// took a new value after the operator had seen another one. Like a token's, each target is
// restarted at most once per renewal floor: a restart due sooner waits (RestartDeferred), and
// restartInstance says how long. It records the key it restarted for in status.restartedForKey.
func (r *signerReconciler) restartInstance(ctx context.Context, signer client.Object, key keyLookup, floor time.Duration,
	next *datasettev1alpha1.DatasetteSignerStatus) (time.Duration, error) {
	settings := r.kind.settingsOf(signer)
	if len(settings.RolloutRestartTargets) == 0 {
		meta.RemoveStatusCondition(&next.Conditions, datasettev1alpha1.ConditionRestartTargetsReady)
		return 0, nil
	}
	if key.minter == nil || !key.rotated || next.RestartedForKey == key.since {
		return 0, nil
	}
	namespace := signer.GetNamespace()
	if namespace == "" {
		secret, _ := r.kind.secretOf(signer)
		namespace = secret.Namespace
	}
	now := r.probes.now()
	if wait := r.restarts.wait(namespace, settings.RolloutRestartTargets, floor, now); wait > 0 {
		meta.SetStatusCondition(&next.Conditions, metav1.Condition{Type: datasettev1alpha1.ConditionRestartTargetsReady, Status: metav1.ConditionFalse,
			Reason: datasettev1alpha1.ReasonRestartDeferred, ObservedGeneration: signer.GetGeneration(), Message: fmt.Sprintf(
				"the signing key change reaches the rollout restart targets at %s: each is restarted at most once per renewal floor (%s)",
				now.Add(wait).UTC().Format(time.RFC3339), floor)})
		return wait, nil
	}
	res, err := restartWorkloads(ctx, r.Client, namespace, settings.RolloutRestartTargets, now,
		"in "+namespace+" for the signing key change at "+now.UTC().Format(time.RFC3339))
	if err != nil {
		return 0, err
	}
	r.restarts.restarted(namespace, settings.RolloutRestartTargets, floor, now)
	c := res.condition
	c.ObservedGeneration = signer.GetGeneration()
	meta.SetStatusCondition(&next.Conditions, c)
	eventType := corev1.EventTypeNormal
	if c.Status != metav1.ConditionTrue {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(signer, nil, eventType, c.Reason, "Restart", "%s", c.Message)
	next.RestartedForKey = key.since
	return 0, nil
}

// probeSettings are the signer controllers' probe settings, from the reconciler's fields.
func (r *DatasetteTokenReconciler) probeSettings() probeSettings {
	return probeSettings{allowNamespaced: r.AllowNamespacedProbes, probe: r.Prober, now: r.Clock.Now, addresses: r.ProbeAddresses}
}
