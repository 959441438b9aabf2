package controllers

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Hostile-tenant tests: what a tenant with the `edit` role can write (Secrets, DatasetteTokens)
// must neither take the manager down nor go unexplained; and the scale properties of the key
// cache and of the stale-Secret clean-up. The manager runs in this process, so its memory is
// the test's Go heap.

// liveHeap is the Go heap's live bytes after two full collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// totalAlloc is the bytes allocated on the heap since the process started.
func totalAlloc() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapPeak samples the heap's object bytes every millisecond until stopped.
type heapPeak struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func sampleHeap() *heapPeak {
	h := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// Stop stops sampling and returns the peak.
func (h *heapPeak) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

const mib = 1 << 20

func mibs(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/mib) }

// forgedBomb is "dstok_." + the zlib of a JSON array of zeros, written until the compressed
// payload reaches at least size bytes, with a signature that verifies under no key.
func forgedBomb(t *testing.T, zeros int, size int, level int) (token string, inflated int) {
	t.Helper()
	var z bytes.Buffer
	w, err := zlib.NewWriterLevel(&z, level)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("0,", 1<<16))
	_, _ = w.Write([]byte("["))
	inflated = 1
	for written := 0; written < zeros || z.Len() < size; written += 1 << 16 {
		_, _ = w.Write(chunk)
		inflated += len(chunk)
	}
	_, _ = w.Write([]byte("0]"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 20)
	_, _ = rand.Read(sig)
	return dstoken.Prefix + "." + base64.RawURLEncoding.EncodeToString(z.Bytes()) + "." + base64.RawURLEncoding.EncodeToString(sig), inflated + 2
}

// setSecretToken replaces the token in Secret name, as a tenant with `edit` can, and returns
// the Secret's new resourceVersion.
func setSecretToken(t *testing.T, ns, name, token string) string {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"data": map[string][]byte{tokenKey: []byte(token)}})
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8sClient.Patch(ctx, s, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("replacing the token of Secret %s: %v", name, err)
	}
	return s.ResourceVersion
}

// conditionStatus returns the status of condition typ on tok, or "".
func conditionStatus(tok *datasettev1alpha1.DatasetteToken, typ string) metav1.ConditionStatus {
	if c := meta.FindStatusCondition(tok.Status.Conditions, typ); c != nil {
		return c.Status
	}
	return ""
}

// waitWarning waits for a Warning event with reason about the DatasetteToken name.
func waitWarning(t *testing.T, ns, name, reason string) {
	t.Helper()
	if e := waitEvent(t, ns, name, reason); e.Type != corev1.EventTypeWarning {
		t.Errorf("event %s is %s, want Warning", reason, e.Type)
	}
}

// waitQuiet waits until the manager has sent no request for a whole second.
func waitQuiet(t *testing.T, log *requestLog) {
	t.Helper()
	last := -1
	NewWithT(t).Eventually(func() bool {
		cur := log.mark()
		quiet := cur == last
		last = cur
		return quiet
	}, eventually, time.Second).Should(BeTrue())
}

func secretWrites(r apiRequest) bool { return r.resource == "secrets" && isWrite(r) }

