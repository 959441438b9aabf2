package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// gather reads what decide needs for tok at now: the signer or signing Secret and its key, the
// output Secret, and the restart gate's hold on its rollout restart targets. Every read is served
// by a watch's cache, but for a signing key whose Secret changed and for a Secret of that name
// that the operator does not cache (someone else's, or its own with the label removed). Its
// errors are transient.
func (r *DatasetteTokenReconciler) gather(ctx context.Context, tok *datasettev1alpha1.DatasetteToken, now time.Time) (*gathered, error) {
	in := &gathered{token: tok}
	in.want, in.specErr = desiredFromSpec(tok)
	if in.specErr != nil {
		return in, nil
	}
	var err error
	if in.signing, err = r.gatherSigning(ctx, tok); err != nil {
		return nil, err
	}
	in.floor = renewalFloor(r.MinRenewalInterval, in.signing.settings)
	in.restartWait = r.restarts.wait(tok.Namespace, tok.Spec.RolloutRestartTargets, in.floor, now)
	key := types.NamespacedName{Namespace: tok.Namespace, Name: in.want.secretName}
	if in.secret, err = r.outputSecret(ctx, key, tok); err != nil {
		return nil, err
	}
	if in.secret != nil && !r.secretWrites.caughtUp(key, in.secret.ResourceVersion, true) ||
		in.secret == nil && !r.secretWrites.caughtUp(key, "", false) {
		return nil, errCacheBehind
	}
	if old := tok.Status.SecretName; old != "" && old != in.want.secretName {
		if in.staleSecret, err = r.cachedSecret(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: old}); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// gatherSigning finds the token's signing key: through its signer (checking that the signer
// serves the token's namespace), or in its signing Secret.
func (r *DatasetteTokenReconciler) gatherSigning(ctx context.Context, tok *datasettev1alpha1.DatasetteToken) (s signingFacts, err error) {
	user := keyUser("DatasetteToken", tok)
	defer func() {
		if s.viaSigner && (!s.signerFound || !s.namespaceAllowed) {
			r.keys.release(user) // no key is read for it: keep none on its behalf
		}
	}()
	var secret types.NamespacedName
	var ref datasettev1alpha1.SecretKeyRef
	switch signer := tok.Spec.SignerRef; {
	case signer == nil:
		ref = *tok.Spec.SigningSecretRef
		secret = types.NamespacedName{Namespace: tok.Namespace, Name: ref.Name}
		if s.refusedRef, err = r.directRefRefusal(ctx, secret); s.refusedRef != "" || err != nil {
			r.keys.release(user) // refused: no key is read for it
			return s, err
		}
	case signer.Kind == datasettev1alpha1.ClusterDatasetteSignerKind:
		s.viaSigner, s.source = true, fmt.Sprintf("ClusterDatasetteSigner %q", signer.Name)
		var cs datasettev1alpha1.ClusterDatasetteSigner
		found, err := get(ctx, r.Client, types.NamespacedName{Name: signer.Name}, &cs)
		if !found || err != nil {
			return s, err
		}
		s.signerFound, s.settings = true, cs.Spec.SignerSettings
		s.probed, s.instance = cs.Spec.Probe != nil, cs.Status.Instance
		if s.namespaceAllowed, err = r.namespaceSelected(ctx, tok.Namespace, cs.Spec.NamespaceSelector); !s.namespaceAllowed || err != nil {
			return s, err
		}
		ref = cs.Spec.SecretRef.SecretKeyRef
		secret = types.NamespacedName{Namespace: cs.Spec.SecretRef.Namespace, Name: ref.Name}
	default:
		s.viaSigner, s.source = true, fmt.Sprintf("DatasetteSigner %q", signer.Name)
		var ds datasettev1alpha1.DatasetteSigner
		found, err := get(ctx, r.Client, types.NamespacedName{Namespace: tok.Namespace, Name: signer.Name}, &ds)
		if !found || err != nil {
			return s, err
		}
		s.signerFound, s.namespaceAllowed, s.settings = true, true, ds.Spec.SignerSettings
		s.probed, s.instance = ds.Spec.Probe != nil && r.AllowNamespacedProbes, ds.Status.Instance
		ref = ds.Spec.SecretRef
		secret = types.NamespacedName{Namespace: tok.Namespace, Name: ref.Name}
	}
	if s.invalidPolicy = policyInvalid(s.settings.Policy); s.invalidPolicy != "" {
		r.keys.release(user) // nothing is minted under a malformed policy
		return s, nil
	}
	s.keyName = keyNameOf(ref)
	s.secret = fmt.Sprintf("%q", secret.Name)
	if secret.Namespace != tok.Namespace {
		s.secret = fmt.Sprintf("%q in namespace %q", secret.Name, secret.Namespace)
	}
	// The key's changes are paced by the same floor as the token's renewals.
	s.key, err = r.keys.get(ctx, user, keyUse{secret: secret, keyName: s.keyName, floor: renewalFloor(r.MinRenewalInterval, s.settings),
		platform: tok.Spec.SignerRef != nil && tok.Spec.SignerRef.Kind == datasettev1alpha1.ClusterDatasetteSignerKind})
	return s, err
}

// namespaceSelected reports whether selector selects namespace.
func (r *DatasetteTokenReconciler) namespaceSelected(ctx context.Context, namespace string, selector *metav1.LabelSelector) (bool, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil || selector == nil {
		return false, nil // admission validates selectors; a broken one selects nothing
	}
	var ns metav1.PartialObjectMetadata
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	found, err := get(ctx, r.Client, types.NamespacedName{Name: namespace}, &ns)
	if !found || err != nil {
		return false, err
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}

// outputSecret returns the Secret the token goes to, or nil when there is none. The cache holds
// only the operator's own Secrets; the metadata watch says whether any other Secret has that
// name, and only then are its metadata read from the API server: someone else's Secret is never
// read whole (its identity and owners tell it is not ours), ours with its label removed is, and
// trimmed like the cache's.
func (r *DatasetteTokenReconciler) outputSecret(ctx context.Context, key types.NamespacedName, tok metav1.Object) (*corev1.Secret, error) {
	if s, err := r.cachedSecret(ctx, key); s != nil || err != nil {
		return s, err
	}
	var meta metav1.PartialObjectMetadata
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if found, err := get(ctx, r.secretMetadata, key, &meta); !found || err != nil {
		return nil, err
	}
	if found, err := get(ctx, r.APIReader, key, &meta); !found || err != nil {
		return nil, err
	}
	if !metav1.IsControlledBy(&meta, tok) {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, UID: meta.UID,
			ResourceVersion: meta.ResourceVersion, OwnerReferences: meta.OwnerReferences}}, nil
	}
	var secret corev1.Secret
	if found, err := get(ctx, r.APIReader, key, &secret); !found || err != nil {
		return nil, err
	}
	trimmed, _ := trimOwnedSecret(&secret)
	return trimmed.(*corev1.Secret), nil
}

// cachedSecret returns a Secret of the operator's cache, or nil.
func (r *DatasetteTokenReconciler) cachedSecret(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	var secret corev1.Secret
	if found, err := get(ctx, r.Client, key, &secret); !found || err != nil {
		return nil, err
	}
	return &secret, nil
}

// get reads obj from reader; found is false when it does not exist.
func get(ctx context.Context, reader client.Reader, key types.NamespacedName, obj client.Object) (found bool, err error) {
	if err := reader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading %T %s: %w", obj, key, err)
	}
	return true, nil
}

// keyNameOf is the data key a SecretKeyRef selects.
func keyNameOf(ref datasettev1alpha1.SecretKeyRef) string {
	if ref.Key != "" {
		return ref.Key
	}
	return defaultSigningKey
}

// keyUser names a token or signer as a user of the key cache.
func keyUser(kind string, obj metav1.Object) string {
	return kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
}

// durationOf reads an optional duration; nil is zero.
func durationOf(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}
