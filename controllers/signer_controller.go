package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// signerKind describes one of the two signer kinds to the code they share.
type signerKind struct {
	// name is the kind's name.
	name string
	// newObject returns an empty object of the kind.
	newObject func() client.Object
	// newList returns an empty list of the kind.
	newList func() client.ObjectList
	// secretOf returns the Secret and data key holding the signer's key.
	secretOf func(client.Object) (types.NamespacedName, string)
	// statusOf returns the signer's status.
	statusOf func(client.Object) *datasettev1alpha1.DatasetteSignerStatus
	// settingsOf returns the signer's settings.
	settingsOf func(client.Object) datasettev1alpha1.SignerSettings
}

// signerKinds are DatasetteSigner and ClusterDatasetteSigner.
var signerKinds = []signerKind{
	{
		name:      datasettev1alpha1.DatasetteSignerKind,
		newObject: func() client.Object { return &datasettev1alpha1.DatasetteSigner{} },
		newList:   func() client.ObjectList { return &datasettev1alpha1.DatasetteSignerList{} },
		secretOf: func(o client.Object) (types.NamespacedName, string) {
			s := o.(*datasettev1alpha1.DatasetteSigner)
			return types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.SecretRef.Name}, keyNameOf(s.Spec.SecretRef)
		},
		statusOf: func(o client.Object) *datasettev1alpha1.DatasetteSignerStatus {
			return &o.(*datasettev1alpha1.DatasetteSigner).Status
		},
		settingsOf: func(o client.Object) datasettev1alpha1.SignerSettings {
			return o.(*datasettev1alpha1.DatasetteSigner).Spec.SignerSettings
		},
	},
	{
		name:      datasettev1alpha1.ClusterDatasetteSignerKind,
		newObject: func() client.Object { return &datasettev1alpha1.ClusterDatasetteSigner{} },
		newList:   func() client.ObjectList { return &datasettev1alpha1.ClusterDatasetteSignerList{} },
		secretOf: func(o client.Object) (types.NamespacedName, string) {
			s := o.(*datasettev1alpha1.ClusterDatasetteSigner)
			ref := s.Spec.SecretRef
			return types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, keyNameOf(ref.SecretKeyRef)
		},
		statusOf: func(o client.Object) *datasettev1alpha1.DatasetteSignerStatus {
			return &o.(*datasettev1alpha1.ClusterDatasetteSigner).Status
		},
		settingsOf: func(o client.Object) datasettev1alpha1.SignerSettings {
			return o.(*datasettev1alpha1.ClusterDatasetteSigner).Spec.SignerSettings
		},
	},
}

// signersNaming lists the signers of a kind whose key is in secret.
func signersNaming(ctx context.Context, c client.Reader, kind signerKind, secret client.Object) []client.Object {
	list := kind.newList()
	key := types.NamespacedName{Namespace: secret.GetNamespace(), Name: secret.GetName()}
	if err := c.List(ctx, list, client.MatchingFields{indexSignerSecret: key.String()}, client.UnsafeDisableDeepCopy); err != nil {
		logMappingError(ctx, err, kind.name+"s", secret)
		return nil
	}
	items, _ := meta.ExtractList(list) // a typed list of client.Objects
	signers := make([]client.Object, len(items))
	for i, item := range items {
		signers[i] = item.(client.Object)
	}
	return signers
}

// signerReconciler reports whether a signer can sign: whether its Secret holds its key.
type signerReconciler struct {
	client.Client
	Recorder events.EventRecorder
	keys     *keyCache
	kind     signerKind
	probes   probeSettings
	// floor is the operator's renewal floor (--min-renewal-interval); restarts is the gate
	// its rollout restarts share with the tokens'.
	floor    time.Duration
	restarts *restartGate
}

