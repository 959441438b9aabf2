package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// What the operator keeps in memory. Every Secret carrying its managed-by label is cached, but
// trimmed to what the controller reads; every other Secret is seen through a metadata watch
// trimmed to its name and version. No Secret is in both.

const (
	// maxTemplateRecord bounds the template-keys annotation the cache reads (64 label and 64
	// annotation keys of at most 317 characters fit well within it).
	maxTemplateRecord = 48 << 10
	// maxTemplateKeys is how many label and annotation keys of the record are read, each: the
	// schema's maxProperties.
	maxTemplateKeys = 64
	// maxCachedValue is the longest label or annotation value the cache keeps as it is; a longer
	// one is kept as its digest, which is all the comparison with the spec needs.
	maxCachedValue = 64
	// digestPrefix marks a value kept as its digest.
	digestPrefix = "\x00sha256:"
)

// withoutManagedByLabel selects the Secrets the metadata watch holds: every Secret the manager's
// cache does not.
var withoutManagedByLabel = func() labels.Selector {
	notOurs, err := labels.NewRequirement(managedByLabel, selection.NotEquals, []string{managedByValue})
	if err != nil {
		panic(err) // constant arguments
	}
	return labels.NewSelector().Add(*notOurs)
}()

// secretVersions reads any Secret's identity and resourceVersion, as a PartialObjectMetadata,
// from whichever of the two caches holds it.
type secretVersions struct {
	unlabelled client.Reader // the metadata cache: Secrets without the operator's label
	labelled   client.Reader // the manager's cache: Secrets with it
}

// Get reads the metadata of Secret key into obj, a *metav1.PartialObjectMetadata.
func (v secretVersions) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	err := v.unlabelled.Get(ctx, key, obj)
	if !apierrors.IsNotFound(err) {
		return err
	}
	var secret corev1.Secret
	if err := v.labelled.Get(ctx, key, &secret); err != nil {
		return err
	}
	meta, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return fmt.Errorf("reading Secret %s: want a *PartialObjectMetadata, not %T", key, obj)
	}
	meta.ObjectMeta = secret.ObjectMeta
	return nil
}

// CacheOptions returns the manager cache settings the controller relies on: Secrets are cached
// only when they carry the operator's label, trimmed by trimOwnedSecret, and managed fields are
// never kept.
func CacheOptions() cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Label:     labels.SelectorFromSet(labels.Set{managedByLabel: managedByValue}),
				Transform: trimOwnedSecret,
			},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// trimOwnedSecret keeps of a labelled Secret only what the controller reads: its identity, the
// labels and annotations the operator writes, its controller reference and its token (when no
// larger than a token can be). Anyone can label a Secret, so a Secret without a DatasetteToken
// controller reference keeps its identity only: a few hundred bytes.
func trimOwnedSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	trimmed := &corev1.Secret{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
			DeletionTimestamp: s.DeletionTimestamp,
		},
		Type: s.Type,
	}
	owner := metav1.GetControllerOfNoCopy(s)
	if owner == nil || owner.Kind != "DatasetteToken" || owner.APIVersion != datasettev1alpha1.GroupVersion.String() {
		return trimmed, nil
	}
	trimmed.OwnerReferences = []metav1.OwnerReference{*owner}
	record := templateKeysOf(s.Annotations)
	trimmed.Labels = keepKeys(s.Labels, func(k string) bool { return k == managedByLabel || slices.Contains(record.Labels, k) })
	trimmed.Annotations = keepKeys(s.Annotations, func(k string) bool {
		return ownAnnotation(k) || slices.Contains(record.Annotations, k)
	})
	for k, v := range trimmed.Annotations {
		trimmed.Annotations[k] = cachedValue(k, v)
	}
	if token := s.Data[tokenKey]; len(token) <= dstoken.MaxTokenSize {
		trimmed.Data = map[string][]byte{tokenKey: token}
	}
	return trimmed, nil
}

// ownAnnotation reports whether the operator writes annotation key on every output Secret.
func ownAnnotation(key string) bool {
	switch key {
	case annotationActor, annotationIssuedAt, annotationExpiresAt, annotationTemplateKeys, annotationRevocation:
		return true
	}
	return false
}

// templateKeys is the record, on an output Secret, of the keys its secretTemplate put there.
type templateKeys struct {
	Labels      []string `json:"labels,omitempty"`
	Annotations []string `json:"annotations,omitempty"`
}

// templateKeysOf reads the record; a missing, oversized or malformed one reads as empty.
func templateKeysOf(annotations map[string]string) templateKeys {
	var record templateKeys
	raw := annotations[annotationTemplateKeys]
	if raw == "" || len(raw) > maxTemplateRecord || json.Unmarshal([]byte(raw), &record) != nil {
		return templateKeys{}
	}
	record.Labels = record.Labels[:min(len(record.Labels), maxTemplateKeys)]
	record.Annotations = record.Annotations[:min(len(record.Annotations), maxTemplateKeys)]
	return record
}

// cachedValue is how the cache keeps the value of label or annotation key: as it is when short,
// else as its digest; the template-keys record always as it is, since removals are read from it.
func cachedValue(key, v string) string {
	if len(v) <= maxCachedValue || key == annotationTemplateKeys {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return digestPrefix + hex.EncodeToString(sum[:])
}

// keepKeys returns the entries of m whose key passes keep, or nil when none does.
func keepKeys(m map[string]string, keep func(string) bool) map[string]string {
	var out map[string]string
	for k, v := range m {
		if keep(k) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// keepIdentityOnly trims a Secret's metadata, in the metadata watch, to what the controller
// needs: which Secret it is and which version. Labels and annotations (which may be large) are
// dropped.
func keepIdentityOnly(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.ObjectMeta = metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion}
	}
	return obj, nil
}
