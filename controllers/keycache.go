package controllers

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// keyLookup is what the key cache found for one Secret key.
type keyLookup struct {
	// secretFound: the Secret exists.
	secretFound bool
	// minter signs with the key and verifies under it and under the key it replaced (so that a
	// rotation is told from a repair); nil when the key is absent or empty.
	minter *dstoken.Minter
	// unreadable: the operator may not read the Secret: its namespace is not watched
	// (--watch-namespaces), or the API server forbids it (RBAC). Only a person can change that.
	unreadable bool
	// oversized: the key is longer than maxKeySize; it is not used, nor kept.
	oversized bool
	// since is the Secret's resourceVersion at which the key took its current value (the
	// operator's first read of it, after a restart); rotated says that the operator saw it
	// replace another value.
	since   string
	rotated bool
}

// maxKeySize bounds a signing key the operator keeps in memory (a Datasette secret is typically
// 64 hexadecimal characters); a longer one is refused, so that no tenant can make the operator
// hold megabytes per Secret.
const maxKeySize = 4 << 10

// keyCache keeps the signing keys that DatasetteTokens and signers use, so that reconciling
// does not read a Secret from the API server while its resourceVersion, as the Secret metadata
// watch sees it, is unchanged. After a rotation the first reconcile reads the Secret once for
// every token that uses it. Keys of Secrets that nobody uses any more are dropped.
type keyCache struct {
	// metadata reads Secrets' metadata from the watch's cache.
	metadata client.Reader
	// api reads a Secret from the API server.
	api client.Reader
	// namespaces, when not empty, are the only namespaces whose Secrets may be read.
	namespaces []string

	reads singleflight.Group

	mu sync.Mutex
	// entries are the keys read, by Secret.
	entries map[types.NamespacedName]*keyEntry
	// users says which Secret each user (a token or a signer) reads.
	users map[string]types.NamespacedName
}

// keyEntry holds the keys read from one Secret at one resourceVersion.
type keyEntry struct {
	resourceVersion string
	users           int
	keys            map[string]*keyVersion
}

// keyVersion is one data key's value and the Minter made from it.
type keyVersion struct {
	value     []byte
	minter    *dstoken.Minter
	oversized bool
	since     string // resourceVersion at which value was first read
	rotated   bool   // value replaced another one
}

func newKeyCache(metadata, api client.Reader, namespaces []string) *keyCache {
	return &keyCache{metadata: metadata, api: api, namespaces: namespaces,
		entries: map[types.NamespacedName]*keyEntry{}, users: map[string]types.NamespacedName{}}
}

// get returns the key under keyName in secret, on behalf of user, reading the Secret from the
// API server only when its resourceVersion changed since it was last read.
func (c *keyCache) get(ctx context.Context, user string, secret types.NamespacedName, keyName string) (keyLookup, error) {
	if len(c.namespaces) > 0 && !slices.Contains(c.namespaces, secret.Namespace) {
		c.release(user)
		return keyLookup{unreadable: true}, nil
	}
	c.use(user, secret)
	var meta metav1.PartialObjectMetadata
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.metadata.Get(ctx, secret, &meta); err != nil {
		if apierrors.IsNotFound(err) {
			return keyLookup{}, nil
		}
		return keyLookup{}, fmt.Errorf("reading the metadata of signing Secret %s: %w", secret, err)
	}
	if k, ok := c.cached(secret, meta.ResourceVersion, keyName); ok {
		return k, nil
	}
	// Every reconcile that finds a new version waits for the same read.
	_, err, _ := c.reads.Do(secret.String()+"@"+meta.ResourceVersion, func() (any, error) {
		return nil, c.read(ctx, secret, meta.ResourceVersion, keyName)
	})
	if err == nil {
		if k, ok := c.cached(secret, meta.ResourceVersion, keyName); ok {
			return k, nil
		}
		// That read was for another key of the same Secret: read again for this one.
		err = c.read(ctx, secret, meta.ResourceVersion, keyName)
	}
	switch {
	case apierrors.IsNotFound(err):
		return keyLookup{}, nil
	case apierrors.IsForbidden(err):
		return keyLookup{unreadable: true}, nil
	case err != nil:
		return keyLookup{}, fmt.Errorf("reading signing Secret %s: %w", secret, err)
	}
	k, _ := c.cached(secret, meta.ResourceVersion, keyName)
	return k, nil
}

// read reads secret from the API server and stores its keys as of resourceVersion.
func (c *keyCache) read(ctx context.Context, secret types.NamespacedName, resourceVersion, keyName string) error {
	var s corev1.Secret
	if err := c.api.Get(ctx, secret, &s); err != nil {
		return err
	}
	c.store(secret, resourceVersion, keyName, s.Data)
	return nil
}

// cached returns the key if it was read at resourceVersion.
func (c *keyCache) cached(secret types.NamespacedName, resourceVersion, keyName string) (keyLookup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[secret]
	if e == nil || e.resourceVersion != resourceVersion {
		return keyLookup{}, false
	}
	k, ok := e.keys[keyName]
	if !ok {
		return keyLookup{}, false
	}
	return keyLookup{secretFound: true, minter: k.minter, oversized: k.oversized, since: k.since, rotated: k.rotated}, true
}

// store records the Secret's data at resourceVersion for keyName and for every key already
// known, keeping each key's previous value inside its Minter.
func (c *keyCache) store(secret types.NamespacedName, resourceVersion, keyName string, data map[string][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[secret]
	if e == nil {
		e = &keyEntry{keys: map[string]*keyVersion{}}
		c.entries[secret] = e
	}
	e.resourceVersion = resourceVersion
	if _, ok := e.keys[keyName]; !ok {
		e.keys[keyName] = &keyVersion{}
	}
	for name, old := range e.keys {
		value := data[name]
		switch {
		case len(value) > maxKeySize:
			e.keys[name] = &keyVersion{oversized: true, since: resourceVersion}
		case len(value) == 0:
			e.keys[name] = &keyVersion{since: resourceVersion}
		case old.minter == nil:
			e.keys[name] = &keyVersion{value: bytes.Clone(value), minter: dstoken.NewMinter(value), since: resourceVersion}
		case !bytes.Equal(old.value, value):
			e.keys[name] = &keyVersion{value: bytes.Clone(value), minter: dstoken.NewMinter(value, old.value), since: resourceVersion, rotated: true}
		}
	}
}

// use records that user reads secret, releasing the Secret it read before.
func (c *keyCache) use(user string, secret types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if before, ok := c.users[user]; ok {
		if before == secret {
			return
		}
		c.releaseLocked(user)
	}
	c.users[user] = secret
	e := c.entries[secret]
	if e == nil {
		e = &keyEntry{keys: map[string]*keyVersion{}}
		c.entries[secret] = e
	}
	e.users++
}

// release records that user reads no Secret any more; a Secret nobody reads is forgotten.
func (c *keyCache) release(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(user)
}

func (c *keyCache) releaseLocked(user string) {
	secret, ok := c.users[user]
	if !ok {
		return
	}
	delete(c.users, user)
	if e := c.entries[secret]; e != nil {
		if e.users--; e.users <= 0 {
			delete(c.entries, secret)
		}
	}
}

// size is how many Secrets' keys are held, for tests.
func (c *keyCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