// Reconcile writes a signer's Ready condition, once, when it changed.
func (r *signerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	signer := r.kind.newObject()
	if err := r.Get(ctx, req.NamespacedName, signer); err != nil {
		if apierrors.IsNotFound(err) {
			r.keys.release(r.kind.name + "/" + req.Namespace + "/" + req.Name)
			r.probes.runner.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	secret, keyName := r.kind.secretOf(signer)
	floor := renewalFloor(r.floor, r.kind.settingsOf(signer))
	key, err := r.keys.get(ctx, keyUser(r.kind.name, signer), keyUse{secret: secret, keyName: keyName, floor: floor,
		platform: r.kind.name == datasettev1alpha1.ClusterDatasetteSignerKind})
	if err != nil {
		return ctrl.Result{}, err
	}
	status := r.kind.statusOf(signer)
	next := status.DeepCopy()
	next.ObservedGeneration = signer.GetGeneration()
	readiness := signerReadiness(secret, keyName, key)
	if msg := policyInvalid(r.kind.settingsOf(signer).Policy); msg != "" {
		readiness = notReady(stalled, datasettev1alpha1.ReasonInvalidPolicy, msg)
	} else if !key.heldUntil.IsZero() && readiness.reason == datasettev1alpha1.ReasonSignerReady {
		readiness.message += fmt.Sprintf("; the key changed again within the renewal floor (%s) of its last change: "+
			"its newest value takes effect at %s", floor, key.heldUntil.UTC().Format(time.RFC3339))
	} else if !key.heldUntil.IsZero() && key.minter == nil && key.secretFound {
		// No key in effect, and a value waits for the floor: it comes by itself.
		readiness = notReady(waiting, readiness.reason, readiness.message+heldNote(floor, key.heldUntil))
	}
	if setReadiness(&next.Conditions, signer.GetGeneration(), readiness) {
		eventType := corev1.EventTypeNormal
		if readiness.severity != settled {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(signer, nil, eventType, readiness.reason, "Sign", "%s", truncate(readiness.message, maxNote))
	}
	restartWait, err := r.restartInstance(ctx, signer, key, floor, next)
	if err != nil {
		return ctrl.Result{}, err
	}
	var heldWait time.Duration // a newer key, held back by the renewal floor, takes effect then
	if !key.heldUntil.IsZero() {
		heldWait = max(key.heldUntil.Sub(r.probes.now()), time.Second)
	}
	result := ctrl.Result{RequeueAfter: soonest(r.probeInstance(ctx, signer, key, next), restartWait, heldWait)}
	if equality.Semantic.DeepEqual(status, next) {
		return result, nil
	}
	*status = *next
	if err := r.Status().Update(ctx, signer); err != nil {
		if isConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("updating the status of %s %s: %w", r.kind.name, req.NamespacedName, err)
	}
	return result, nil
}

// signerReadiness is a signer's Ready condition given what the key cache found.
func signerReadiness(secret types.NamespacedName, keyName string, key keyLookup) readiness {
	switch {
	case key.oversized:
		return notReady(stalled, datasettev1alpha1.ReasonKeyMissing, fmt.Sprintf("the key %q of Secret %s is longer than %d bytes", keyName, secret, maxKeySize))
	case key.overBudget:
		return notReady(stalled, datasettev1alpha1.ReasonKeyMissing, overBudgetMessage(keyName, fmt.Sprintf("%q", secret.Name)))
	case key.unreadable:
		return notReady(stalled, datasettev1alpha1.ReasonSecretNotFound, fmt.Sprintf("the operator may not read Secret %s (%s)", secret, unreadableWhy))
	case !key.secretFound:
		return notReady(waiting, datasettev1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %s not found", secret))
	case key.minter == nil:
		return notReady(stalled, datasettev1alpha1.ReasonKeyMissing, fmt.Sprintf("Secret %s has no key %q, or it is empty", secret, keyName))
	}
	return ready(datasettev1alpha1.ReasonSignerReady, fmt.Sprintf("Secret %s holds the signing key", secret))
}

// signersNamingSecret maps a Secret to the signers of this kind whose key it holds.
func (r *signerReconciler) signersNamingSecret(ctx context.Context, secret client.Object) []ctrl.Request {
	signers := signersNaming(ctx, r.Client, r.kind, secret)
	requests := make([]ctrl.Request, len(signers))
	for i, s := range signers {
		requests[i] = ctrl.Request{NamespacedName: client.ObjectKeyFromObject(s)}
	}
	return requests
}

// heldNote says when a key value that the renewal floor holds back, after the key went, takes effect.
func heldNote(floor time.Duration, at time.Time) string {
	return fmt.Sprintf("; a new value, written within the renewal floor (%s) of the key's last change, takes effect at %s",
		floor, at.UTC().Format(time.RFC3339))
}

// soonest is the shortest of the positive durations, or zero when none is.
func soonest(ds ...time.Duration) time.Duration {
	var out time.Duration
	for _, d := range ds {
		if d > 0 && (out == 0 || d < out) {
			out = d
		}
	}
	return out
}
