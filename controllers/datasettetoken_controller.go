// Package controllers holds the DatasetteToken reconciler: it mints a Datasette API token for
// each DatasetteToken, writes it into a Secret, renews it before expiry and re-mints it when the
// signing key rotates or the Secret is tampered with.
package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Field indexes over DatasetteTokens, so a Secret event finds the tokens that name it.
const (
	indexSigningSecret = "spec.signingSecretRef.name"
	indexOutputSecret  = "outputSecretName"
)

// DatasetteTokenReconciler reconciles DatasetteToken objects.
type DatasetteTokenReconciler struct {
	// Client reads DatasetteTokens and the operator's own Secrets from the manager's cache, and writes.
	client.Client
	// APIReader reads signing Secrets, and Secrets the cache does not hold, straight from the API
	// server, so that no unrelated Secret's data is ever cached.
	APIReader client.Reader
	// Recorder records events on DatasetteTokens.
	Recorder events.EventRecorder
	// Clock tells the time; tests inject a fake one.
	Clock clock.PassiveClock
}

// +kubebuilder:rbac:groups=datasette.io,resources=datasettetokens,verbs=get;list;watch
// +kubebuilder:rbac:groups=datasette.io,resources=datasettetokens/status,verbs=get;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one DatasetteToken's Secret in line with its spec and writes its status once,
// at the end, and only when it changed.
func (r *DatasetteTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var tok datasettev1alpha1.DatasetteToken
	if err := r.Get(ctx, req.NamespacedName, &tok); err != nil {
		if apierrors.IsNotFound(err) {
			forgetTokenMetrics(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !tok.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	before := tok.Status.DeepCopy()
	result, err := r.reconcileToken(ctx, &tok)
	if err != nil {
		return ctrl.Result{}, err
	}
	tok.Status.ObservedGeneration = tok.Generation
	if !equality.Semantic.DeepEqual(before, &tok.Status) {
		if err := r.Status().Update(ctx, &tok); err != nil {
			return ctrl.Result{}, fmt.Errorf("updating status of DatasetteToken %s: %w", req.NamespacedName, err)
		}
	}
	recordTokenMetrics(&tok)
	return result, nil
}

// reconcileToken does the work of Reconcile, recording the outcome in tok.Status. It returns an
// error only for failures worth retrying (the API server's); everything a person must fix is a
// condition instead.
func (r *DatasetteTokenReconciler) reconcileToken(ctx context.Context, tok *datasettev1alpha1.DatasetteToken) (ctrl.Result, error) {
	want, err := desiredFromSpec(tok)
	if err != nil {
		r.fail(tok, ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, nil
	}
	if tok.Status.ObservedGeneration != tok.Generation {
		if unknown := dstoken.UnknownActions(want.claims.Restrictions); len(unknown) > 0 {
			r.Recorder.Eventf(tok, nil, corev1.EventTypeWarning, "UnknownAction", "Mint",
				"Actions %s are not Datasette built-ins: written unabbreviated, as datasette create-token does (fine for plugin actions)",
				strings.Join(unknown, ", "))
		}
	}

	key, err := r.signingKey(ctx, tok, want)
	if key == nil || err != nil {
		return ctrl.Result{}, err
	}

	secret, err := r.outputSecret(ctx, tok.Namespace, want.secretName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if secretOwnership(secret, tok) == secretForeign {
		r.fail(tok, ReasonSecretConflict, fmt.Sprintf(
			"Secret %q exists and is not owned by this DatasetteToken; choose another spec.secretName or delete that Secret", want.secretName))
		return ctrl.Result{}, nil
	}

	now := r.Clock.Now()
	seen := observedToken{secretExists: secret != nil, issuedBefore: tok.Status.IssuedAt != nil}
	if secret != nil {
		seen.token = secret.Data[tokenKey]
	}
	reason, issuedAt := mintDecision(seen, key, want, now)
	var minted string
	if reason != noMint {
		claims := want.claims
		claims.IssuedAt = now.Unix()
		minted = dstoken.NewMinter(key).Mint(claims)
		issuedAt = time.Unix(claims.IssuedAt, 0)
	}
	if err := r.writeSecret(ctx, tok, secret, want, minted, issuedAt); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.deleteStaleSecrets(ctx, tok, want.secretName); err != nil {
		return ctrl.Result{}, err
	}

	tok.Status.SecretName = want.secretName
	tok.Status.IssuedAt = &metav1.Time{Time: issuedAt}
	tok.Status.ExpiresAt, tok.Status.RenewalTime = nil, nil
	result := ctrl.Result{}
	if renewAt, ok := renewalTime(issuedAt, want); ok {
		tok.Status.ExpiresAt = &metav1.Time{Time: issuedAt.Add(want.lifetime)}
		tok.Status.RenewalTime = &metav1.Time{Time: renewAt}
		result.RequeueAfter = max(renewAt.Sub(now), time.Second)
	}
	message := fmt.Sprintf("Secret %q holds a token for actor %q", want.secretName, want.claims.Actor)
	setReady(tok, metav1.ConditionTrue, ReasonIssued, message)
	if reason != noMint {
		tokenMints.WithLabelValues(string(reason)).Inc()
		r.Recorder.Eventf(tok, nil, corev1.EventTypeNormal, mintEventReason(reason), "Mint", "%s (%s)", message, reason)
	}
	return result, nil
}

// mintEventReason names the event for a mint: Issued, Renewed or Reminted.
func mintEventReason(reason mintReason) string {
	switch reason {
	case mintRenewal:
		return "Renewed"
	case mintRotation, mintRepair:
		return "Reminted"
	default:
		return "Issued"
	}
}

// fail records a failure a person must fix, with a warning event when it is new.
func (r *DatasetteTokenReconciler) fail(tok *datasettev1alpha1.DatasetteToken, reason, message string) {
	if setReady(tok, metav1.ConditionFalse, reason, message) {
		r.Recorder.Eventf(tok, nil, corev1.EventTypeWarning, reason, "Mint", message)
	}
}

// signingKey reads the signing key straight from the API server. A nil key with a nil error means
// there is none to sign with, and the failure is recorded in the status.
func (r *DatasetteTokenReconciler) signingKey(ctx context.Context, tok *datasettev1alpha1.DatasetteToken, want desiredToken) ([]byte, error) {
	name := tok.Spec.SigningSecretRef.Name
	var secret corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			r.fail(tok, ReasonSigningSecretNotFound, fmt.Sprintf("signing Secret %q not found in namespace %q", name, tok.Namespace))
			return nil, nil
		}
		return nil, fmt.Errorf("reading signing Secret %s/%s: %w", tok.Namespace, name, err)
	}
	key := secret.Data[want.signingKey]
	if len(key) == 0 {
		r.fail(tok, ReasonSigningKeyMissing, fmt.Sprintf("signing Secret %q has no key %q, or it is empty", name, want.signingKey))
		return nil, nil
	}
	return key, nil
}

// outputSecret returns the Secret the token goes to, or nil when there is none. The cache holds
// only the operator's own Secrets, so a miss is checked with the API server: it may be someone
// else's Secret, or ours with its label removed.
func (r *DatasetteTokenReconciler) outputSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	var secret corev1.Secret
	err := r.Get(ctx, key, &secret)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, &secret)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	return &secret, nil
}

// writeSecret creates or updates the output Secret, and writes nothing when it is as it should be.
// minted is the new token, or "" to keep the current one.
func (r *DatasetteTokenReconciler) writeSecret(ctx context.Context, tok *datasettev1alpha1.DatasetteToken, existing *corev1.Secret,
	want desiredToken, minted string, issuedAt time.Time) error {
	secret := existing.DeepCopy()
	if secret == nil {
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: want.secretName},
			Type:       corev1.SecretTypeOpaque,
		}
	}
	if minted != "" {
		if secret.Data == nil {
			secret.Data = map[string][]byte{}
		}
		secret.Data[tokenKey] = []byte(minted)
	}
	wantLabels, wantAnnotations := secretMetadata(tok, want, issuedAt)
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	maps.Copy(secret.Labels, wantLabels)
	maps.Copy(secret.Annotations, wantAnnotations)
	if want.lifetime == 0 {
		delete(secret.Annotations, annotationExpiresAt)
	}
	if err := controllerutil.SetControllerReference(tok, secret, r.Scheme()); err != nil {
		return fmt.Errorf("owning Secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}

	if existing == nil {
		if err := r.Create(ctx, secret); err != nil {
			return fmt.Errorf("creating Secret %s/%s: %w", secret.Namespace, secret.Name, err)
		}
		return nil
	}
	if equality.Semantic.DeepEqual(existing, secret) {
		return nil
	}
	if err := r.Update(ctx, secret); err != nil {
		return fmt.Errorf("updating Secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	return nil
}

// deleteStaleSecrets deletes the Secrets this DatasetteToken wrote under an earlier secretName.
func (r *DatasetteTokenReconciler) deleteStaleSecrets(ctx context.Context, tok *datasettev1alpha1.DatasetteToken, keep string) error {
	var owned corev1.SecretList
	if err := r.List(ctx, &owned, client.InNamespace(tok.Namespace), client.MatchingLabels{managedByLabel: managedByValue}); err != nil {
		return fmt.Errorf("listing Secrets in %s: %w", tok.Namespace, err)
	}
	for i := range owned.Items {
		s := &owned.Items[i]
		if s.Name == keep || secretOwnership(s, tok) != secretOwned {
			continue
		}
		if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting Secret %s/%s, no longer named by spec.secretName: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

// CacheOptions returns the manager cache settings the controller relies on: Secrets are cached
// only when they carry the operator's label, and managed fields are never kept.
func CacheOptions() cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{managedByLabel: managedByValue})},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// SetupWithManager registers the controller. Besides DatasetteTokens and the Secrets they own, it
// watches every Secret's metadata (never its data), in a cache of its own that keeps only names and
// resource versions, so that a signing key's rotation, or a conflicting Secret's removal, wakes the
// DatasetteTokens that name it within seconds.
func (r *DatasetteTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	ctx := context.Background()
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &datasettev1alpha1.DatasetteToken{}, indexSigningSecret, func(o client.Object) []string {
		return []string{o.(*datasettev1alpha1.DatasetteToken).Spec.SigningSecretRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing DatasetteTokens by signing Secret: %w", err)
	}
	if err := indexer.IndexField(ctx, &datasettev1alpha1.DatasetteToken{}, indexOutputSecret, func(o client.Object) []string {
		tok := o.(*datasettev1alpha1.DatasetteToken)
		if tok.Spec.SecretName != "" {
			return []string{tok.Spec.SecretName}
		}
		return []string{tok.Name}
	}); err != nil {
		return fmt.Errorf("indexing DatasetteTokens by output Secret: %w", err)
	}

	secretMetadata, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:           mgr.GetScheme(),
		Mapper:           mgr.GetRESTMapper(),
		DefaultTransform: keepIdentityOnly,
	})
	if err != nil {
		return fmt.Errorf("creating the Secret metadata cache: %w", err)
	}
	if err := mgr.Add(secretMetadata); err != nil {
		return fmt.Errorf("adding the Secret metadata cache: %w", err)
	}
	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))

	return ctrl.NewControllerManagedBy(mgr).
		For(&datasettev1alpha1.DatasetteToken{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.Secret{}).
		WatchesRawSource(source.Kind(secretMetadata, client.Object(secretMeta),
			handler.EnqueueRequestsFromMapFunc(r.tokensNamingSecret))).
		Named("datasettetoken").
		Complete(r)
}

// tokensNamingSecret maps a Secret to the DatasetteTokens that sign with it or write to it.
func (r *DatasetteTokenReconciler) tokensNamingSecret(ctx context.Context, secret client.Object) []ctrl.Request {
	var requests []ctrl.Request
	for _, index := range []string{indexSigningSecret, indexOutputSecret} {
		var toks datasettev1alpha1.DatasetteTokenList
		if err := r.List(ctx, &toks, client.InNamespace(secret.GetNamespace()), client.MatchingFields{index: secret.GetName()}); err != nil {
			logf.FromContext(ctx).Error(err, "listing DatasetteTokens that name a Secret", "secret", client.ObjectKeyFromObject(secret))
			continue
		}
		for _, tok := range toks.Items {
			requests = append(requests, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&tok)})
		}
	}
	return requests
}

// keepIdentityOnly trims a cached Secret's metadata to what the watch needs: which Secret it is
// and which version. Labels and annotations (which may be large) are dropped.
func keepIdentityOnly(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.ObjectMeta = metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp,
		}
	}
	return obj, nil
}
