package controllers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// maxNote is the longest event note or API message the operator records: the events API drops
// notes over 1 KiB.
const maxNote = 1024

// conflictRetry is how soon a reconcile that lost a race (409) looks again; the newer object's
// event usually comes first.
const conflictRetry = 200 * time.Millisecond

// apply carries out p, decided at now: the Secret first, then the Secret left under an earlier
// name, the rollout restarts, once the status, and the events. It decides nothing but what the
// API server's answers leave it (a refused write).
func (r *DatasetteTokenReconciler) apply(ctx context.Context, in *gathered, p plan, now time.Time) (ctrl.Result, error) {
	tok := in.token
	if p.revoke {
		if err := r.revoke(ctx, in, &p); err != nil {
			return ctrl.Result{}, err
		}
	}
	if p.token != "" {
		if err := r.writeSecret(ctx, in, p); err != nil {
			if !isPermanent(err) {
				return ctrl.Result{}, err
			}
			p.readiness = notReady(stalled, datasettev1alpha1.ReasonSecretRejected, truncate(fmt.Sprintf(
				"the API server refused Secret %q: %s", in.want.secretName, apierrors.ReasonForError(err))+": "+scrubbed(err.Error(), p.token), maxNote))
			// Nothing was written: the status keeps describing the token the Secret holds.
			p.mint, p.restart, p.token, p.claims, p.dates = noMint, false, "", dstoken.Claims{}, tokenDates{}
			p.renewRequest = renewRequestRecord(tok.Status.LastRenewRequest)
		}
	}
	if p.mint != noMint {
		// Counted once the Secret holds it: a failed status write below is retried, the mint is not.
		tokenMints.WithLabelValues(string(p.mint)).Inc()
	}
	if p.token != "" && secretOwnership(in.staleSecret, tok) == secretOwned {
		s := in.staleSecret
		if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("deleting Secret %s/%s, no longer named by spec.secretName: %w", s.Namespace, s.Name, err)
		}
	}
	status := tok.Status.DeepCopy()
	restartDone := p.token != "" && !p.restart
	if p.restart && len(tok.Spec.RolloutRestartTargets) > 0 {
		issuedAt := time.Unix(p.claims.IssuedAt, 0)
		if !p.restartAt.IsZero() {
			deferRestart(tok, &status.Conditions, issuedAt, p.restartAt)
		} else {
			if err := r.restartTargets(ctx, tok, issuedAt, &status.Conditions); err != nil {
				return ctrl.Result{}, err
			}
			r.restarts.restarted(tok.Namespace, tok.Spec.RolloutRestartTargets, in.floor, now)
			restartDone = true
		}
	} else if p.restart {
		restartDone = true
	}
	if restartDone && p.claims.IssuedAt != 0 {
		status.RestartedFor = &metav1.Time{Time: time.Unix(p.claims.IssuedAt, 0)}
	}
	if len(tok.Spec.RolloutRestartTargets) == 0 {
		meta.RemoveStatusCondition(&status.Conditions, datasettev1alpha1.ConditionRestartTargetsReady)
	}
	r.recordStatus(tok, status, in.want, p)
	readyChanged := setReadiness(&status.Conditions, tok.Generation, p.readiness)
	newGeneration := tok.Status.ObservedGeneration != tok.Generation
	if !equality.Semantic.DeepEqual(&tok.Status, status) {
		before := tok.ResourceVersion
		tok.Status = *status
		if err := r.Status().Update(ctx, tok); err != nil {
			// The retry tells what the status did not record, but for a mint: the Secret holds
			// it already, so the retry mints nothing, and tells it now or never.
			r.recordEvents(tok, p, false, false)
			return ctrl.Result{}, fmt.Errorf("updating the status of DatasetteToken %s/%s: %w", tok.Namespace, tok.Name, err)
		}
		r.statusWrites.record(tok, before)
	}
	// Told once the status says so: a status write that lost a race (409) is retried, and the
	// change of Ready is told then, once.
	r.recordEvents(tok, p, readyChanged, newGeneration)
	return scheduled(p.requeueAfter), nil
}

