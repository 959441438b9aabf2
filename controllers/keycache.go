package controllers

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

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
	// overBudget: holding the key would pass the key cache's byte caps (per Secret or in all);
	// it is not used, nor kept.
	overBudget bool
	// since is the Secret's resourceVersion at which the key took its current value (the
	// operator's first read of it, after a restart); rotated says that the operator saw it
	// replace another value.
	since   string
	rotated bool
	// heldUntil is when a newer value of the key, held back by the renewal floor, takes the
	// place of the current one (zero: none is held).
	heldUntil time.Time
}

// maxKeySize bounds a signing key the operator keeps in memory (a Datasette secret is typically
// 64 hexadecimal characters); a longer one is refused, so that no tenant can make the operator
// hold megabytes per Secret.
const maxKeySize = 4 << 10

// keyCache keeps the signing keys that DatasetteTokens and signers use, so that reconciling
// does not read a Secret from the API server while its resourceVersion, as the watches see it, is
// unchanged. After a rotation the first reconcile reads the Secret once for
// every token that uses it. Each (Secret, key name) is kept while a token or a signer uses it
// and dropped when none does; the bytes held per Secret, per namespace and in all are capped,
// and a share of the cap is kept for ClusterDatasetteSigners' keys, which no tenant can take.
//
// A key's changes are paced by its source's renewal floor: the first change takes effect at
// once, and any later change within the floor of the last one is held back until the floor has
// passed, when the newest value takes effect. A tenant who rewrites its Secret's key twice a
// second re-mints its tokens and restarts its workloads once per floor, not at every write.
type keyCache struct {
	// metadata reads Secrets' metadata from the caches (secretVersions).
	metadata metadataGetter
	// api reads a Secret from the API server.
	api client.Reader
	// namespaces, when not empty, are the only namespaces whose Secrets may be read.
	namespaces []string

	reads singleflight.Group

	mu sync.Mutex
	// entries are the keys read, by Secret.
	entries map[types.NamespacedName]*keyEntry
	// users says which Secret key each user (a token or a signer) reads.
	users map[string]keyUse

	// maxSecretBytes and maxBytes cap the bytes held for one Secret and in all; total is the
	// bytes held now.
	maxSecretBytes, maxBytes, total int64
	// maxNamespaceBytes caps the bytes held for the Secrets of one namespace, and namespaceBytes
	// is what each holds now (under platformPool: ClusterDatasetteSigners' keys), so that no
	// tenant can fill the shared cap and starve the others.
	maxNamespaceBytes int64
	namespaceBytes    map[string]int64
	// maxTenantBytes caps the bytes of every namespace's keys together: the rest of maxBytes is
	// room for ClusterDatasetteSigners' keys alone.
	maxTenantBytes int64

	// now tells the time, for the renewal floor.
	now func() time.Time
}

// namespaceShare is the part of the key cache's total cap one namespace may hold (1/16: 1 MiB
// of the default 16 MiB, some 900 typical keys), but never less than one Secret's cap.
const namespaceShare = 16

// platformShare is the part of the key cache's total cap kept for ClusterDatasetteSigners' keys
// (1/4: 4 MiB of the default 16 MiB): however many namespaces a tenant fills, a cluster
// signer's key still fits at its next rotation or after a restart.
const platformShare = 4

// platformPool is the pool, in namespaceBytes, of the keys a ClusterDatasetteSigner uses (for
// itself or for the tokens of any namespace): written by the platform team, they count against
// no tenant's share.
const platformPool = ""

// keyUse is one Secret key that a user reads.
type keyUse struct {
	secret  types.NamespacedName
	keyName string
	// platform: the user reads it through a ClusterDatasetteSigner (the signer itself, or a
	// token under it): the Secret's keys count against the platform's room, not its namespace's.
	platform bool
	// floor is the renewal floor of the key's source: the least time between two changes of
	// the key that take effect.
	floor time.Duration
}

// keyEntry holds the keys in use of one Secret, read at one resourceVersion.
type keyEntry struct {
	// namespace is the Secret's namespace; pool is the share of the cache its keys count
	// against: the namespace's, or platformPool while platformUsers is not zero.
	namespace, pool string
	resourceVersion string
	// users counts the users of each key name; a name nobody uses is dropped.
	users         map[string]int
	platformUsers int
	// floor is the renewal floor of the key's source, as its last user gave it.
	floor time.Duration
	keys  map[string]*keyVersion
	// bytes is what keys hold.
	bytes int64
}

