package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// paused reports whether a Ready reason says that nothing is minted on purpose.
func paused(reason string) bool {
	return reason == datasettev1alpha1.ReasonSuspended || reason == datasettev1alpha1.ReasonEnded
}

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
	before := meta.FindStatusCondition(*conditions, datasettev1alpha1.ConditionReady)
	changed = before == nil || before.Status != r.status || before.Reason != r.reason
	set := func(typ string, status metav1.ConditionStatus) {
		meta.SetStatusCondition(conditions, metav1.Condition{
			Type: typ, Status: status, Reason: r.reason, Message: r.message, ObservedGeneration: generation,
		})
	}
	set(datasettev1alpha1.ConditionReady, r.status)
	for sev, typ := range map[severity]string{waiting: datasettev1alpha1.ConditionReconciling, stalled: datasettev1alpha1.ConditionStalled} {
		if r.severity == sev {
			set(typ, metav1.ConditionTrue)
		} else {
			meta.RemoveStatusCondition(conditions, typ)
		}
	}
	return changed
}