// recordStatus puts the token's dates in status when the Secret holds a token for the spec.
func (r *DatasetteTokenReconciler) recordStatus(tok *datasettev1alpha1.DatasetteToken, status *datasettev1alpha1.DatasetteTokenStatus,
	want desiredToken, p plan) {
	status.ObservedGeneration = tok.Generation
	if p.token != "" || p.claims.IssuedAt != 0 {
		status.SecretName = want.secretName
		status.IssuedAt = &metav1.Time{Time: time.Unix(p.claims.IssuedAt, 0)}
		status.ExpiresAt = timeOrNil(p.dates.expiresAt)
		status.RenewalTime = timeOrNil(p.dates.renewAt)
	}
	if p.token == "" {
		status.RenewalTime = nil // suspended, ended or failing: nothing is scheduled
	}
	status.LastRenewRequest = p.renewRequest
	if p.mint != noMint {
		status.LastMintReason = string(p.mint)
	}
	if p.revoke {
		status.IssuedAt, status.ExpiresAt, status.RenewalTime, status.RestartedFor = nil, nil, nil, nil
	}
}

// recordEvents records a mint, and a change of Ready to a failure, suspension or end;
// newGeneration says that this reconcile was the first of the token's generation.
func (r *DatasetteTokenReconciler) recordEvents(tok *datasettev1alpha1.DatasetteToken, p plan, readyChanged, newGeneration bool) {
	if newGeneration {
		if note := unknownActionsNote(p.release, restrictionsFromSpec(tok.Spec.Restrictions)); note != "" {
			r.Recorder.Eventf(tok, nil, corev1.EventTypeWarning, "UnknownAction", "Mint", "%s", truncate(note, maxNote))
		}
	}
	switch {
	case summarized(p.mint) && r.summaries.add(summaryTargetOf(tok), p.mint, tok.Namespace, time.Now()):
		// Told once for all the tokens of its signer or signing Secret (summary.go).
	case p.mint != noMint:
		note := truncate(fmt.Sprintf("%s (%s)", p.readiness.message, p.mint), maxNote)
		r.Recorder.Eventf(tok, nil, corev1.EventTypeNormal, mintEventReason(p.mint), "Mint", "%s", note)
	case readyChanged && p.readiness.severity != settled && !paused(p.readiness.reason):
		r.Recorder.Eventf(tok, nil, corev1.EventTypeWarning, p.readiness.reason, "Mint", "%s", truncate(p.readiness.message, maxNote))
	case readyChanged && p.readiness.reason != datasettev1alpha1.ReasonIssued:
		r.Recorder.Eventf(tok, nil, corev1.EventTypeNormal, p.readiness.reason, "Mint", "%s", truncate(p.readiness.message, maxNote))
	}
}

// writeSecret creates the output Secret, or patches what differs from the plan; it writes
// nothing when the Secret is as it should be.
func (r *DatasetteTokenReconciler) writeSecret(ctx context.Context, in *gathered, p plan) error {
	tok := in.token
	labels, annotations := secretMetadata(in.want, p)
	if in.secret == nil {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: in.want.secretName, Labels: labels, Annotations: annotations},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{tokenKey: []byte(p.token)},
		}
		if err := controllerutil.SetControllerReference(tok, secret, r.Scheme()); err != nil {
			return fmt.Errorf("owning Secret %s/%s: %w", secret.Namespace, secret.Name, err)
		}
		if err := r.Create(ctx, secret); err != nil {
			return fmt.Errorf("creating Secret %s/%s: %w", secret.Namespace, secret.Name, err)
		}
		r.secretWrites.record(secret, "")
		return nil
	}
	patch := secretPatch(in.secret, labels, annotations, p.token)
	if patch == nil {
		return nil
	}
	written := in.secret.DeepCopy()
	if err := r.Patch(ctx, written, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("updating Secret %s/%s: %w", in.secret.Namespace, in.secret.Name, err)
	}
	r.secretWrites.record(written, in.secret.ResourceVersion)
	return nil
}