// keyVersion is one data key's value and the Minter made from it.
type keyVersion struct {
	value      []byte
	minter     *dstoken.Minter
	oversized  bool
	overBudget bool
	// bytes is what the key costs: its value, the value it replaced (kept by the Minter to tell
	// a rotation from a repair), and keyOverhead.
	bytes   int64
	since   string // resourceVersion at which value was first read
	rotated bool   // value replaced another one
	// changedAt is when value took effect replacing another one (zero for the first value
	// read): a later change waits until the floor after it.
	changedAt time.Time
	// next is the newest value of the key, held back until nextAt by the renewal floor (nil:
	// none); nextSince is the resourceVersion at which it was read.
	next      []byte
	nextSince string
	nextAt    time.Time
}

// keyOverhead is what one held key costs beyond its values' bytes (the Minter, the HMAC state,
// the maps' entries), measured roughly; it makes the caps count many small keys too.
const keyOverhead = 1 << 10

// Default caps of the key cache (the manager's --key-cache-secret-bytes and --key-cache-bytes).
const (
	// DefaultKeyCacheSecretBytes holds up to 64 KiB of keys from one Secret: 30 full-size (4 KiB)
	// keys with their previous values, or some 60 typical (64-byte) keys.
	DefaultKeyCacheSecretBytes = 64 << 10
	// DefaultKeyCacheBytes holds up to 16 MiB of keys in all: some 15 000 typical keys, an eighth
	// of the manager's 128 MiB memory limit.
	DefaultKeyCacheBytes = 16 << 20
)

// metadataGetter reads an object's metadata.
type metadataGetter interface {
	Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error
}

func newKeyCache(metadata metadataGetter, api client.Reader, namespaces []string, maxSecretBytes, maxBytes int64) *keyCache {
	if maxSecretBytes <= 0 {
		maxSecretBytes = DefaultKeyCacheSecretBytes
	}
	if maxBytes <= 0 {
		maxBytes = DefaultKeyCacheBytes
	}
	return &keyCache{metadata: metadata, api: api, namespaces: namespaces, maxSecretBytes: maxSecretBytes, maxBytes: maxBytes,
		maxNamespaceBytes: max(maxSecretBytes, maxBytes/namespaceShare), namespaceBytes: map[string]int64{},
		maxTenantBytes: maxBytes - maxBytes/platformShare, now: time.Now,
		entries: map[types.NamespacedName]*keyEntry{}, users: map[string]keyUse{}}
}