func TestHostileTenantBombToken(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	m := startManager(t, ns)
	signingSecret(t, ns, "datasette", "bomb-key")
	tok := newToken(ns, "bombed", "bot")
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	minted := string(outputSecret(t, ns, "bombed").Data[tokenKey])
	want := dstoken.Claims{Actor: "bot"}
	minter := dstoken.NewMinter([]byte("bomb-key"))

	small, smallInflated := forgedBomb(t, 1_000_000, 0, zlib.BestCompression)
	big, bigInflated := forgedBomb(t, 0, 740<<10, zlib.BestSpeed)
	t.Logf("bombs: %d bytes inflating to %s; %d bytes inflating to %s", len(small), mibs(int64(smallInflated)), len(big), mibs(int64(bigInflated)))
	cases := []struct {
		name  string
		token string
		// bound is the most the process may allocate while the forgery is read, the Secret
		// repaired and the test's own patch sent (which alone costs a few times the token's size).
		bound uint64
	}{
		{"1.4KB-bomb", small, 32 * mib},
		{"1MiB-bomb", big, 64 * mib},
		{"trailing-newlines", minted + "\n\n", 32 * mib},
		{"padded-signature", minted + "==", 32 * mib},
		{"padded-signature-3", minted + "===", 32 * mib},
	}
	cached := m.reconciler.Client
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before corev1.Secret
			if err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bombed"}, &before); err != nil {
				t.Fatal(err)
			}
			base := liveHeap()
			allocBefore := totalAlloc()
			peak := sampleHeap()
			start := time.Now()
			forgedVersion := setSecretToken(t, ns, "bombed", c.token)
			// Watch the repair through the manager's own cache (a version after the forgery's,
			// holding a canonical token): reading a 1 MiB Secret from the API server every few
			// milliseconds would cost more than what is measured.
			NewWithT(t).Eventually(func(g Gomega) {
				var s corev1.Secret
				g.Expect(cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bombed"}, &s)).To(Succeed())
				g.Expect(s.ResourceVersion).NotTo(BeElementOf(before.ResourceVersion, forgedVersion))
				g.Expect(minter.Compare(string(s.Data[tokenKey]), want).Canonical).To(BeTrue())
			}, 10*time.Second, 5*time.Millisecond).Should(Succeed())
			took := time.Since(start)
			peakBytes := peak.Stop()
			allocated := totalAlloc() - allocBefore
			t.Logf("%s (%d bytes): repaired in %v; allocated %s (bound %s); heap peak %s over the live heap before (%s)",
				c.name, len(c.token), took.Round(time.Millisecond), mibs(int64(allocated)), mibs(int64(c.bound)),
				mibs(int64(peakBytes)-int64(base)), mibs(int64(base)))
			if allocated > c.bound {
				t.Errorf("repairing %s allocated %s, over the bound of %s", c.name, mibs(int64(allocated)), mibs(int64(c.bound)))
			}
			stored := string(outputSecret(t, ns, "bombed").Data[tokenKey])
			if cmp := minter.Compare(stored, want); !cmp.Canonical {
				t.Errorf("the repaired token is not canonical: %+v", cmp)
			}
			verify(t, stored, "bomb-key")
			if tok := waitReason(t, key, datasettev1alpha1.ReasonIssued); conditionStatus(tok, datasettev1alpha1.ConditionStalled) == metav1.ConditionTrue {
				t.Errorf("Stalled after a repair: %+v", tok.Status.Conditions)
			}
		})
	}
	waitEvent(t, ns, "bombed", "Reminted")
}