// secretMetadata is the metadata the operator keeps on an output Secret: the secretTemplate's,
// its own on top, and the record of the template's keys.
func secretMetadata(want desiredToken, p plan) (labels, annotations map[string]string) {
	labels, annotations = maps.Clone(want.labels), maps.Clone(want.annotations)
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	record := templateKeys{Labels: slices.Sorted(maps.Keys(want.labels)), Annotations: slices.Sorted(maps.Keys(want.annotations))}
	if len(record.Labels)+len(record.Annotations) > 0 {
		raw, _ := json.Marshal(record) // strings cannot fail to marshal
		annotations[annotationTemplateKeys] = string(raw)
	}
	labels[managedByLabel] = managedByValue
	annotations[annotationActor] = want.claims.Actor
	annotations[annotationIssuedAt] = time.Unix(p.claims.IssuedAt, 0).UTC().Format(time.RFC3339)
	if !p.dates.expiresAt.IsZero() {
		annotations[annotationExpiresAt] = p.dates.expiresAt.UTC().Format(time.RFC3339)
	}
	if p.revocationRemove {
		annotations[annotationRevocation] = string(datasettev1alpha1.RevocationPolicyRemove)
	}
	return labels, annotations
}

// secretPatch is the JSON merge patch that brings a Secret (as the cache keeps it) to the given
// labels, annotations and token, or nil when it is already there. Keys the template put there
// before and no longer lists, and our own annotations no longer wanted, are removed; everyone
// else's keys are left alone. The resourceVersion makes the patch fail with a conflict when the
// Secret changed since it was read.
func secretPatch(current *corev1.Secret, labels, annotations map[string]string, token string) []byte {
	record := templateKeysOf(current.Annotations)
	labelPatch := mapPatch(current.Labels, labels, record.Labels)
	annotationPatch := mapPatch(current.Annotations, annotations, append(record.Annotations, annotationExpiresAt, annotationTemplateKeys, annotationRevocation))
	tokenChanged := string(current.Data[tokenKey]) != token
	if len(labelPatch) == 0 && len(annotationPatch) == 0 && !tokenChanged {
		return nil
	}
	metadata := map[string]any{"resourceVersion": current.ResourceVersion}
	if len(labelPatch) > 0 {
		metadata["labels"] = labelPatch
	}
	if len(annotationPatch) > 0 {
		metadata["annotations"] = annotationPatch
	}
	patch := map[string]any{"metadata": metadata}
	if tokenChanged {
		patch["data"] = map[string]string{tokenKey: base64.StdEncoding.EncodeToString([]byte(token))}
	}
	raw, _ := json.Marshal(patch) // maps of strings cannot fail to marshal
	return raw
}

// mapPatch is the merge patch of one map: the wanted entries that differ, and null for each key
// of removable that is present but no longer wanted.
func mapPatch(current, want map[string]string, removable []string) map[string]any {
	out := map[string]any{}
	for k, v := range want {
		if cur, ok := current[k]; !ok || cur != cachedValue(k, v) {
			out[k] = v
		}
	}
	for _, k := range removable {
		if _, present := current[k]; present {
			if _, wanted := want[k]; !wanted {
				out[k] = nil
			}
		}
	}
	return out
}

// isPermanent reports whether retrying a write cannot help: the API server refused its content
// or the operator may not write there.
func isPermanent(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err)
}

// isConflict reports whether a write lost a race with another writer.
func isConflict(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// scrubbed removes token, raw or base64-encoded as in a Secret's data, from an API message, should
// the server (or an admission webhook) have echoed it.
func scrubbed(message, token string) string {
	if token == "" {
		return message
	}
	message = strings.ReplaceAll(message, token, "[token]")
	return strings.ReplaceAll(message, base64.StdEncoding.EncodeToString([]byte(token)), "[token]")
}

// truncate cuts s to at most n bytes, ending with an ellipsis when cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return &metav1.Time{Time: t}
}
