package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// TestSignerKeyNameFlipPaced: a tenant who flips its signer's spec.secretRef.key between two
// keys of one Secret (or spec.secretRef.name between two Secrets) twice a second must re-mint
// its tokens once per renewal floor, as when it rewrites the key itself.
func TestSignerKeyNameFlipPaced(t *testing.T) {
	requireEnvtest(t)
	for _, flip := range []string{"key", "name"} {
		t.Run(flip, func(t *testing.T) {
			ns := newNamespace(t)
			create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a"}, StringData: map[string]string{"a": "ka", "b": "kb", defaultSigningKey: "ka"}})
			create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b"}, StringData: map[string]string{defaultSigningKey: "kb"}})
			const floor, tokens, changes = 5 * time.Second, 10, 20
			m := startManager(t, ns, withFloor(floor))
			ref := func(i int) datasettev1alpha1.SecretKeyRef {
				if flip == "key" {
					return datasettev1alpha1.SecretKeyRef{Name: "a", Key: []string{"a", "b"}[i%2]}
				}
				return datasettev1alpha1.SecretKeyRef{Name: []string{"a", "b"}[i%2]}
			}
			signer := &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "flip"},
				Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: ref(0)}}
			create(t, signer)
			keys := tokensUnderSigner(t, ns, "flip", tokens)
			mark := m.requests.mark()
			start := time.Now()
			for i := 1; i <= changes; i++ {
				NewWithT(t).Eventually(func() error {
					var s datasettev1alpha1.DatasetteSigner
					if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(signer), &s); err != nil {
						return err
					}
					s.Spec.SecretRef = ref(i)
					return k8sClient.Update(ctx, &s)
				}, eventually, poll).Should(Succeed())
				time.Sleep(500 * time.Millisecond)
			}
			churn := time.Since(start)
			time.Sleep(2 * floor)
			waitQuiet(t, m.requests)
			effective := 1 + int((churn+floor-1)/floor)
			secretWrites := len(m.requests.since(mark, secretWrites))
			t.Logf("%d flips of spec.secretRef.%s in %s (floor %s): %d Secret writes for %d tokens; all requests: %v",
				changes, flip, churn.Round(time.Millisecond), floor, secretWrites, tokens, m.requests.summary(mark))
			if secretWrites > effective*tokens {
				t.Errorf("%d Secret writes; want at most %d (%d tokens, one re-mint per floor)", secretWrites, effective*tokens, tokens)
			}
			for _, key := range keys { // the last key source wins: "ka", key a of Secret a, or Secret a
				NewWithT(t).Eventually(func(g Gomega) {
					var s corev1.Secret
					g.Expect(k8sClient.Get(ctx, key, &s)).To(Succeed())
					_, err := dstoken.NewVerifier([]byte("ka")).Verify(string(s.Data[tokenKey]), dstoken.VerifyOptions{Now: time.Now()})
					g.Expect(err).NotTo(HaveOccurred())
				}, 2*floor+eventually, poll).Should(Succeed())
				waitReason(t, key, datasettev1alpha1.ReasonIssued)
			}
		})
	}
}
