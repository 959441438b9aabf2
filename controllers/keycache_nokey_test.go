package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Tenants, round three, red team: attacks on the key cache's pacing and room.

// TestKeyPacingSurvivesARemovedKey: a tenant who alternates its signing key between a value
// and nothing (an empty value, a removed data key, or one over maxKeySize) must not get every
// value to take effect at once. Before, a value that followed "no key" was read as the key's
// first value: "k1", "", "k2", "", "k3"... each re-minted every token at once (a repair, never
// deferred), twice a second, whatever the floor.
func TestKeyPacingSurvivesARemovedKey(t *testing.T) {
	for _, gap := range []struct {
		name           string
		data           map[string][]byte
		maxSecretBytes int64
	}{
		{name: "empty", data: map[string][]byte{"key": {}}},
		{name: "removed", data: map[string][]byte{}},
		{name: "oversized", data: map[string][]byte{"key": []byte(strings.Repeat("x", maxKeySize+1))}},
		{name: "over the Secret's cap", data: map[string][]byte{"key": []byte(strings.Repeat("x", 1500))}, maxSecretBytes: 2 * keyOverhead},
	} {
		t.Run(gap.name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now := t0
			c := newKeyCache(nil, nil, nil, gap.maxSecretBytes, 0)
			c.now = func() time.Time { return now }
			secret := types.NamespacedName{Namespace: "tenant", Name: "datasette"}
			c.use("tok", keyUse{secret: secret, keyName: "key", floor: time.Minute})
			rv := 0
			store := func(data map[string][]byte) keyLookup {
				t.Helper()
				rv++
				c.store(secret, fmt.Sprint(rv), "key", data)
				k, ok := c.cachedAny(secret, fmt.Sprint(rv), "key", true)
				if !ok {
					t.Fatalf("nothing cached at %d", rv)
				}
				return k
			}
			value := func(v string) map[string][]byte { return map[string][]byte{"key": []byte(v)} }
			store(value("k0"))
			effective := map[string]bool{}
			var last string
			for i := 1; i <= 20; i++ { // 10 values, each after a gap, twice a second
				now = t0.Add(time.Duration(i) * 500 * time.Millisecond)
				if i%2 == 1 {
					store(gap.data)
					continue
				}
				k := store(value(fmt.Sprint("k", i)))
				if k.minter != nil && k.since != last {
					effective[k.since], last = true, k.since
				}
			}
			if len(effective) > 1 {
				t.Errorf("%d key values took effect within one floor (%s gaps between them); want at most one", len(effective), gap.name)
			}
			now = t0.Add(2 * time.Minute)
			k, _ := c.cachedAny(secret, fmt.Sprint(rv), "key", true)
			if k.minter == nil || !k.heldUntil.IsZero() {
				t.Fatalf("after the floor the newest value must be in effect: %+v", k)
			}
			if gap.maxSecretBytes != 0 {
				return // a key over the caps is not held: nor is the value before it
			}
			if !k.rotated {
				t.Errorf("after the floor the newest value must be a rotation: %+v", k)
			}
			tokenOf := func(key string) string {
				return dstoken.NewMinter([]byte(key)).Mint(dstoken.Claims{Actor: "bot", IssuedAt: t0.Unix()})
			}
			if cmp := k.minter.Compare(tokenOf("k20"), dstoken.Claims{Actor: "bot"}); cmp.KeyIndex != 0 {
				t.Errorf("the newest value is not in effect: %+v", cmp)
			}
			if cmp := k.minter.Compare(tokenOf("k0"), dstoken.Claims{Actor: "bot"}); cmp.KeyIndex != 1 {
				t.Errorf("a token of the key in effect before the gaps is not a rotation: %+v", cmp)
			}
		})
	}
}

// TestHeldKeyAfterNoKeyWaits: a token whose key went, and whose new value waits for the
// renewal floor, is not Stalled: the value comes by itself, and the token is back then.
func TestHeldKeyAfterNoKeyWaits(t *testing.T) {
	f := newDecideFixture(t)
	in := f.gathered(f.token(f.key, f.want.claims), nil)
	in.floor = time.Minute
	in.signing.key.heldUntil = f.t0.Add(time.Minute)
	p := decide(in, f.t0.Add(time.Second))
	if p.mint != noMint || p.readiness.reason != datasettev1alpha1.ReasonSigningKeyMissing || p.readiness.severity != waiting ||
		!strings.Contains(p.readiness.message, "takes effect at") || p.requeueAfter != 59*time.Second {
		t.Errorf("plan %+v; want SigningKeyMissing, waiting for the held value in 59s", p)
	}
}

// fakeSecrets serves one Secret whose key and resourceVersion change on every write, for the
// key cache's metadata and API reads.
type fakeSecrets struct {
	mu   sync.Mutex
	rv   int
	data map[string][]byte
}

func (f *fakeSecrets) write(value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	f.data = map[string][]byte{"key": []byte(value), "other": []byte(value + "-o")}
}

func (f *fakeSecrets) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	obj.SetName(key.Name)
	obj.SetNamespace(key.Namespace)
	obj.SetResourceVersion(fmt.Sprint(f.rv))
	if s, ok := obj.(*corev1.Secret); ok {
		s.Data = maps.Clone(f.data)
	}
	return nil
}

func (f *fakeSecrets) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return nil
}

// TestKeyCacheConcurrentUse: tokens and signers reading, switching and releasing keys of one
// Secret while it is rewritten, from many goroutines (run with -race), leave the cache's byte
// counts consistent, and nothing held once every user left.
func TestKeyCacheConcurrentUse(t *testing.T) {
	secrets := &fakeSecrets{}
	secrets.write("k0")
	c := newKeyCache(secrets, secrets, nil, 0, 0)
	secret := types.NamespacedName{Namespace: "tenant", Name: "datasette"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			secrets.write([]string{"", fmt.Sprint("k", i), strings.Repeat("x", maxKeySize+1)}[i%3])
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var users sync.WaitGroup
	for u := range 8 {
		users.Add(1)
		go func() {
			defer users.Done()
			user := fmt.Sprint("user-", u)
			for i := range 300 {
				use := keyUse{secret: secret, keyName: []string{"key", "other"}[i%2], floor: time.Duration(i%3) * time.Millisecond, platform: u%2 == 0 && i%5 == 0}
				if _, err := c.get(context.Background(), user, use); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					c.release(user)
				}
			}
			c.release(user)
		}()
	}
	users.Wait()
	close(stop)
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total != 0 || len(c.entries) != 0 || len(c.namespaceBytes) != 0 || len(c.users) != 0 {
		t.Errorf("every user left, and the cache holds %d bytes, %d entries, pools %v, users %v", c.total, len(c.entries), c.namespaceBytes, c.users)
	}
}
