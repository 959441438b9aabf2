package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// Condition types, in the style of Flux and kstatus: Ready says whether the Secret holds a valid
// token; Stalled is set beside Ready=False while only a person can fix what is wrong, so that
// kstatus computes such a token as Failed rather than Current.
const (
	// ConditionReady is True while the output Secret holds a valid token for the current spec.
	ConditionReady = "Ready"
	// ConditionStalled is True while reconciliation cannot progress without a person's action.
	ConditionStalled = "Stalled"
)

// Reasons of the Ready condition.
const (
	// ReasonIssued: the output Secret holds a valid token for the current spec.
	ReasonIssued = "Issued"
	// ReasonSigningSecretNotFound: the signing Secret does not exist (yet).
	ReasonSigningSecretNotFound = "SigningSecretNotFound"
	// ReasonSigningKeyMissing: the signing Secret lacks the key, or the key is empty.
	ReasonSigningKeyMissing = "SigningKeyMissing"
	// ReasonSecretConflict: the output Secret exists and belongs to someone else.
	ReasonSecretConflict = "SecretConflict"
	// ReasonInvalidSpec: the spec cannot be minted as it is.
	ReasonInvalidSpec = "InvalidSpec"
)

// setReady records the Ready condition (and Stalled beside a failure) for the token's current
// generation. It reports whether Ready changed status or reason, which is when failures are
// worth an event.
func setReady(tok *datasettev1alpha1.DatasetteToken, status metav1.ConditionStatus, reason, message string) (changed bool) {
	before := meta.FindStatusCondition(tok.Status.Conditions, ConditionReady)
	changed = before == nil || before.Status != status || before.Reason != reason
	meta.SetStatusCondition(&tok.Status.Conditions, metav1.Condition{
		Type: ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: tok.Generation,
	})
	if status == metav1.ConditionTrue {
		meta.RemoveStatusCondition(&tok.Status.Conditions, ConditionStalled)
	} else {
		meta.SetStatusCondition(&tok.Status.Conditions, metav1.Condition{
			Type: ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: message, ObservedGeneration: tok.Generation,
		})
	}
	return changed
}
