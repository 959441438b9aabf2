package controllers

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// TestKeyChangesPacedByTheFloor: a tenant who rewrites its signing key twice a second re-mints
// its tokens once per renewal floor, not at every write. The first change takes effect at once;
// the later ones within the floor are held back and take effect together when the floor has
// passed, the newest value winning; a token signed with the key in effect before is then a
// rotation (the previous key verifies it), never a repair.
func TestKeyChangesPacedByTheFloor(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	c := newKeyCache(nil, nil, nil, 0, 0)
	c.now = func() time.Time { return now }
	secret := types.NamespacedName{Namespace: "tenant", Name: "datasette"}
	use := keyUse{secret: secret, keyName: "key", floor: time.Minute}
	c.use("tok", use)
	lookup := func(rv string) keyLookup {
		t.Helper()
		k, ok := c.cached(secret, rv, "key")
		if !ok {
			t.Fatalf("nothing cached at %s", rv)
		}
		return k
	}
	store := func(rv, value string) keyLookup {
		t.Helper()
		c.store(secret, rv, "key", map[string][]byte{"key": []byte(value)})
		return lookup(rv)
	}
	tokenOf := func(key string) string {
		return dstoken.NewMinter([]byte(key)).Mint(dstoken.Claims{Actor: "bot", IssuedAt: t0.Unix()})
	}

	if k := store("1", "k0"); k.rotated || !k.heldUntil.IsZero() || k.since != "1" {
		t.Fatalf("first read: %+v", k)
	}
	now = t0.Add(time.Second)
	k := store("2", "k1")
	if !k.rotated || k.since != "2" || !k.heldUntil.IsZero() {
		t.Fatalf("the first change must take effect at once: %+v", k)
	}
	if cmp := k.minter.Compare(tokenOf("k0"), dstoken.Claims{Actor: "bot"}); cmp.KeyIndex != 1 {
		t.Fatalf("the first change: a token of the previous key is not a rotation: %+v", cmp)
	}
	for i := 2; i <= 20; i++ { // 19 more changes, twice a second
		now = t0.Add(time.Second + time.Duration(i)*500*time.Millisecond)
		k = store(fmt.Sprint(i+1), fmt.Sprint("k", i))
		if k.since != "2" || !k.heldUntil.Equal(t0.Add(time.Second+time.Minute)) {
			t.Fatalf("change %d within the floor took effect: %+v", i, k)
		}
		if cmp := k.minter.Compare(tokenOf("k1"), dstoken.Claims{Actor: "bot"}); cmp.KeyIndex != 0 {
			t.Fatalf("change %d within the floor: the key in effect changed: %+v", i, cmp)
		}
	}
	if total, _ := c.heldBytes(); total != int64(len("k1")+len("k0")+len("k20"))+keyOverhead {
		t.Errorf("holding one newer value costs %d bytes; want the two in effect, the newest and the overhead", total)
	}
	now = t0.Add(time.Second + time.Minute)
	k = lookup("21")
	if k.since != "21" || !k.rotated || !k.heldUntil.IsZero() {
		t.Fatalf("at the end of the floor the newest value must take effect: %+v", k)
	}
	if cmp := k.minter.Compare(tokenOf("k1"), dstoken.Claims{Actor: "bot"}); cmp.KeyIndex != 1 {
		t.Errorf("after the floor: a token of the key in effect before is not a rotation: %+v", cmp)
	}
	if cmp := k.minter.Compare(tokenOf("k20"), dstoken.Claims{Actor: "bot"}); cmp.KeyIndex != 0 {
		t.Errorf("after the floor the newest key is not in effect: %+v", cmp)
	}
	if total, _ := c.heldBytes(); total != int64(len("k20")+len("k1"))+keyOverhead {
		t.Errorf("after the floor %d bytes are held; want the new and the previous value and the overhead", total)
	}

	// A change back to the value in effect, within the floor, holds nothing back any more.
	now = now.Add(time.Second)
	if k := store("22", "k21"); k.heldUntil.IsZero() {
		t.Fatalf("a change within the floor was not held: %+v", k)
	}
	if k := store("23", "k20"); !k.heldUntil.IsZero() || k.since != "21" {
		t.Errorf("changed back to the key in effect: %+v; want nothing held", k)
	}

	// Without a floor every change takes effect at once.
	c.use("tok", keyUse{secret: secret, keyName: "key"})
	if k := store("24", "k22"); k.since != "24" || !k.heldUntil.IsZero() {
		t.Errorf("with no floor a change waited: %+v", k)
	}
}

// TestKeyCacheKeepsRoomForClusterSigners: however many namespaces a tenant fills with keys, a
// ClusterDatasetteSigner's key still fits (before, sixteen namespaces each holding their
// sixteenth took the whole cap, and every tenant of the cluster signer went SignerNotReady at
// its next rotation). A key a cluster signer uses counts against no namespace, even one of a
// Secret in a tenant's namespace that a token reaches through the cluster signer.
func TestKeyCacheKeepsRoomForClusterSigners(t *testing.T) {
	c := newKeyCache(nil, nil, nil, 2*keyOverhead, 32*keyOverhead)
	for ns := range 32 { // a tenant's 32 namespaces, each filling its share
		for i := range 4 {
			s := types.NamespacedName{Namespace: fmt.Sprint("hostile-", ns), Name: fmt.Sprint("s", i)}
			c.use(fmt.Sprint("tok", ns, "-", i), keyUse{secret: s, keyName: "key"})
			c.store(s, "1", "key", map[string][]byte{"key": []byte("k")})
		}
	}
	if total, _ := c.heldBytes(); total > c.maxTenantBytes {
		t.Fatalf("tenants hold %d bytes, over their %d", total, c.maxTenantBytes)
	}
	platform := types.NamespacedName{Namespace: "platform", Name: "shared"}
	c.use("ClusterDatasetteSigner//shared", keyUse{secret: platform, keyName: "key", platform: true})
	c.store(platform, "1", "key", map[string][]byte{"key": []byte("k")})
	if k, _ := c.cachedAny(platform, "1", "key", true); k.minter == nil {
		t.Fatalf("a cluster signer's key does not fit once tenants filled their room: %+v", k)
	}
	c.use("DatasetteToken/hostile-1/t", keyUse{secret: platform, keyName: "key", platform: true})
	c.store(platform, "2", "key", map[string][]byte{"key": []byte("k2")}) // a rotation: both values held
	if k, _ := c.cachedAny(platform, "2", "key", true); k.minter == nil || !k.rotated {
		t.Fatalf("a cluster signer's rotated key does not fit: %+v", k)
	}
	c.mu.Lock()
	held := c.namespaceBytes[platformPool]
	c.mu.Unlock()
	if held != int64(len("k2")+len("k"))+keyOverhead {
		t.Errorf("the platform's room holds %d bytes; want the cluster signer's key", held)
	}
	c.release("ClusterDatasetteSigner//shared")
	c.release("DatasetteToken/hostile-1/t")
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.namespaceBytes[platformPool]; ok || c.entries[platform] != nil {
		t.Errorf("the cluster signer's key is still held once its users left: %v", c.namespaceBytes)
	}
}
