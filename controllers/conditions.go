package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types, in the style of Flux and kstatus: Ready says whether the object does its job;
// Reconciling is set beside Ready=False while waiting for something time can bring (kstatus:
// InProgress); Stalled beside Ready=False while only a person can fix what is wrong (kstatus:
// Failed).
const (
	// ConditionReady is True while the output Secret holds a valid token for the current spec
	// (for a signer: while it can sign).
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator waits for something that may still come.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True while reconciliation cannot progress without a person's action.
	ConditionStalled = "Stalled"
	// ConditionRestartTargetsReady reports the last restart of spec.rolloutRestartTargets.
	ConditionRestartTargetsReady = "RestartTargetsReady"
)

// Reasons of a DatasetteToken's Ready condition.
const (
	// ReasonIssued: the output Secret holds a valid token for the current spec.
	ReasonIssued = "Issued"
	// ReasonSuspended: spec.suspend is set; nothing is minted.
	ReasonSuspended = "Suspended"
	// ReasonEnded: spec.notAfter has passed; nothing more is minted.
	ReasonEnded = "Ended"
	// ReasonSigningSecretNotFound: the signing Secret does not exist (yet).
	ReasonSigningSecretNotFound = "SigningSecretNotFound"
	// ReasonSigningKeyMissing: the signing Secret lacks the key, or the key is empty.
	ReasonSigningKeyMissing = "SigningKeyMissing"
	// ReasonSignerNotFound: the signer named by spec.signerRef does not exist (yet).
	ReasonSignerNotFound = "SignerNotFound"
	// ReasonSignerNotReady: the signer cannot sign: its Secret or key is missing.
	ReasonSignerNotReady = "SignerNotReady"
	// ReasonNamespaceNotAllowed: the ClusterDatasetteSigner does not select this namespace.
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonPolicyViolation: the spec breaks the signer's policy.
	ReasonPolicyViolation = "PolicyViolation"
	// ReasonSecretConflict: the output Secret exists and belongs to someone else.
	ReasonSecretConflict = "SecretConflict"
	// ReasonInvalidSpec: the spec cannot be minted as it is.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonSecretRejected: the API server refused to write the output Secret.
	ReasonSecretRejected = "SecretRejected"
)

// Reasons of the RestartTargetsReady condition.
const (
	// ReasonRestarted: every rollout restart target was restarted for the current token.
	ReasonRestarted = "Restarted"
	// ReasonTargetNotFound: a rollout restart target does not exist.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonTargetRejected: the API server refused to patch a rollout restart target (RBAC, say).
	ReasonTargetRejected = "TargetRejected"
)

// Reasons of a signer's Ready condition.
const (
	// ReasonSignerReady: the signer's Secret holds a key.
	ReasonSignerReady = "Ready"
	// ReasonSecretNotFound: the signer's Secret does not exist (yet).
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonKeyMissing: the signer's Secret lacks the key, or it is empty.
	ReasonKeyMissing = "KeyMissing"
)

// paused reports whether a Ready reason says that nothing is minted on purpose.
func paused(reason string) bool { return reason == ReasonSuspended || reason == ReasonEnded }

// severity says what a Ready condition means beyond its status.
type severity int

const (
	// settled: nothing to wait for and nothing to fix (healthy, or suspended with a valid token).
	settled severity = iota
	// waiting: time may fix it (Reconciling=True).
	waiting
	// stalled: a person must act (Stalled=True).
	stalled
)

// readiness is the Ready condition an object should have.
type readiness struct {
	status   metav1.ConditionStatus
	reason   string
	message  string
	severity severity
}

// ready is a healthy readiness.
func ready(reason, message string) readiness {
	return readiness{status: metav1.ConditionTrue, reason: reason, message: message}
}

// notReady is a failing readiness of the given severity.
func notReady(sev severity, reason, message string) readiness {
	return readiness{status: metav1.ConditionFalse, reason: reason, message: message, severity: sev}
}

// setReadiness records r as Ready, with Reconciling or Stalled beside it as its severity says,
// for generation. It reports whether Ready changed status or reason, which is when a failure is
// worth an event.
func setReadiness(conditions *[]metav1.Condition, generation int64, r readiness) (changed bool) {
	before := meta.FindStatusCondition(*conditions, ConditionReady)
	changed = before == nil || before.Status != r.status || before.Reason != r.reason
	set := func(typ string, status metav1.ConditionStatus) {
		meta.SetStatusCondition(conditions, metav1.Condition{
			Type: typ, Status: status, Reason: r.reason, Message: r.message, ObservedGeneration: generation,
		})
	}
	set(ConditionReady, r.status)
	for sev, typ := range map[severity]string{waiting: ConditionReconciling, stalled: ConditionStalled} {
		if r.severity == sev {
			set(typ, metav1.ConditionTrue)
		} else {
			meta.RemoveStatusCondition(conditions, typ)
		}
	}
	return changed
}
