package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

func TestDecideInstance(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	started := metav1.NewTime(t0.Add(-time.Minute))
	accepted := dsprobe.Result{Verdict: dsprobe.KeyAccepted, Version: "1.0a37", SettingsKnown: true, AllowSignedTokens: true, MaxSignedTokensTTL: time.Hour}
	rejected := dsprobe.Result{Verdict: dsprobe.KeyRejected, Version: "1.0a37", SettingsKnown: true, AllowSignedTokens: true, Detail: "rejected"}
	unreachable := dsprobe.Result{Verdict: dsprobe.Unreachable, Detail: "GET /-/actor.json: connection refused"}
	disabled := dsprobe.Result{Verdict: dsprobe.SignedTokensDisabled, Version: "1.0a37", SettingsKnown: true, Detail: "off"}
	state := func(s datasettev1alpha1.KeyState, rv string) *datasettev1alpha1.InstanceStatus {
		in := &datasettev1alpha1.InstanceStatus{KeyState: s, KeyResourceVersion: rv, Version: "1.0a19"}
		if s == datasettev1alpha1.KeyStateRotationPending || s == datasettev1alpha1.KeyStateRotationTimedOut {
			in.RotationStartedAt = &started
		}
		return in
	}
	probe := &datasettev1alpha1.SignerProbe{URL: "http://ds", Interval: &metav1.Duration{Duration: time.Minute}}
	tests := []struct {
		name     string
		settings datasettev1alpha1.SignerSettings
		prev     *datasettev1alpha1.InstanceStatus
		result   dsprobe.Result
		now      time.Time
		state    datasettev1alpha1.KeyState
		reason   string
		status   metav1.ConditionStatus
		requeue  time.Duration
		version  string
		ttl      time.Duration
		started  bool
		timedOut bool
	}{
		{name: "first probe, accepted", result: accepted, state: datasettev1alpha1.KeyStateAccepted, reason: datasettev1alpha1.ReasonKeyAccepted,
			status: metav1.ConditionTrue, requeue: time.Minute, version: "1.0a37", ttl: time.Hour},
		{name: "first probe, rejected: never accepted", result: rejected, state: datasettev1alpha1.KeyStateRejected, reason: datasettev1alpha1.ReasonKeyRejected,
			status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37"},
		{name: "first probe, unreachable: nothing known", result: unreachable, reason: datasettev1alpha1.ReasonUnreachable, status: metav1.ConditionFalse, requeue: time.Minute},
		{name: "unreachable keeps what was learned", prev: state(datasettev1alpha1.KeyStateAccepted, "2"), result: unreachable,
			state: datasettev1alpha1.KeyStateAccepted, reason: datasettev1alpha1.ReasonUnreachable, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a19"},
		{name: "signed tokens disabled", result: disabled, state: datasettev1alpha1.KeyStateRejected, reason: datasettev1alpha1.ReasonSignedTokensDisabled,
			status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37"},
		{name: "key changed, instance still on the old one: rotation pending", prev: state(datasettev1alpha1.KeyStateAccepted, "1"), result: rejected,
			state: datasettev1alpha1.KeyStateRotationPending, reason: datasettev1alpha1.ReasonKeyRejected, status: metav1.ConditionFalse, requeue: rotationPoll, version: "1.0a37", started: true},
		{name: "key changed, instance restarting: rotation pending", prev: state(datasettev1alpha1.KeyStateAccepted, "1"), result: unreachable,
			state: datasettev1alpha1.KeyStateRotationPending, reason: datasettev1alpha1.ReasonUnreachable, status: metav1.ConditionFalse, requeue: rotationPoll, version: "1.0a19", started: true},
		{name: "rotation pending, still rejected", prev: state(datasettev1alpha1.KeyStateRotationPending, "2"), result: rejected,
			state: datasettev1alpha1.KeyStateRotationPending, reason: datasettev1alpha1.ReasonKeyRejected, status: metav1.ConditionFalse, requeue: rotationPoll, version: "1.0a37"},
		{name: "rotation pending, new key accepted", prev: state(datasettev1alpha1.KeyStateRotationPending, "2"), result: accepted,
			state: datasettev1alpha1.KeyStateAccepted, reason: datasettev1alpha1.ReasonKeyAccepted, status: metav1.ConditionTrue, requeue: time.Minute, version: "1.0a37", ttl: time.Hour},
		{name: "rotation pending past the timeout", prev: state(datasettev1alpha1.KeyStateRotationPending, "2"), result: rejected, now: t0.Add(10 * time.Minute),
			state: datasettev1alpha1.KeyStateRotationTimedOut, reason: datasettev1alpha1.ReasonKeyRejected, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37", timedOut: true},
		{name: "rotation pending past a short timeout, unreachable", prev: state(datasettev1alpha1.KeyStateRotationPending, "2"), result: unreachable,
			settings: datasettev1alpha1.SignerSettings{Probe: &datasettev1alpha1.SignerProbe{URL: "http://ds", RotationTimeout: &metav1.Duration{Duration: 30 * time.Second}}},
			state:    datasettev1alpha1.KeyStateRotationTimedOut, reason: datasettev1alpha1.ReasonUnreachable, status: metav1.ConditionFalse, requeue: defaultProbeInterval, version: "1.0a19", timedOut: true},
		{name: "timed out stays so while rejected", prev: state(datasettev1alpha1.KeyStateRotationTimedOut, "2"), result: rejected,
			state: datasettev1alpha1.KeyStateRotationTimedOut, reason: datasettev1alpha1.ReasonKeyRejected, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37"},
		{name: "rejected key replaced by one also rejected", prev: state(datasettev1alpha1.KeyStateRejected, "1"), result: rejected,
			state: datasettev1alpha1.KeyStateRejected, reason: datasettev1alpha1.ReasonKeyRejected, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37"},
		{name: "rejected key replaced, instance unreachable: unknown", prev: state(datasettev1alpha1.KeyStateRejected, "1"), result: unreachable,
			reason: datasettev1alpha1.ReasonUnreachable, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a19"},
		{name: "accepted key now rejected (instance changed its key)", prev: state(datasettev1alpha1.KeyStateAccepted, "2"), result: rejected,
			state: datasettev1alpha1.KeyStateRejected, reason: datasettev1alpha1.ReasonKeyRejected, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37"},
		{name: "version mismatch", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a19"}, result: accepted,
			state: datasettev1alpha1.KeyStateAccepted, reason: datasettev1alpha1.ReasonVersionMismatch, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37", ttl: time.Hour},
		{name: "same version", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a37"}, result: accepted,
			state: datasettev1alpha1.KeyStateAccepted, reason: datasettev1alpha1.ReasonKeyAccepted, status: metav1.ConditionTrue, requeue: time.Minute, version: "1.0a37", ttl: time.Hour},
		{name: "spec TTL longer than the instance's", settings: datasettev1alpha1.SignerSettings{MaxSignedTokensTTL: &metav1.Duration{Duration: 2 * time.Hour}},
			result: accepted, state: datasettev1alpha1.KeyStateAccepted, reason: datasettev1alpha1.ReasonTTLMismatch, status: metav1.ConditionFalse, requeue: time.Minute, version: "1.0a37", ttl: time.Hour},
		{name: "spec TTL shorter than the instance's", settings: datasettev1alpha1.SignerSettings{MaxSignedTokensTTL: &metav1.Duration{Duration: time.Minute}},
			result: accepted, state: datasettev1alpha1.KeyStateAccepted, reason: datasettev1alpha1.ReasonKeyAccepted, status: metav1.ConditionTrue, requeue: time.Minute, version: "1.0a37", ttl: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			settings := tt.settings
			if settings.Probe == nil {
				settings.Probe = probe
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			d := decideInstance(instanceInput{settings: settings, previous: tt.prev, keySince: "2", result: tt.result}, now)
			got := d.instance
			if got.KeyState != tt.state || got.KeyResourceVersion != "2" || d.condition.Reason != tt.reason || d.condition.Status != tt.status ||
				d.requeueAfter != tt.requeue || got.Version != tt.version || durationOf(got.MaxSignedTokensTTL) != tt.ttl ||
				d.rotationStarted != tt.started || d.rotationTimedOut != tt.timedOut {
				t.Errorf("got state %q rv %q, condition %s/%s, requeue %s, version %q, ttl %s, started %v, timed out %v; want %q, %s/%s, %s, %q, %s, %v, %v\n%s",
					got.KeyState, got.KeyResourceVersion, d.condition.Status, d.condition.Reason, d.requeueAfter, got.Version, durationOf(got.MaxSignedTokensTTL),
					d.rotationStarted, d.rotationTimedOut, tt.state, tt.status, tt.reason, tt.requeue, tt.version, tt.ttl, tt.started, tt.timedOut, d.condition.Message)
			}
			if got.ProbedAt == nil || !got.ProbedAt.Equal(&metav1.Time{Time: now.Truncate(time.Second)}) {
				t.Errorf("probedAt %v", got.ProbedAt)
			}
			if d.condition.Message == "" || len(d.condition.Message) > maxNote {
				t.Errorf("message %q", d.condition.Message)
			}
			if tt.prev != nil && tt.prev.KeyResourceVersion == "1" && tt.prev.KeyState == datasettev1alpha1.KeyStateAccepted && tt.prev.Version != "1.0a19" {
				t.Error("the previous status was modified")
			}
		})
	}
}

func TestApplyInstance(t *testing.T) {
	hour := &metav1.Duration{Duration: time.Hour}
	tests := []struct {
		name     string
		settings datasettev1alpha1.SignerSettings
		inst     *datasettev1alpha1.InstanceStatus
		version  string
		// unreadable is the discovered release the operator cannot read.
		unreadable string
		ttl        time.Duration
	}{
		{name: "nothing probed", settings: datasettev1alpha1.SignerSettings{MaxSignedTokensTTL: hour}, ttl: time.Hour},
		{name: "discovered release", inst: &datasettev1alpha1.InstanceStatus{Version: "1.0a19"}, version: "1.0a19"},
		{name: "an older instance beats the spec", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a37"},
			inst: &datasettev1alpha1.InstanceStatus{Version: "1.0a19"}, version: "1.0a19"},
		{name: "an instance ignoring _r beats the spec", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a37"},
			inst: &datasettev1alpha1.InstanceStatus{Version: "1.0a0"}, version: "1.0a0"},
		{name: "an older spec beats the instance", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a19"},
			inst: &datasettev1alpha1.InstanceStatus{Version: "1.0a37"}, version: "1.0a19"},
		{name: "the same release written two ways", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0.0"},
			inst: &datasettev1alpha1.InstanceStatus{Version: "1.0"}, version: "1.0.0"},
		{name: "a malformed spec release is kept, for SignerRelease to refuse", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "one"},
			inst: &datasettev1alpha1.InstanceStatus{Version: "1.0a19"}, version: "one"},
		{name: "unreadable release is unknown", inst: &datasettev1alpha1.InstanceStatus{Version: "banana"}, unreadable: "banana"},
		{name: "a local version is unknown", inst: &datasettev1alpha1.InstanceStatus{Version: "1.0a1+deb12"}, unreadable: "1.0a1+deb12"},
		{name: "a post release is unknown, whatever the spec says", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a37"},
			inst: &datasettev1alpha1.InstanceStatus{Version: "1.0a1.post1"}, version: "1.0a37", unreadable: "1.0a1.post1"},
		{name: "discovered TTL", inst: &datasettev1alpha1.InstanceStatus{MaxSignedTokensTTL: hour}, ttl: time.Hour},
		{name: "shorter spec TTL wins", settings: datasettev1alpha1.SignerSettings{MaxSignedTokensTTL: &metav1.Duration{Duration: time.Minute}},
			inst: &datasettev1alpha1.InstanceStatus{MaxSignedTokensTTL: hour}, ttl: time.Minute},
		{name: "shorter instance TTL wins", settings: datasettev1alpha1.SignerSettings{MaxSignedTokensTTL: &metav1.Duration{Duration: 2 * time.Hour}},
			inst: &datasettev1alpha1.InstanceStatus{MaxSignedTokensTTL: hour}, ttl: time.Hour},
	}
	for _, tt := range tests {
		in := &gathered{signing: signingFacts{viaSigner: true, signerFound: true, settings: tt.settings, instance: tt.inst}}
		applyInstance(in)
		if got := in.signing.settings; got.DatasetteVersion != tt.version || durationOf(got.MaxSignedTokensTTL) != tt.ttl ||
			in.signing.unreadableRelease != tt.unreadable {
			t.Errorf("%s: version %q unreadable %q ttl %s, want %q %q %s", tt.name, got.DatasetteVersion, in.signing.unreadableRelease,
				durationOf(got.MaxSignedTokensTTL), tt.version, tt.unreadable, tt.ttl)
		}
	}
}

func TestDecideWithInstance(t *testing.T) {
	f := newDecideFixture(t)
	oldToken := f.token([]byte("old-key"), f.want.claims)
	rotated := dstoken.NewMinter(f.key, []byte("old-key"))
	started := metav1.NewTime(f.t0)
	inst := func(s datasettev1alpha1.KeyState, rv string) *datasettev1alpha1.InstanceStatus {
		return &datasettev1alpha1.InstanceStatus{KeyState: s, KeyResourceVersion: rv, RotationStartedAt: &started}
	}
	tests := []struct {
		name   string
		token  string
		probed bool
		inst   *datasettev1alpha1.InstanceStatus
		now    time.Duration // after t0
		mint   mintReason
		reason string
		sev    severity
		keeps  bool
	}{
		{name: "rotation without a probe goes ahead", token: oldToken, mint: mintRotation, reason: datasettev1alpha1.ReasonIssued},
		{name: "rotation before the probe saw the new key waits", token: oldToken, probed: true, inst: inst(datasettev1alpha1.KeyStateAccepted, "1"),
			reason: datasettev1alpha1.ReasonRotationPending, keeps: true},
		{name: "rotation with no probe result yet waits", token: oldToken, probed: true, reason: datasettev1alpha1.ReasonRotationPending, keeps: true},
		{name: "rotation pending waits", token: oldToken, probed: true, inst: inst(datasettev1alpha1.KeyStateRotationPending, "2"),
			reason: datasettev1alpha1.ReasonRotationPending, keeps: true},
		{name: "new key accepted: rotation goes ahead", token: oldToken, probed: true, inst: inst(datasettev1alpha1.KeyStateAccepted, "2"),
			mint: mintRotation, reason: datasettev1alpha1.ReasonIssued},
		{name: "rotation timed out: goes ahead", token: oldToken, probed: true, inst: inst(datasettev1alpha1.KeyStateRotationTimedOut, "2"),
			mint: mintRotation, reason: datasettev1alpha1.ReasonIssued},
		{name: "pending but the old token expired: re-minted", token: oldToken, probed: true, inst: inst(datasettev1alpha1.KeyStateRotationPending, "2"),
			now: 2 * time.Hour, mint: mintRotation, reason: datasettev1alpha1.ReasonIssued},
		{name: "instance rejects a key it never accepted: nothing minted", token: "-", probed: true, inst: inst(datasettev1alpha1.KeyStateRejected, "2"),
			reason: datasettev1alpha1.ReasonInstanceRejectsKey, sev: waiting},
		{name: "rejection of an earlier key says nothing of this one", token: "-", probed: true, inst: inst(datasettev1alpha1.KeyStateRejected, "1"),
			mint: mintIssue, reason: datasettev1alpha1.ReasonIssued},
		{name: "unknown state mints", token: "-", probed: true, inst: &datasettev1alpha1.InstanceStatus{}, mint: mintIssue, reason: datasettev1alpha1.ReasonIssued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := f.gathered(tt.token, rotated)
			in.signing.viaSigner, in.signing.signerFound, in.signing.namespaceAllowed = true, true, true
			in.signing.source = `ClusterDatasetteSigner "prod"`
			in.signing.probed, in.signing.instance = tt.probed, tt.inst
			in.signing.key.since = "2"
			p := decide(in, f.t0.Add(time.Minute+tt.now))
			if p.mint != tt.mint || p.readiness.reason != tt.reason || p.readiness.severity != tt.sev {
				t.Fatalf("mint %q reason %s sev %d, want %q %s %d (%s)", p.mint, p.readiness.reason, p.readiness.severity, tt.mint, tt.reason, tt.sev, p.readiness.message)
			}
			if tt.keeps && (p.token != oldToken || p.restart || p.requeueAfter <= 0 || p.readiness.status != metav1.ConditionTrue) {
				t.Errorf("a pending rotation must keep the token, Ready, and look again: %+v", p)
			}
			if tt.reason == datasettev1alpha1.ReasonInstanceRejectsKey && (p.token != "" || !strings.Contains(p.readiness.message, "nothing is minted")) {
				t.Errorf("rejected: token %q message %q", p.token, p.readiness.message)
			}
		})
	}
}

func TestProbeSpacing(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	probed := metav1.NewTime(t0)
	status := func(gen int64, rv string) *datasettev1alpha1.DatasetteSignerStatus {
		return &datasettev1alpha1.DatasetteSignerStatus{ObservedGeneration: gen,
			Instance: &datasettev1alpha1.InstanceStatus{ProbedAt: &probed, KeyResourceVersion: rv}}
	}
	tests := []struct {
		name   string
		status *datasettev1alpha1.DatasetteSignerStatus
		now    time.Duration
		wait   time.Duration
	}{
		{name: "never probed", status: &datasettev1alpha1.DatasetteSignerStatus{ObservedGeneration: 1}},
		{name: "probed a second ago", status: status(1, "7"), now: time.Second, wait: 4 * time.Second},
		{name: "probed long ago", status: status(1, "7"), now: time.Minute},
		{name: "spec changed", status: status(0, "7"), now: time.Second},
		{name: "key changed", status: status(1, "6"), now: time.Second},
	}
	for _, tt := range tests {
		if got := probeSpacing(1, tt.status, "7", t0.Add(tt.now)); got != tt.wait {
			t.Errorf("%s: wait %s, want %s", tt.name, got, tt.wait)
		}
	}
}

// TestTenantConditionsSayNoMore: a DatasetteSigner's condition says of a failed probe only that
// the instance did not answer as Datasette, and of an accepted key nothing the instance's other
// answers said; a ClusterDatasetteSigner's says why.
func TestTenantConditionsSayNoMore(t *testing.T) {
	settings := datasettev1alpha1.SignerSettings{Probe: &datasettev1alpha1.SignerProbe{URL: "http://ds"}}
	now := time.Unix(1_700_000_000, 0)
	unreachable := dsprobe.Result{Verdict: dsprobe.Unreachable, Detail: "GET /-/actor.json: dial tcp 10.0.0.1:8001: connect: connection refused"}
	partial := dsprobe.Result{Verdict: dsprobe.KeyAccepted, Version: "1.0a37", Detail: "GET /-/settings.json: answered 403"}
	for _, tt := range []struct {
		result dsprobe.Result
		tenant bool
		want   string
	}{
		{unreachable, true, tenantUnreachable},
		{unreachable, false, "the instance did not answer the probe: " + unreachable.Detail},
		{partial, true, "the instance (Datasette 1.0a37) accepts tokens signed with the signer's key"},
		{partial, false, "the instance (Datasette 1.0a37) accepts tokens signed with the signer's key (" + partial.Detail + ")"},
	} {
		d := decideInstance(instanceInput{settings: settings, tenant: tt.tenant, keySince: "1", result: tt.result}, now)
		if d.condition.Message != tt.want {
			t.Errorf("%s, tenant=%v: message %q, want %q", tt.result.Verdict, tt.tenant, d.condition.Message, tt.want)
		}
	}
}
