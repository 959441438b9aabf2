package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// Field indexes, so that an event on a Secret, a signer or a namespace finds the objects that
// depend on it without scanning.
const (
	// indexSigningSecret: a DatasetteToken's spec.signingSecretRef.name.
	indexSigningSecret = "spec.signingSecretRef.name"
	// indexOutputSecret: the name of a DatasetteToken's output Secret.
	indexOutputSecret = "outputSecretName"
	// indexSigner: a DatasetteToken's signer, as "Kind/name".
	indexSigner = "spec.signerRef"
	// indexSignerSecret: a signer's Secret, as "namespace/name".
	indexSignerSecret = "spec.secretRef"
)

// SetupWithManager registers the DatasetteToken controller and the two signer controllers.
// Besides DatasetteTokens and the Secrets carrying the operator's label, they watch every other
// Secret's metadata (never its data) in a cache of their own that keeps only names and resource
// versions, so that a signing key's rotation, or a conflicting Secret's removal, wakes the objects
// that name it within seconds; signers; and namespaces' labels, for ClusterDatasetteSigners'
// namespaceSelectors. Each Secret is in exactly one of the two Secret watches, so each write of
// one costs one watch event.
func (r *DatasetteTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.Recorder = unversionedRecorder{r.Recorder, mgr.GetScheme()}
	if err := indexFields(mgr); err != nil {
		return err
	}
	metadataOptions := cache.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), DefaultTransform: keepIdentityOnly,
		DefaultLabelSelector: withoutManagedByLabel, HTTPClient: mgr.GetHTTPClient()}
	if len(r.Namespaces) > 0 {
		metadataOptions.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range r.Namespaces {
			metadataOptions.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	secretMetadata, err := cache.New(mgr.GetConfig(), metadataOptions)
	if err != nil {
		return fmt.Errorf("creating the Secret metadata cache: %w", err)
	}
	if err := mgr.Add(secretMetadata); err != nil {
		return fmt.Errorf("adding the Secret metadata cache: %w", err)
	}
	r.secretMetadata = secretMetadata
	r.keys = newKeyCache(secretVersions{unlabelled: secretMetadata, labelled: r.Client}, r.APIReader, r.Namespaces, r.KeyCacheMaxSecretBytes, r.KeyCacheMaxBytes)
	r.keys.now = r.Clock.Now
	if err := mgr.Add(summaryEmitter{r: r}); err != nil {
		return fmt.Errorf("adding the mint summary emitter: %w", err)
	}
	// The metrics describing tokens and signers are read from the manager's cache at each
	// scrape, while it leads.
	if err := mgr.Add(&metricsSource{reader: mgr.GetClient()}); err != nil {
		return fmt.Errorf("adding the metrics source: %w", err)
	}
	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))

	err = ctrl.NewControllerManagedBy(mgr).
		For(&datasettev1alpha1.DatasetteToken{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, renewRequested{}, deletionStarted{}))).
		Owns(&corev1.Secret{}, builder.WithPredicates(r.secretWrites.notOwnWrite())).
		Watches(&corev1.Secret{}, lowPriorityFanOut(r.tokensNamingSecret), builder.WithPredicates(r.secretWrites.notOwnWrite())).
		WatchesRawSource(source.Kind(secretMetadata, client.Object(secretMeta), lowPriorityFanOut(r.tokensNamingSecret),
			r.secretWrites.notOwnWriteKeepingLog())).
		Watches(&datasettev1alpha1.DatasetteSigner{}, lowPriorityFanOut(r.tokensOfSigner),
			builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, instanceChanged{}))).
		Watches(&datasettev1alpha1.ClusterDatasetteSigner{}, lowPriorityFanOut(r.tokensOfSigner),
			builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, instanceChanged{}))).
		WatchesMetadata(&corev1.Namespace{}, lowPriorityFanOut(r.tokensOfNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Named("datasettetoken").
		Complete(r)
	if err != nil {
		return err
	}
	for _, kind := range signerKinds {
		s := &signerReconciler{Client: r.Client, Recorder: r.Recorder, keys: r.keys, kind: kind, probes: r.probeSettings(),
			floor: r.MinRenewalInterval, restarts: &r.restarts}
		s.probes.runner = newProbeRunner(kind.newObject)
		err := ctrl.NewControllerManagedBy(mgr).
			For(kind.newObject(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
			// A finished probe wakes its signer.
			WatchesRawSource(source.Channel(s.probes.runner.wake, &handler.EnqueueRequestForObject{})).
			Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(s.signersNamingSecret)).
			WatchesRawSource(source.Kind(secretMetadata, client.Object(secretMeta), handler.EnqueueRequestsFromMapFunc(s.signersNamingSecret))).
			// As many workers as the token controller (probes run off them, in the runner).
			WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
			Named(kind.name).
			Complete(s)
		if err != nil {
			return err
		}
	}
	return nil
}

// indexFields registers the field indexes.
func indexFields(mgr ctrl.Manager) error {
	indexer, ctx := mgr.GetFieldIndexer(), context.Background()
	tokenIndexes := map[string]func(*datasettev1alpha1.DatasetteToken) string{
		indexSigningSecret: func(t *datasettev1alpha1.DatasetteToken) string {
			if t.Spec.SigningSecretRef == nil {
				return ""
			}
			return t.Spec.SigningSecretRef.Name
		},
		indexOutputSecret: func(t *datasettev1alpha1.DatasetteToken) string {
			if t.Spec.SecretName != "" {
				return t.Spec.SecretName
			}
			return t.Name
		},
		indexSigner: func(t *datasettev1alpha1.DatasetteToken) string {
			if t.Spec.SignerRef == nil {
				return ""
			}
			return t.Spec.SignerRef.Kind + "/" + t.Spec.SignerRef.Name
		},
	}
	for name, value := range tokenIndexes {
		err := indexer.IndexField(ctx, &datasettev1alpha1.DatasetteToken{}, name, func(o client.Object) []string {
			if v := value(o.(*datasettev1alpha1.DatasetteToken)); v != "" {
				return []string{v}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("indexing DatasetteTokens by %s: %w", name, err)
		}
	}
	for _, kind := range signerKinds {
		err := indexer.IndexField(ctx, kind.newObject(), indexSignerSecret, func(o client.Object) []string {
			secret, _ := kind.secretOf(o)
			return []string{secret.String()}
		})
		if err != nil {
			return fmt.Errorf("indexing %ss by Secret: %w", kind.name, err)
		}
	}
	return nil
}

// tokensNamingSecret maps a Secret to the DatasetteTokens that sign with it (directly or through
// a signer) or write to it.
func (r *DatasetteTokenReconciler) tokensNamingSecret(ctx context.Context, secret client.Object) []ctrl.Request {
	ns := client.InNamespace(secret.GetNamespace())
	requests := r.tokenRequests(ctx, secret, ns, client.MatchingFields{indexSigningSecret: secret.GetName()})
	requests = append(requests, r.tokenRequests(ctx, secret, ns, client.MatchingFields{indexOutputSecret: secret.GetName()})...)
	for _, kind := range signerKinds {
		for _, signer := range signersNaming(ctx, r.Client, kind, secret) {
			requests = append(requests, r.tokensOfSigner(ctx, signer)...)
		}
	}
	return requests
}

// tokensOfSigner maps a signer to the DatasetteTokens that name it.
func (r *DatasetteTokenReconciler) tokensOfSigner(ctx context.Context, signer client.Object) []ctrl.Request {
	requests := r.tokensNamingSignerSecret(ctx, signer)
	if signer.GetNamespace() == "" {
		return append(requests, r.tokenRequests(ctx, signer,
			client.MatchingFields{indexSigner: datasettev1alpha1.ClusterDatasetteSignerKind + "/" + signer.GetName()})...)
	}
	return append(requests, r.tokenRequests(ctx, signer, client.InNamespace(signer.GetNamespace()),
		client.MatchingFields{indexSigner: datasettev1alpha1.DatasetteSignerKind + "/" + signer.GetName()})...)
}

// tokensOfNamespace maps a namespace whose labels changed to its DatasetteTokens that use a
// ClusterDatasetteSigner, whose namespaceSelector may now say otherwise.
func (r *DatasetteTokenReconciler) tokensOfNamespace(ctx context.Context, ns client.Object) []ctrl.Request {
	var signers datasettev1alpha1.ClusterDatasetteSignerList
	if err := r.List(ctx, &signers, client.UnsafeDisableDeepCopy); err != nil {
		logMappingError(ctx, err, "ClusterDatasetteSigners", ns)
		return nil
	}
	var requests []ctrl.Request
	for i := range signers.Items {
		requests = append(requests, r.tokenRequests(ctx, ns, client.InNamespace(ns.GetName()),
			client.MatchingFields{indexSigner: datasettev1alpha1.ClusterDatasetteSignerKind + "/" + signers.Items[i].Name})...)
	}
	return requests
}

// tokenRequests lists DatasetteTokens from the cache, without copying them, as requests.
func (r *DatasetteTokenReconciler) tokenRequests(ctx context.Context, cause client.Object, opts ...client.ListOption) []ctrl.Request {
	var toks datasettev1alpha1.DatasetteTokenList
	if err := r.List(ctx, &toks, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		logMappingError(ctx, err, "DatasetteTokens", cause)
		return nil
	}
	requests := make([]ctrl.Request, 0, len(toks.Items))
	for i := range toks.Items {
		requests = append(requests, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&toks.Items[i])})
	}
	return requests
}

// renewRequested lets through an update that changes the renew-requested-at annotation.
type renewRequested struct{ predicate.Funcs }

// Update reports whether the annotation changed.
func (renewRequested) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetAnnotations()[datasettev1alpha1.AnnotationRenewRequestedAt] != e.ObjectNew.GetAnnotations()[datasettev1alpha1.AnnotationRenewRequestedAt]
}

// deletionStarted lets through the update that marks an object for deletion.
type deletionStarted struct{ predicate.Funcs }

// Update reports whether the object has just been marked for deletion.
func (deletionStarted) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}
