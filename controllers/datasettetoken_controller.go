// Package controllers holds the DatasetteToken reconciler: it mints a Datasette API token for
// each DatasetteToken, writes it into a Secret, renews it before expiry, re-mints it when the
// signing key rotates or the Secret is tampered with, and restarts the workloads that read it.
// Signing keys come from a Secret of the token's namespace or from a DatasetteSigner or
// ClusterDatasetteSigner, under its policy.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
)

// errCacheBehind says that the cache does not yet show the operator's own last write.
var errCacheBehind = errors.New("the cache does not show the operator's last write yet")

// finalizerRetain holds a DatasetteToken whose deletionPolicy is Retain until its Secret has
// been released.
const finalizerRetain = "datasette.io/retain-secret"

// DatasetteTokenReconciler reconciles DatasetteToken objects (and, through SetupWithManager,
// the signer kinds' status).
type DatasetteTokenReconciler struct {
	// Client reads DatasetteTokens, signers, namespaces and the operator's own Secrets from the
	// manager's cache, and writes.
	client.Client
	// APIReader reads signing Secrets, and Secrets the cache does not hold, straight from the API
	// server, so that no unrelated Secret's data is ever cached.
	APIReader client.Reader
	// Recorder records events.
	Recorder events.EventRecorder
	// Clock tells the time; tests inject a fake one.
	Clock clock.PassiveClock
	// MaxConcurrentReconciles is how many DatasetteTokens are reconciled at once (default 1).
	MaxConcurrentReconciles int
	// Namespaces, when not empty, confines the Secret metadata watch to these namespaces (the
	// manager's --watch-namespaces).
	Namespaces []string
	// MinRenewalInterval is the renewal floor (the manager's --min-renewal-interval): no token is
	// renewed sooner than this after its last mint, and each rollout restart target is
	// restarted at most once per this interval. Zero means no floor.
	MinRenewalInterval time.Duration
	// DenySigningSecretRef refuses every spec.signingSecretRef (--allow-signing-secret-ref=false).
	DenySigningSecretRef bool
	// KeyCacheMaxSecretBytes and KeyCacheMaxBytes cap the signing keys held per Secret and in
	// all (zero: the defaults, defaultKeyCacheSecretBytes and defaultKeyCacheBytes).
	KeyCacheMaxSecretBytes, KeyCacheMaxBytes int64
	// AllowNamespacedProbes lets DatasetteSigners' spec.probe reach the network (the manager's
	// --allow-namespaced-probes); ClusterDatasetteSigners always may.
	AllowNamespacedProbes bool
	// Prober asks signers' instances about their key; nil means dsprobe.Probe. Tests inject one.
	Prober Prober
	// ProbeAddresses is where probes may connect (the manager's --probe-deny-cidrs,
	// --probe-allow-cidrs and the API server's addresses); nil: dsprobe's built-in refusals only.
	ProbeAddresses *dsprobe.AddressPolicy

	// secretMetadata is the metadata-only watch of the Secrets without the operator's label.
	secretMetadata cache.Cache
	// keys holds the signing keys in use.
	keys *keyCache
	// secretWrites and statusWrites remember the operator's own writes of Secrets and of
	// DatasetteTokens' status: their watch events wake nobody, and a reconcile that reads a cache
	// not yet showing them waits for it instead of losing a race.
	secretWrites, statusWrites writeLog
	// restarts restarts each rollout restart target at most once per renewal floor.
	restarts restartGate
	// summaries count the rotations and scheduled renewals not yet told (summary.go).
	summaries mintSummaries
}