func TestHostileTenantForeignLabelledSecrets(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	m := startManager(t, ns)
	signingSecret(t, ns, "datasette", "k")
	first := newToken(ns, "first", "bot")
	create(t, first)
	waitReason(t, client.ObjectKeyFromObject(first), datasettev1alpha1.ReasonIssued)
	cached := m.reconciler.Client
	countCached := func(g Gomega) int {
		var list corev1.SecretList
		// The cache keeps no labels of a Secret it does not own: count them all.
		g.Expect(cached.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		return len(list.Items)
	}

	blob := make([]byte, mib-4096)
	_, _ = rand.Read(blob)
	base := liveHeap()
	const unowned, forged = 100, 10
	for i := range unowned {
		create(t, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("foreign-%03d", i), Labels: map[string]string{managedByLabel: managedByValue}},
			Data:       map[string][]byte{"blob": blob},
		})
	}
	// A forged controller reference to a DatasetteToken that does not exist, and 1 MiB beside
	// the token key (a token of the largest size the cache keeps).
	forgedToken := dstoken.Prefix + strings.Repeat("A", dstoken.MaxTokenSize-len(dstoken.Prefix))
	for i := range forged {
		create(t, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: fmt.Sprintf("forged-%02d", i), Labels: map[string]string{managedByLabel: managedByValue},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: datasettev1alpha1.GroupVersion.String(), Kind: "DatasetteToken", Name: "ghost",
					UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)), Controller: ptr.To(true),
				}},
			},
			Data: map[string][]byte{"blob": blob[:mib-dstoken.MaxTokenSize-8192], tokenKey: []byte(forgedToken)},
		})
	}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(countCached(g)).To(Equal(1 + unowned + forged))
	}, eventually, 50*time.Millisecond).Should(Succeed())
	// The manager still reconciles.
	second := newToken(ns, "second", "bot")
	create(t, second)
	waitReason(t, client.ObjectKeyFromObject(second), datasettev1alpha1.ReasonIssued)

	var s corev1.Secret
	if err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "foreign-000"}, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Data) != 0 || len(s.Annotations) != 0 {
		t.Errorf("a labelled Secret that no DatasetteToken owns is cached with data %d keys, annotations %v", len(s.Data), s.Annotations)
	}
	if err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "forged-00"}, &s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Data["blob"]; ok {
		t.Errorf("a Secret with a forged owner reference is cached with its 1 MiB data key")
	}

	grown := int64(liveHeap()) - int64(base)
	const bound = 10 * mib
	total := int64(unowned*len(blob) + forged*mib)
	t.Logf("%d labelled Secrets without an owner and %d with a forged owner (%s of data, %d-byte forged tokens): live heap %s → grown by %s (bound %s)",
		unowned, forged, mibs(total), len(forgedToken), mibs(int64(base)), mibs(grown), mibs(bound))
	if grown > bound {
		t.Errorf("the live heap grew by %s with %d foreign labelled Secrets, over the bound of %s", mibs(grown), unowned+forged, mibs(bound))
	}

	// The most a forged owner reference can make the cache keep: a token of the largest size
	// kept, and annotations named by a forged template-keys record (the API server's 256 KiB
	// limit). The transform cannot tell a forged controller reference from a real one.
	annotations := map[string]string{}
	var record templateKeys
	for i := range 60 {
		k := fmt.Sprintf("n%02d", i)
		annotations[k] = strings.Repeat("v", 4000)
		record.Annotations = append(record.Annotations, k)
	}
	raw, _ := json.Marshal(record)
	annotations[annotationTemplateKeys] = string(raw)
	base = liveHeap()
	const worst = 10
	for i := range worst {
		create(t, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: fmt.Sprintf("worst-%02d", i), Labels: map[string]string{managedByLabel: managedByValue}, Annotations: annotations,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: datasettev1alpha1.GroupVersion.String(), Kind: "DatasetteToken", Name: "ghost",
					UID: types.UID(fmt.Sprintf("00000000-0000-0000-0001-%012d", i)), Controller: ptr.To(true),
				}},
			},
			Data: map[string][]byte{tokenKey: []byte(forgedToken)},
		})
	}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(countCached(g)).To(Equal(2 + unowned + forged + worst))
	}, eventually, 50*time.Millisecond).Should(Succeed())
	perSecret := (int64(liveHeap()) - int64(base)) / worst
	// Designed ceiling: the token (64 KiB), at most 64 template annotations kept, each long value
	// as a digest (trimOwnedSecret), with overhead.
	const ceiling = 112 << 10
	t.Logf("a labelled Secret with a forged owner reference, a %d-byte token and %d bytes of annotations named by a forged record: %.0f KiB of live heap each (ceiling %d KiB)",
		len(forgedToken), 60*4003+len(raw), float64(perSecret)/1024, ceiling>>10)
	if perSecret > ceiling {
		t.Errorf("a forged-owner Secret costs %d KiB of cache, over %d KiB", perSecret>>10, ceiling>>10)
	}
}

// builtinActionNames are the full names of Datasette's built-in actions.
var builtinActionNames = []datasettev1alpha1.Action{
	"view-instance", "view-database", "view-table", "view-query", "insert-row", "delete-row", "update-row",
	"execute-sql", "create-table", "alter-table", "drop-table", "create-view", "drop-view", "store-query",
}

