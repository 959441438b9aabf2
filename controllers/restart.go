package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// restartResult is what restarting rollout restart targets did: the RestartTargetsReady
// condition (without its observedGeneration) and, when any target was restarted, the message
// naming them.
type restartResult struct {
	condition metav1.Condition
	restarted string
}

// restartWorkloads rolls every target in namespace, as `kubectl rollout restart` does, by
// setting the datasette.io/restartedAt pod-template annotation to stamp; for says what for
// ("for the token issued at …"). A name the client would refuse, a missing target, or one the
// API server refuses to patch is reported in the condition, never an error retried in a loop;
// other API errors are returned for a retry. Tokens and signers restart through it alike.
func restartWorkloads(ctx context.Context, c client.Client, namespace string, targets []datasettev1alpha1.RolloutRestartTarget,
	stamp time.Time, what string) (restartResult, error) {
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, annotationRestartedAt, stamp.UTC().Format(time.RFC3339))
	var restarted, missing, refused []string
	for _, target := range targets {
		name := target.Kind + "/" + target.Name
		if why := rejectedTargetName(target.Name); why != "" {
			refused = append(refused, fmt.Sprintf("%s/%q (%s)", target.Kind, target.Name, why))
			continue
		}
		obj := workload(target.Kind)
		obj.SetNamespace(namespace)
		obj.SetName(target.Name)
		err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, name)
		case isPermanentTargetError(err):
			refused = append(refused, name+" ("+string(apierrors.ReasonForError(err))+")")
		case err != nil:
			return restartResult{}, fmt.Errorf("restarting %s in %s: %w", name, namespace, err)
		default:
			restarted = append(restarted, name)
		}
	}
	var res restartResult
	if len(restarted) > 0 {
		res.restarted = truncate(fmt.Sprintf("restarted %s %s", strings.Join(restarted, ", "), what), maxNote)
	}
	res.condition = metav1.Condition{Type: datasettev1alpha1.ConditionRestartTargetsReady, Status: metav1.ConditionTrue, Reason: datasettev1alpha1.ReasonRestarted,
		Message: res.restarted}
	var problems []string
	if len(refused) > 0 {
		res.condition.Reason = datasettev1alpha1.ReasonTargetRejected
		problems = append(problems, "the API server refused to restart "+strings.Join(refused, ", "))
	}
	if len(missing) > 0 {
		res.condition.Reason = datasettev1alpha1.ReasonTargetNotFound
		problems = append([]string{"not found in " + namespace + ": " + strings.Join(missing, ", ")}, problems...)
	}
	if len(problems) > 0 {
		res.condition.Status = metav1.ConditionFalse
		res.condition.Message = truncate(strings.Join(problems, "; "), maxNote)
	}
	return res, nil
}

// restartTargets rolls every rollout restart target of tok to the token issued at issuedAt, and
// records the outcome as the RestartTargetsReady condition, with events.
func (r *DatasetteTokenReconciler) restartTargets(ctx context.Context, tok *datasettev1alpha1.DatasetteToken, issuedAt time.Time,
	conditions *[]metav1.Condition) error {
	res, err := restartWorkloads(ctx, r.Client, tok.Namespace, tok.Spec.RolloutRestartTargets, issuedAt,
		"for the token issued at "+issuedAt.UTC().Format(time.RFC3339))
	if err != nil {
		return err
	}
	c := res.condition
	c.ObservedGeneration = tok.Generation
	if res.restarted != "" {
		r.Recorder.Eventf(tok, nil, corev1.EventTypeNormal, "RolloutRestarted", "Restart", "%s", res.restarted)
	}
	if c.Status != metav1.ConditionTrue {
		c.Message = truncate(c.Message+" (the token was still issued)", maxNote)
		r.Recorder.Eventf(tok, nil, corev1.EventTypeWarning, c.Reason, "Restart", "%s", c.Message)
	}
	meta.SetStatusCondition(conditions, c)
	return nil
}

// workload returns an empty object of a rollout restart target's kind.
func workload(kind string) client.Object {
	switch kind {
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "DaemonSet":
		return &appsv1.DaemonSet{}
	default:
		return &appsv1.Deployment{}
	}
}

// rejectedTargetName says why the client would refuse a rollout restart target's name (a
// CRD of an older version let it through), or returns "".
func rejectedTargetName(name string) string {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "invalid name: " + strings.Join(errs, "; ")
	}
	return ""
}

// isPermanentTargetError reports whether retrying a rollout restart cannot help.
func isPermanentTargetError(err error) bool {
	return isPermanent(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsNotAcceptable(err) ||
		apierrors.IsUnsupportedMediaType(err)
}