// +kubebuilder:rbac:groups=datasette.io,resources=datasettetokens,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=datasette.io,resources=datasettetokens/status,verbs=get;update
// +kubebuilder:rbac:groups=datasette.io,resources=datasettetokens/finalizers,verbs=update
// +kubebuilder:rbac:groups=datasette.io,resources=datasettesigners;clusterdatasettesigners,verbs=get;list;watch
// +kubebuilder:rbac:groups=datasette.io,resources=datasettesigners/status;clusterdatasettesigners/status,verbs=get;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one DatasetteToken's Secret in line with its spec: gather what it needs from
// the caches, decide (a pure function), apply the decision, and write the status once, at the
// end, only when it changed.
func (r *DatasetteTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var tok datasettev1alpha1.DatasetteToken
	if err := r.Get(ctx, req.NamespacedName, &tok); err != nil {
		if apierrors.IsNotFound(err) {
			r.statusWrites.forget(req.NamespacedName)
			r.keys.release(keyUser("DatasetteToken", &metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}))
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.statusWrites.caughtUp(req.NamespacedName, tok.ResourceVersion, true) {
		return ctrl.Result{RequeueAfter: cacheLag}, nil
	}
	result, err := r.reconcile(ctx, &tok)
	if errors.Is(err, errCacheBehind) {
		return ctrl.Result{RequeueAfter: cacheLag}, nil
	}
	if isConflict(err) {
		// Another writer was first; its change brings this token back. Nothing to log.
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return result, err
}

func (r *DatasetteTokenReconciler) reconcile(ctx context.Context, tok *datasettev1alpha1.DatasetteToken) (ctrl.Result, error) {
	if !tok.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, tok)
	}
	if err := r.keepFinalizer(ctx, tok); err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now() // the one reading of the clock: gather, decide and apply work at it
	in, err := r.gather(ctx, tok, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	return r.apply(ctx, in, decide(in, now), now)
}

// keepFinalizer adds the retain finalizer to a token whose deletionPolicy is Retain, and
// removes it from one whose policy is Delete.
func (r *DatasetteTokenReconciler) keepFinalizer(ctx context.Context, tok *datasettev1alpha1.DatasetteToken) error {
	retain := tok.Spec.DeletionPolicy == datasettev1alpha1.DeletionPolicyRetain
	if retain == controllerutil.ContainsFinalizer(tok, finalizerRetain) {
		return nil
	}
	before := tok.DeepCopy()
	if retain {
		controllerutil.AddFinalizer(tok, finalizerRetain)
	} else {
		controllerutil.RemoveFinalizer(tok, finalizerRetain)
	}
	if err := r.Patch(ctx, tok, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("updating the finalizers of DatasetteToken %s/%s: %w", tok.Namespace, tok.Name, err)
	}
	return nil
}

// finalize releases a deleted DatasetteToken's Secret when its policy is Retain: the owner
// reference and the managed-by label go, so that neither the garbage collector nor the operator
// touches it again. Then the finalizer goes.
func (r *DatasetteTokenReconciler) finalize(ctx context.Context, tok *datasettev1alpha1.DatasetteToken) error {
	r.keys.release(keyUser("DatasetteToken", tok))
	if !controllerutil.ContainsFinalizer(tok, finalizerRetain) {
		return nil
	}
	// The Secret the status names and the one the spec names: they differ while a rename is
	// under way.
	want, _ := desiredFromSpec(tok)
	for _, name := range slices.Compact([]string{tok.Status.SecretName, want.secretName}) {
		if name == "" {
			continue
		}
		if err := r.release(ctx, tok, name); err != nil {
			return err
		}
	}
	before := tok.DeepCopy()
	controllerutil.RemoveFinalizer(tok, finalizerRetain)
	if err := r.Patch(ctx, tok, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing the finalizer of DatasetteToken %s/%s: %w", tok.Namespace, tok.Name, err)
	}
	return nil
}

// release removes a retained Secret's owner reference to tok and the managed-by label, when tok
// controls it.
func (r *DatasetteTokenReconciler) release(ctx context.Context, tok *datasettev1alpha1.DatasetteToken, name string) error {
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: name}, &secret)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Secret %s/%s to retain it: %w", tok.Namespace, name, err)
	}
	if !metav1.IsControlledBy(&secret, tok) {
		return nil
	}
	before := secret.DeepCopy()
	if err := controllerutil.RemoveOwnerReference(tok, &secret, r.Scheme()); err != nil {
		return fmt.Errorf("releasing Secret %s/%s: %w", tok.Namespace, name, err) // it is controlled by tok: cannot happen
	}
	delete(secret.Labels, managedByLabel)
	if err := r.Patch(ctx, &secret, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("releasing Secret %s/%s: %w", tok.Namespace, name, err)
	}
	r.Recorder.Eventf(tok, nil, corev1.EventTypeNormal, "Retained", "Delete", "Secret %q is kept (deletionPolicy Retain) and no longer managed", name)
	return nil
}

// logMappingError logs a failed index lookup of a watch's map function; the object is then not
// enqueued, which the next resync repairs.
func logMappingError(ctx context.Context, err error, what string, obj client.Object) {
	if err != nil && !errors.Is(err, context.Canceled) {
		logf.FromContext(ctx).Error(err, "listing "+what, "object", client.ObjectKeyFromObject(obj))
	}
}