func TestHostileTenantMaximalSpec(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	log := startManager(t, ns).requests
	signingSecret(t, ns, "datasette", "k")
	minter := dstoken.NewMinter([]byte("k"))

	// The most actions per database, over the schema's 1024 databases, that the size limits let
	// a token carry (the JSON value limit binds first).
	databases := func(actions int, nameOf func(i int) string) []datasettev1alpha1.DatabaseRestriction {
		out := make([]datasettev1alpha1.DatabaseRestriction, 1024)
		for i := range out {
			out[i] = datasettev1alpha1.DatabaseRestriction{Name: nameOf(i), Actions: builtinActionNames[:actions]}
		}
		return out
	}
	short := func(i int) string { return fmt.Sprintf("d%04d", i) }
	fits := 0
	for n := 1; n <= len(builtinActionNames); n++ {
		r := &datasettev1alpha1.Restrictions{Databases: databases(n, short)}
		if _, err := minter.MintChecked(dstoken.Claims{Actor: "bot", IssuedAt: time.Now().Unix(), Restrictions: restrictionsFromSpec(r)}); err != nil {
			break
		}
		fits = n
	}
	if fits == 0 {
		t.Fatal("no maximal spec fits")
	}
	maximal := newToken(ns, "maximal", "bot")
	maximal.Spec.Restrictions = &datasettev1alpha1.Restrictions{Databases: databases(fits, short)}
	start := time.Now()
	create(t, maximal)
	admitted := time.Since(start)
	var ready time.Duration
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(readyCondition(g, client.ObjectKeyFromObject(maximal)).Reason).To(Equal(datasettev1alpha1.ReasonIssued))
		ready = time.Since(start)
	}, eventually, 5*time.Millisecond).Should(Succeed())
	token := string(outputSecret(t, ns, "maximal").Data[tokenKey])
	v := verify(t, token, "k")
	t.Logf("maximal spec: 1024 databases × %d actions (%d JSON values), payload %d bytes, token %d bytes: created → Ready in %v (target < 1 s), of which %v for the API server to admit the DatasetteToken",
		fits, 1024*(fits+1), len(v.Payload), len(token), ready.Round(time.Millisecond), admitted.Round(time.Millisecond))
	// A timing goal is logged, not asserted (a shared machine can be slow); this bound only
	// catches work that grows out of all proportion (quadratic merging took 27 s per reconcile).
	if operator := ready - admitted; operator > 10*time.Second {
		t.Errorf("the maximal spec took %v after admission to be Ready", operator)
	}
	var payload struct {
		R struct {
			D map[string][]string `json:"d"`
		} `json:"_r"`
	}
	if err := json.Unmarshal(v.Payload, &payload); err != nil || len(payload.R.D) != 1024 || len(payload.R.D["d1023"]) != fits {
		t.Errorf("the token does not carry the 1024 databases (%v)", err)
	}

	// 1024 databases with names of 1000 characters (about 1 MB) are refused at admission: no
	// tenant makes the operator hold a megabyte per object.
	longName := func(i int) string { return fmt.Sprintf("d%04d-%s", i, strings.Repeat("x", 994)) }
	huge := newToken(ns, "huge", "bot")
	huge.Spec.Restrictions = &datasettev1alpha1.Restrictions{Databases: databases(1, longName)}
	if err := k8sClient.Create(ctx, huge); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "more than 131072 characters") {
		t.Errorf("a 1 MB restrictions spec is not refused at admission with the size message: %v", err)
	}

	// 120 such databases (120 000 characters) are admitted, but their token would be over the
	// size limits.
	waitQuiet(t, log)
	mark := log.mark()
	oversized := newToken(ns, "oversized", "bot")
	oversized.Spec.Restrictions = &datasettev1alpha1.Restrictions{Databases: databases(1, longName)[:120]}
	create(t, oversized)
	key := client.ObjectKeyFromObject(oversized)
	got := waitReason(t, key, datasettev1alpha1.ReasonInvalidSpec)
	if conditionStatus(got, datasettev1alpha1.ConditionStalled) != metav1.ConditionTrue || conditionStatus(got, datasettev1alpha1.ConditionReconciling) == metav1.ConditionTrue {
		t.Errorf("an oversized spec is not Stalled (only): %+v", got.Status.Conditions)
	}
	c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady)
	if !strings.Contains(c.Message, "too large") {
		t.Errorf("the message does not say the token is too large: %q", c.Message)
	}
	waitWarning(t, ns, "oversized", datasettev1alpha1.ReasonInvalidSpec)
	time.Sleep(time.Second) // any retry would come now
	if w := log.since(mark, secretWrites); len(w) != 0 {
		t.Errorf("Secret writes for an oversized spec: %+v", w)
	}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "oversized"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Secret was written for an oversized spec (err=%v)", err)
	}
	writes := log.since(mark, isWrite)
	t.Logf("oversized spec (%d bytes of database names): requests %v", 120*1000, log.summary(mark))
	for _, w := range writes {
		if w.resource != "datasettetokens/status" && w.resource != "events" {
			t.Errorf("unexpected write for an oversized spec: %+v", w)
		}
	}
	if len(writes) > 2 {
		t.Errorf("%d writes for an oversized spec, want the status and the event", len(writes))
	}
}

