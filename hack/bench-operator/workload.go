package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	// benchNamespace holds the operator's DatasetteTokens, their Secrets and the signing Secret.
	benchNamespace = "bench"
	// signingSecretName is the Secret every token signs with, under signingKey.
	signingSecretName = "datasette"
	signingKey        = "DATASETTE_SECRET"
	// managedByLabel marks the operator's own Secrets; the floor's carry it too.
	managedByLabel = "app.kubernetes.io/managed-by"
)

// tokenName names the i-th DatasetteToken (and, by default, its Secret).
func tokenName(i int) string { return fmt.Sprintf("tok-%05d", i) }

// newToken returns the i-th DatasetteToken of a namespace, as an object of group/version: a 24 h
// token with a few restrictions, signed with the signing Secret.
func newToken(apiVersion, namespace string, i int) *unstructured.Unstructured {
	tok := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"actor":        fmt.Sprintf("bench-%d", i),
			"expiresAfter": "24h",
			"restrictions": map[string]any{
				"all":       []any{"view-instance"},
				"databases": []any{map[string]any{"name": "fixtures", "actions": []any{"view-database", "view-table"}}},
				"resources": []any{map[string]any{"database": "fixtures", "resource": "facetable", "actions": []any{"insert-row"}}},
			},
			"signingSecretRef": map[string]any{"name": signingSecretName},
		},
	}}
	tok.SetAPIVersion(apiVersion)
	tok.SetKind(tokenKind)
	tok.SetName(tokenName(i))
	tok.SetNamespace(namespace)
	return tok
}

// harnessCreates counts n DatasetteToken creates, as the API server counts them when they succeed
// (code "" matches counts added up over codes).
func harnessCreates(n int, code string) requestCounts {
	return requestCounts{{Verb: verbCreate, Group: tokenGroup, Resource: tokenResource, Code: code}: float64(n)}
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand.Read panics rather than return an error)
	return hex.EncodeToString(b)
}

// createNamespace creates a namespace; one that exists already is fine.
func createNamespace(ctx context.Context, cp *controlPlane, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cp.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// writeSigningSecret creates or updates the signing Secret of the bench namespace with a new
// random key.
func writeSigningSecret(ctx context.Context, cp *controlPlane) error {
	secrets := cp.kube.CoreV1().Secrets(benchNamespace)
	key := []byte(randomHex(32))
	existing, err := secrets.Get(ctx, signingSecretName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: signingSecretName, Namespace: benchNamespace},
			Data:       map[string][]byte{signingKey: key},
		}
		_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
	case err == nil:
		existing.Data = map[string][]byte{signingKey: key}
		_, err = secrets.Update(ctx, existing, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing the signing Secret: %w", err)
	}
	return nil
}

// forEach calls f for i in [0, n) on `workers` goroutines, and returns the first error.
func forEach(ctx context.Context, workers, n int, f func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return f(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return context.Cause(ctx)
}

// createUnrelatedSecrets creates count Secrets of size bytes each, spread over namespaces
// "unrelated-00", "unrelated-01", …: Secrets no DatasetteToken names.
func createUnrelatedSecrets(ctx context.Context, cp *controlPlane, count, namespaces, size, workers int) error {
	for n := range namespaces {
		if err := createNamespace(ctx, cp, unrelatedNamespace(n)); err != nil {
			return err
		}
	}
	blob := []byte(randomHex(size / 2))
	return forEach(ctx, workers, count, func(ctx context.Context, i int) error {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%06d", i), Namespace: unrelatedNamespace(i % namespaces)},
			Data:       map[string][]byte{"blob": blob},
		}
		if _, err := cp.kube.CoreV1().Secrets(secret.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating unrelated Secret %s/%s: %w", secret.Namespace, secret.Name, err)
		}
		return nil
	})
}

func unrelatedNamespace(n int) string { return fmt.Sprintf("unrelated-%02d", n) }
