package controllers

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestKeyCacheOneNamespaceCannotFillIt: a tenant who walks many tokens through many Secrets'
// keys holds at most its namespace's share of the key cache, so that another namespace's key
// still fits (before the per-namespace cap, the first tenant filled the shared cap and every
// other tenant's new or rotated key was refused as over budget).
func TestKeyCacheOneNamespaceCannotFillIt(t *testing.T) {
	c := newKeyCache(nil, nil, nil, 2*keyOverhead+100, 64*keyOverhead)
	data := map[string][]byte{"k1": []byte("one"), "k2": []byte("two")}
	for i := range 60 { // 120 keys of 60 Secrets, in namespace "hostile"
		s := types.NamespacedName{Namespace: "hostile", Name: fmt.Sprint("s", i)}
		for _, name := range []string{"k1", "k2"} {
			c.use(fmt.Sprint("tok", i, name), keyUse{secret: s, keyName: name})
			c.store(s, "1", name, data)
		}
	}
	if total, _ := c.heldBytes(); total > 64*keyOverhead/namespaceShare+2*keyOverhead {
		t.Errorf("one namespace holds %d bytes, over its share of the cache", total)
	}
	other := types.NamespacedName{Namespace: "victim", Name: "s"}
	c.use("victim-token", keyUse{secret: other, keyName: "k1"})
	c.store(other, "7", "k1", data)
	if k, _ := c.cachedAny(other, "7", "k1", true); k.minter == nil {
		t.Errorf("another namespace's key does not fit once one tenant walked through 120 keys: %+v", k)
	}
	for i := range 60 {
		c.release(fmt.Sprint("tok", i, "k1"))
		c.release(fmt.Sprint("tok", i, "k2"))
	}
	c.release("victim-token")
	if total, names := c.heldBytes(); total != 0 || names != 0 || c.size() != 0 {
		t.Errorf("after every user left: %d bytes, %d names, %d Secrets; want none", total, names, c.size())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.namespaceBytes) != 0 {
		t.Errorf("namespaces still counted after every user left: %v", c.namespaceBytes)
	}
}