func TestHostileTenantBadSecretTemplate(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	m := startManager(t, ns)
	log := m.requests
	signingSecret(t, ns, "datasette", "k")

	tooMany := map[string]datasettev1alpha1.LabelValue{}
	for i := range 65 {
		tooMany[fmt.Sprintf("l%02d", i)] = "v"
	}
	for _, c := range []struct {
		name        string
		template    datasettev1alpha1.SecretTemplate
		wantMessage string
	}{
		{"label-key", datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"bad key": "v"}}, "label keys must be valid Kubernetes label keys"},
		{"label-key-prefix", datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"Example.COM/x": "v"}}, "label keys must be valid Kubernetes label keys"},
		{"label-key-name-64", datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{strings.Repeat("n", 64): "v"}}, "label keys must be valid Kubernetes label keys"},
		{"label-value", datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"team": "not valid!"}}, "spec.secretTemplate.labels.team"},
		{"label-value-64", datasettev1alpha1.SecretTemplate{Labels: map[string]datasettev1alpha1.LabelValue{"team": datasettev1alpha1.LabelValue(strings.Repeat("v", 64))}}, "Too long"},
		{"label-count", datasettev1alpha1.SecretTemplate{Labels: tooMany}, "must have at most 64"},
		{"annotation-key", datasettev1alpha1.SecretTemplate{Annotations: map[string]datasettev1alpha1.AnnotationValue{"-bad": "v"}}, "annotation keys must be valid Kubernetes annotation keys"},
		{"annotation-value-4097", datasettev1alpha1.SecretTemplate{Annotations: map[string]datasettev1alpha1.AnnotationValue{"note": datasettev1alpha1.AnnotationValue(strings.Repeat("v", 4097))}}, "Too long"},
	} {
		tok := newToken(ns, "refused-"+c.name, "bot")
		tok.Spec.SecretTemplate = &c.template
		err := k8sClient.Create(ctx, tok)
		switch {
		case err == nil:
			t.Errorf("%s: admitted %+v", c.name, c.template)
		case !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.wantMessage):
			t.Errorf("%s: refused with %v, want Invalid mentioning %q", c.name, err, c.wantMessage)
		}
	}

	// Admitted, and within Kubernetes' 256 KiB annotation limit as the template stands: the
	// operator's own annotations (actor, issue time, the record of the template's keys) push the
	// Secret's over, so the API server refuses the Secret.
	annotations := map[string]datasettev1alpha1.AnnotationValue{}
	const limit = 256 << 10
	for i := range 64 {
		key := fmt.Sprintf("a%02d", i)
		size := 4096 - len(key)
		if i == 0 {
			size -= 1 // one byte below the limit
		}
		annotations[key] = datasettev1alpha1.AnnotationValue(strings.Repeat("v", size))
	}
	tok := newToken(ns, "overfull", "bot")
	tok.Spec.SecretTemplate = &datasettev1alpha1.SecretTemplate{Annotations: annotations}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	var reason string
	NewWithT(t).Eventually(func(g Gomega) {
		reason = readyCondition(g, key).Reason
		g.Expect(reason).To(BeElementOf(datasettev1alpha1.ReasonSecretRejected, datasettev1alpha1.ReasonInvalidSpec))
	}, eventually, poll).Should(Succeed())
	got := waitReason(t, key, reason)
	c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady)
	t.Logf("template annotations of %d bytes (limit %d) plus the operator's: Ready=False %s: %q", limit-1, limit, reason, c.Message)
	if reason != datasettev1alpha1.ReasonSecretRejected {
		t.Errorf("reason %s, want %s (the template alone is within the limit; only the API server can see the Secret's total)", reason, datasettev1alpha1.ReasonSecretRejected)
	}
	if !strings.Contains(c.Message, "256") && !strings.Contains(strings.ToLower(c.Message), "too long") {
		t.Errorf("the message does not carry the API server's reason: %q", c.Message)
	}
	if conditionStatus(got, datasettev1alpha1.ConditionStalled) != metav1.ConditionTrue || conditionStatus(got, datasettev1alpha1.ConditionReconciling) == metav1.ConditionTrue {
		t.Errorf("a rejected Secret is not Stalled (only): %+v", got.Status.Conditions)
	}
	waitWarning(t, ns, "overfull", reason)
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "overfull"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Secret exists (err=%v)", err)
	}
	attempts := log.since(0, func(r apiRequest) bool { return secretWrites(r) && r.name != "datasette" })
	t.Logf("Secret writes attempted: %d", len(attempts))
	if len(attempts) > 2 {
		t.Errorf("%d Secret writes attempted for a spec the API server refuses, want 1", len(attempts))
	}
	settled := m.writes.Load()
	mark := log.mark()
	time.Sleep(3 * time.Second)
	if n := m.writes.Load() - settled; n != 0 {
		t.Errorf("%d writes in 3 s after SecretRejected (%v), want none: no retry loop", n, log.summary(mark))
	}
}