// get returns the key that use names, on behalf of user, reading the Secret from the API server only
// when its resourceVersion changed since it was last read.
func (c *keyCache) get(ctx context.Context, user string, use keyUse) (keyLookup, error) {
	secret, keyName := use.secret, use.keyName
	if len(c.namespaces) > 0 && !slices.Contains(c.namespaces, secret.Namespace) {
		c.release(user)
		return keyLookup{unreadable: true}, nil
	}
	c.use(user, use)
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
	k, _ := c.cachedAny(secret, meta.ResourceVersion, keyName, true)
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

// cached returns the key if it was read at resourceVersion. A key that did not fit the caps
// counts as not read, so that the next reconcile tries again (the caps may have room by then).
func (c *keyCache) cached(secret types.NamespacedName, resourceVersion, keyName string) (keyLookup, bool) {
	return c.cachedAny(secret, resourceVersion, keyName, false)
}

// cachedAny is cached; withOverBudget returns a key that did not fit the caps too.
func (c *keyCache) cachedAny(secret types.NamespacedName, resourceVersion, keyName string, withOverBudget bool) (keyLookup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[secret]
	if e == nil || e.resourceVersion != resourceVersion {
		return keyLookup{}, false
	}
	k, ok := e.keys[keyName]
	if !ok || k.overBudget && !withOverBudget {
		return keyLookup{}, false
	}
	if now := c.now(); k.next != nil && !now.Before(k.nextAt) {
		// The floor has passed: the newest value held back takes effect.
		c.replaceLocked(e, keyName, takeEffect(k.next, k.value, k.nextSince, now))
		if k = e.keys[keyName]; k.overBudget && !withOverBudget {
			return keyLookup{}, false
		}
	}
	return keyLookup{secretFound: true, minter: k.minter, oversized: k.oversized, overBudget: k.overBudget, since: k.since, rotated: k.rotated,
		heldUntil: k.nextAt}, true
}

// store records the Secret's data at resourceVersion for keyName and for every key in use,
// keeping each key's previous value inside its Minter, within the byte caps. A change within
// the renewal floor of the last one is held back (see keyCache).
func (c *keyCache) store(secret types.NamespacedName, resourceVersion, keyName string, data map[string][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[secret]
	if e == nil || e.users[keyName] == 0 {
		return // nobody uses it any more: keep nothing
	}
	now := c.now()
	e.resourceVersion = resourceVersion
	names := make([]string, 0, len(e.users))
	for name := range e.users {
		names = append(names, name)
	}
	slices.Sort(names) // the same keys fit whatever the map's order
	for _, name := range names {
		old := e.keys[name]
		value := data[name]
		var next *keyVersion
		switch {
		case len(value) > maxKeySize || len(value) == 0:
			next = noKey(old, resourceVersion, len(value) > maxKeySize, e.floor, now)
		case old == nil || old.minter == nil && old.changedAt.IsZero():
			// The key's first value (it never had another): it takes effect at once.
			next = &keyVersion{value: bytes.Clone(value), minter: dstoken.NewMinter(value), bytes: int64(len(value)) + keyOverhead,
				since: resourceVersion}
		case old.minter == nil && bytes.Equal(old.next, value):
			continue
		case old.minter == nil && now.Before(old.changedAt.Add(e.floor)):
			// No key now, and it went (or changed) within the floor: a value is paced like any
			// other change, so that alternating a key and nothing does not walk around the floor.
			next = &keyVersion{oversized: old.oversized, value: old.value, bytes: int64(len(old.value) + len(value)), since: old.since,
				changedAt: old.changedAt, next: bytes.Clone(value), nextSince: resourceVersion, nextAt: old.changedAt.Add(e.floor)}
		case old.minter == nil:
			next = takeEffect(value, old.value, resourceVersion, now)
		case bytes.Equal(old.value, value) && old.next == nil:
			continue
		case bytes.Equal(old.value, value): // changed back within the floor: nothing is held any more
			next = &keyVersion{value: old.value, minter: old.minter, bytes: old.bytes - int64(len(old.next)), since: old.since,
				rotated: old.rotated, changedAt: old.changedAt}
		case bytes.Equal(old.next, value):
			continue
		case !old.changedAt.IsZero() && now.Before(old.changedAt.Add(e.floor)):
			// Within the floor of the last change: held back, and the newest value wins.
			next = &keyVersion{value: old.value, minter: old.minter, bytes: old.bytes - int64(len(old.next)) + int64(len(value)),
				since: old.since, rotated: old.rotated, changedAt: old.changedAt,
				next: bytes.Clone(value), nextSince: resourceVersion, nextAt: old.changedAt.Add(e.floor)}
		default:
			next = takeEffect(value, old.value, resourceVersion, now)
		}
		c.replaceLocked(e, name, next)
	}
}

// takeEffect is value in effect from now on, read at resourceVersion, replacing previous (nil:
// none, or no key): the Minter verifies under both, so that a token of previous is a rotation.
func takeEffect(value, previous []byte, resourceVersion string, now time.Time) *keyVersion {
	if bytes.Equal(previous, value) {
		previous = nil // the key in effect before it went: nothing rotated
	}
	minter := dstoken.NewMinter(value)
	if previous != nil {
		minter = dstoken.NewMinter(value, previous)
	}
	return &keyVersion{value: bytes.Clone(value), minter: minter, bytes: int64(len(value)+len(previous)) + keyOverhead,
		since: resourceVersion, rotated: previous != nil, changedAt: now}
}

// noKey is a key that is absent, empty or oversized at resourceVersion, replacing old: no key
// takes effect at once, but it keeps the last value in effect (for the Minter of the next) and
// counts as a change, so that the next value waits for the floor like any other.
func noKey(old *keyVersion, resourceVersion string, oversized bool, floor time.Duration, now time.Time) *keyVersion {
	v := &keyVersion{oversized: oversized, since: resourceVersion}
	switch {
	case old == nil:
	case old.minter == nil, !old.changedAt.IsZero() && now.Before(old.changedAt.Add(floor)):
		v.value, v.changedAt = old.value, old.changedAt // still no key, or within the floor: the last change stays the last
	default:
		v.value, v.changedAt = old.value, now
	}
	v.bytes = int64(len(v.value))
	return v
}

// replaceLocked puts next under name, or an overBudget mark when it would pass a cap.
func (c *keyCache) replaceLocked(e *keyEntry, name string, next *keyVersion) {
	var before int64
	if old := e.keys[name]; old != nil {
		before = old.bytes
	}
	if grow := next.bytes - before; grow > 0 && (e.bytes+grow > c.maxSecretBytes || c.total+grow > c.maxBytes ||
		e.pool != platformPool && (c.namespaceBytes[e.pool]+grow > c.maxNamespaceBytes ||
			c.total-c.namespaceBytes[platformPool]+grow > c.maxTenantBytes)) {
		// Over the caps: no key, but its last change still paces the next (see noKey).
		changed := next.changedAt
		if old := e.keys[name]; changed.IsZero() && old != nil && old.minter != nil {
			changed = c.now()
		}
		next = &keyVersion{overBudget: true, changedAt: changed}
	}
	e.keys[name] = next
	c.account(e, next.bytes-before)
}

// account adds delta bytes to what e, its pool and the whole cache hold.
func (c *keyCache) account(e *keyEntry, delta int64) {
	e.bytes += delta
	c.total += delta
	c.addToPool(e.pool, delta)
}

// addToPool adds delta bytes to what pool holds; the map keeps only pools that hold some.
func (c *keyCache) addToPool(pool string, delta int64) {
	if n := c.namespaceBytes[pool] + delta; n > 0 {
		c.namespaceBytes[pool] = n
	} else {
		delete(c.namespaceBytes, pool)
	}
}

// movePool makes e's keys count against pool from now on.
func (c *keyCache) movePool(e *keyEntry, pool string) {
	if e.pool == pool {
		return
	}
	c.addToPool(e.pool, -e.bytes)
	c.addToPool(pool, e.bytes)
	e.pool = pool
}

// use records that user reads keyName of secret, releasing the key it read before.
func (c *keyCache) use(user string, k keyUse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if before, ok := c.users[user]; ok {
		if before.secret == k.secret && before.keyName == k.keyName && before.platform == k.platform {
			c.users[user] = k
			c.entries[k.secret].floor = k.floor
			return
		}
		c.releaseLocked(user)
	}
	c.users[user] = k
	e := c.entries[k.secret]
	if e == nil {
		e = &keyEntry{namespace: k.secret.Namespace, pool: k.secret.Namespace, users: map[string]int{}, keys: map[string]*keyVersion{}}
		c.entries[k.secret] = e
	}
	e.users[k.keyName]++
	e.floor = k.floor
	if k.platform {
		if e.platformUsers++; e.platformUsers == 1 {
			c.movePool(e, platformPool)
		}
	}
}

// release records that user reads no key any more; a key nobody reads is forgotten, and a
// Secret none of whose keys is read.
func (c *keyCache) release(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(user)
}

func (c *keyCache) releaseLocked(user string) {
	k, ok := c.users[user]
	if !ok {
		return
	}
	delete(c.users, user)
	e := c.entries[k.secret]
	if e == nil {
		return
	}
	if k.platform {
		if e.platformUsers--; e.platformUsers == 0 {
			c.movePool(e, e.namespace)
		}
	}
	if e.users[k.keyName]--; e.users[k.keyName] <= 0 {
		delete(e.users, k.keyName)
		if kv := e.keys[k.keyName]; kv != nil {
			c.account(e, -kv.bytes)
			delete(e.keys, k.keyName)
		}
	}
	if len(e.users) == 0 {
		c.account(e, -e.bytes)
		delete(c.entries, k.secret)
	}
}

// size is how many Secrets' keys are held, for tests.
func (c *keyCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// heldBytes is how many bytes of keys are held, and how many key names, for tests.
func (c *keyCache) heldBytes() (total int64, names int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		names += len(e.keys)
	}
	return c.total, names
}