func TestKeyCacheReadsEachSecretOnce(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "first-key")
	m := startManager(t, ns, withMaxConcurrentReconciles(4))
	log := m.requests
	signingGets := func(name string, mark int) int {
		return len(log.since(mark, func(r apiRequest) bool { return r.verb == "get" && r.resource == "secrets" && r.name == name }))
	}
	const n = 20
	keys := make([]types.NamespacedName, 0, n+1)
	for i := range n {
		tok := newToken(ns, fmt.Sprintf("t%02d", i), "bot")
		create(t, tok)
		keys = append(keys, client.ObjectKeyFromObject(tok))
	}
	issued := map[types.NamespacedName]time.Time{}
	for _, k := range keys {
		issued[k] = waitReason(t, k, datasettev1alpha1.ReasonIssued).Status.IssuedAt.Time
	}
	first := signingGets("datasette", 0)
	t.Logf("%d tokens issued: %d GETs of their signing Secret", n, first)
	if first > 2 {
		t.Errorf("%d GETs of the signing Secret for %d tokens, want at most 2", first, n)
	}

	mark := log.mark()
	rotated := time.Now()
	var s corev1.Secret
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "datasette"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data[defaultSigningKey] = []byte("second-key")
	if err := k8sClient.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		for _, k := range keys {
			var out corev1.Secret
			g.Expect(k8sClient.Get(ctx, k, &out)).To(Succeed())
			_, err := dstoken.NewVerifier([]byte("second-key")).Verify(string(out.Data[tokenKey]), dstoken.VerifyOptions{Now: time.Now()})
			g.Expect(err).NotTo(HaveOccurred(), "token %s", k.Name)
		}
	}, 10*time.Second, 20*time.Millisecond).Should(Succeed())
	after := signingGets("datasette", mark)
	t.Logf("rotation: all %d re-minted in %v with %d GETs of the signing Secret", n, time.Since(rotated).Round(time.Millisecond), after)
	if after > 2 {
		t.Errorf("%d GETs of the signing Secret after a rotation for %d tokens, want at most 2", after, n)
	}
	for _, k := range keys {
		waitReissued(t, k, issued[k].Add(-time.Second)) // re-minted, possibly in the same second
	}
	waitEvent(t, ns, "datasette", "TokensReminted")

	// A token naming a Secret that does not exist yet finds it once it does.
	late := newToken(ns, "late", "bot")
	late.Spec.SigningSecretRef.Name = "later"
	create(t, late)
	lateKey := client.ObjectKeyFromObject(late)
	waitReason(t, lateKey, datasettev1alpha1.ReasonSigningSecretNotFound)
	signingSecret(t, ns, "later", "late-key")
	waitReason(t, lateKey, datasettev1alpha1.ReasonIssued)
	verify(t, string(outputSecret(t, ns, "late").Data[tokenKey]), "late-key")
	if size := m.reconciler.keys.size(); size != 2 {
		t.Errorf("the key cache holds %d Secrets, want 2", size)
	}

	// Deleting every token forgets every key.
	for _, k := range append(keys, lateKey) {
		tok := &datasettev1alpha1.DatasetteToken{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
		if err := k8sClient.Delete(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	NewWithT(t).Eventually(m.reconciler.keys.size, eventually, poll).Should(BeZero())
}

func TestStaleSecretCleanupWithoutList(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "k")
	log := startManager(t, ns).requests
	tok := newToken(ns, "moving", "bot")
	tok.Spec.SecretName = "name-00"
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	// Some unrelated Secrets in the namespace, owned and not.
	for i := range 5 {
		other := newToken(ns, fmt.Sprintf("other-%d", i), "bot")
		create(t, other)
		waitReason(t, client.ObjectKeyFromObject(other), datasettev1alpha1.ReasonIssued)
		signingSecret(t, ns, fmt.Sprintf("unrelated-%d", i), "x")
	}

	mark := log.mark()
	const moves = 50
	start := time.Now()
	for i := 1; i <= moves; i++ {
		name := fmt.Sprintf("name-%02d", i)
		before := fmt.Sprintf("name-%02d", i-1)
		if err := k8sClient.Get(ctx, key, tok); err != nil {
			t.Fatal(err)
		}
		tok.Spec.SecretName = name
		if err := k8sClient.Update(ctx, tok); err != nil {
			t.Fatal(err)
		}
		NewWithT(t).Eventually(func(g Gomega) {
			var cur datasettev1alpha1.DatasetteToken
			g.Expect(k8sClient.Get(ctx, key, &cur)).To(Succeed())
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
			g.Expect(cur.Status.SecretName).To(Equal(name))
			err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: before}, &corev1.Secret{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Secret %s still exists (err=%v)", before, err)
		}, eventually, 10*time.Millisecond).Should(Succeed())
		verify(t, string(outputSecret(t, ns, name).Data[tokenKey]), "k")
	}
	took := time.Since(start)
	lists := log.since(mark, func(r apiRequest) bool { return r.verb == "list" && r.resource == "secrets" })
	t.Logf("%d secretName changes in %v: requests %v", moves, took.Round(time.Millisecond), log.summary(mark))
	if len(lists) != 0 {
		t.Errorf("%d LISTs of Secrets on the hot path, want 0", len(lists))
	}
	deletes := log.since(mark, func(r apiRequest) bool { return r.verb == "delete" && r.resource == "secrets" })
	if len(deletes) != moves {
		t.Errorf("%d Secret deletes for %d moves", len(deletes), moves)
	}
	var owned corev1.SecretList
	if err := k8sClient.List(ctx, &owned, client.InNamespace(ns), client.MatchingLabels{managedByLabel: managedByValue}); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(owned.Items))
	for _, s := range owned.Items {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	want := []string{"name-50", "other-0", "other-1", "other-2", "other-3", "other-4"}
	if !slices.Equal(names, want) {
		t.Errorf("managed Secrets %v, want %v", names, want)
	}
	for i := range 5 {
		outputSecret(t, ns, fmt.Sprintf("unrelated-%d", i)) // never touched
	}
}

func TestOwnSecretWriteCausesNoAPICall(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "k")
	log := startManager(t, ns, withSyncPeriod(time.Second), withMaxConcurrentReconciles(4)).requests
	// Wait for the caches to sync and their watches to start.
	time.Sleep(time.Second)
	mark := log.mark()
	const n = 10
	keys := make([]types.NamespacedName, 0, n)
	for i := range n {
		tok := newToken(ns, fmt.Sprintf("t%02d", i), "bot")
		create(t, tok)
		keys = append(keys, client.ObjectKeyFromObject(tok))
	}
	for _, k := range keys {
		waitReason(t, k, datasettev1alpha1.ReasonIssued)
	}
	waitQuiet(t, log)
	burst := log.since(mark, func(r apiRequest) bool { return r.verb != "watch" })
	t.Logf("burst of %d tokens: requests %v", n, log.summary(mark))
	count := func(verb, resource string) int {
		c := 0
		for _, r := range burst {
			if r.verb == verb && r.resource == resource {
				c++
			}
		}
		return c
	}
	if c := count("create", "secrets"); c != n {
		t.Errorf("%d Secret creates for %d tokens", c, n)
	}
	if c := count("update", "datasettetokens/status"); c != n {
		t.Errorf("%d status updates for %d tokens, want one each (a second means a reconcile wrote from a stale cache)", c, n)
	}
	if c := count("get", "secrets"); c > 1 {
		t.Errorf("%d GETs of Secrets during the burst, want the signing Secret's one", c)
	}

	mark = log.mark()
	time.Sleep(2 * time.Second) // two resyncs of every token
	if reqs := log.since(mark, nil); len(reqs) != 0 {
		t.Errorf("%d requests while the cache resynced settled tokens, want 0: %v", len(reqs), log.summary(mark))
	}
}
