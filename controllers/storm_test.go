package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// faultInjector answers a share of the requests it sees itself, with 429, 500 or 409, and
// forwards the rest to the API server. It starts disabled.
type faultInjector struct {
	rate     float64
	enabled  atomic.Bool
	mu       sync.Mutex
	rng      *rand.Rand
	injected map[int]int // status code -> requests answered with it
	total    atomic.Int64
}

var faultCodes = []struct {
	code   int
	reason metav1.StatusReason
}{
	{http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests},
	{http.StatusInternalServerError, metav1.StatusReasonInternalError},
	{http.StatusConflict, metav1.StatusReasonConflict},
}

// fault returns the response that replaces req's, or nil to send it on.
func (f *faultInjector) fault(req *http.Request) *http.Response {
	if !f.enabled.Load() {
		return nil
	}
	f.total.Add(1)
	f.mu.Lock()
	hit, pick := f.rng.Float64() < f.rate, f.rng.IntN(len(faultCodes))
	if hit {
		f.injected[faultCodes[pick].code]++
	}
	f.mu.Unlock()
	if !hit {
		return nil
	}
	c := faultCodes[pick]
	body, _ := json.Marshal(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Code: int32(c.code), Reason: c.reason, Message: "injected by the test: " + string(c.reason)})
	return &http.Response{StatusCode: c.code, Status: fmt.Sprintf("%d %s", c.code, http.StatusText(c.code)),
		Header: http.Header{"Content-Type": []string{"application/json"}}, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

func (f *faultInjector) counts() (total int64, injected map[int]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	injected = map[int]int{}
	for k, v := range f.injected {
		injected[k] = v
	}
	return f.total.Load(), injected
}

// activeFaults is the fault injector of the running test, if any: startManager's transport asks
// it about every request of the manager (its client, caches, watches and events).
var activeFaults atomic.Pointer[faultInjector]

// injectedFault is the response that replaces req's, or nil.
func injectedFault(req *http.Request) *http.Response {
	if f := activeFaults.Load(); f != nil {
		return f.fault(req)
	}
	return nil
}

// withFaults sends the manager's requests through f until the test ends.
func withFaults(t *testing.T, f *faultInjector) managerOption {
	activeFaults.Store(f)
	t.Cleanup(func() { activeFaults.Store(nil) })
	return func(*ctrl.Options, *DatasetteTokenReconciler) {}
}

// reconcileTotal is how many DatasetteToken reconciles every manager of the process has run.
func reconcileTotal(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range families {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "datasettetoken" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// stormTokens is how many tokens the storm test serves.
const stormTokens = 500

// maxReconcilesPerToken bounds the reconciles per token through an issue and a rotation under
// the storm: a hot loop would run thousands.
const maxReconcilesPerToken = 12

// TestAPIErrorStorm answers 20 % of the manager's requests with 429, 500 or 409: all tokens
// still reach Ready, each Secret holds exactly one valid token, the reconciles per token stay
// bounded, and no transient error is logged at error level. Then the key rotates, under the
// same storm.
func TestAPIErrorStorm(t *testing.T) {
	requireEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	faults := &faultInjector{rate: 0.2, rng: rand.New(rand.NewPCG(17, 17)), injected: map[int]int{}}
	signing := signingSecret(t, ns, "datasette", "storm-key")
	logMark := managerLogs.Len()
	reconcilesBefore := reconcileTotal(t)
	rotationsBefore := testutil.ToFloat64(tokenMints.WithLabelValues(string(mintRotation)))
	startManager(t, ns, withFaults(t, faults), withMaxConcurrentReconciles(8))
	faults.enabled.Store(true)
	start := time.Now()
	for i := range stormTokens {
		create(t, newToken(ns, fmt.Sprintf("tok-%03d", i), fmt.Sprintf("bot-%03d", i)))
	}

	// allServed checks that every token is Ready for its generation and its Secret holds exactly
	// one token, valid under key, issued when the status says.
	allServed := func(g Gomega, key string) {
		var toks datasettev1alpha1.DatasetteTokenList
		g.Expect(k8sClient.List(ctx, &toks, client.InNamespace(ns))).To(Succeed())
		g.Expect(toks.Items).To(HaveLen(stormTokens))
		var secrets corev1.SecretList
		g.Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{managedByLabel: managedByValue})).To(Succeed())
		byName := map[string]*corev1.Secret{}
		for i := range secrets.Items {
			byName[secrets.Items[i].Name] = &secrets.Items[i]
		}
		verifier := dstoken.NewVerifier([]byte(key))
		for _, tok := range toks.Items {
			c := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady)
			g.Expect(c).NotTo(BeNil(), tok.Name)
			g.Expect(c.Reason).To(Equal(datasettev1alpha1.ReasonIssued), tok.Name)
			g.Expect(tok.Status.ObservedGeneration).To(Equal(tok.Generation), tok.Name)
			s := byName[tok.Name]
			g.Expect(s).NotTo(BeNil(), tok.Name)
			g.Expect(s.Data).To(HaveLen(1), tok.Name)
			v, err := verifier.Verify(string(s.Data[tokenKey]), dstoken.VerifyOptions{Now: time.Now()})
			g.Expect(err).NotTo(HaveOccurred(), tok.Name)
			actor, _ := json.Marshal(tok.Spec.Actor)
			g.Expect(string(v.Actor.ID)).To(Equal(string(actor)), tok.Name)
			g.Expect(tok.Status.IssuedAt).NotTo(BeNil(), tok.Name)
			g.Expect(tok.Status.IssuedAt.Unix()).To(Equal(v.IssuedAt), tok.Name)
		}
	}
	g.Eventually(func(g Gomega) { allServed(g, "storm-key") }, 3*time.Minute, time.Second).Should(Succeed())
	issued := time.Since(start)
	reconcilesIssue := reconcileTotal(t) - reconcilesBefore

	rotated := time.Now()
	signing.StringData = map[string]string{defaultSigningKey: "storm-key-2"}
	g.Expect(k8sClient.Update(ctx, signing)).To(Succeed())
	g.Eventually(func(g Gomega) { allServed(g, "storm-key-2") }, 3*time.Minute, time.Second).Should(Succeed())
	rotation := time.Since(rotated)
	faults.enabled.Store(false)
	reconciles := reconcileTotal(t) - reconcilesBefore
	total, injected := faults.counts()
	injectedAll := injected[429] + injected[500] + injected[409]
	t.Logf("storm: %d of %d requests answered by the injector (429: %d, 500: %d, 409: %d); %d tokens Ready in %s, re-minted after a rotation in %s; %.0f reconciles (%.1f per token; %.1f for the issue)",
		injectedAll, total, injected[429], injected[500], injected[409], stormTokens, issued.Round(time.Millisecond), rotation.Round(time.Millisecond),
		reconciles, reconciles/stormTokens, reconcilesIssue/stormTokens)

	if injectedAll < int(total)/10 {
		t.Errorf("only %d of %d requests failed: the storm did not happen", injectedAll, total)
	}
	if perToken := reconciles / stormTokens; perToken > maxReconcilesPerToken {
		t.Errorf("%.1f reconciles per token, over %d", perToken, maxReconcilesPerToken)
	}
	// A rotation is counted once per token, also when its status write failed and was retried. The
	// metric is the process's: mints of a concurrent test would add to it, none run here.
	if got := testutil.ToFloat64(tokenMints.WithLabelValues(string(mintRotation))) - rotationsBefore; got != stormTokens {
		t.Errorf("mints_total{reason=rotation} rose by %.0f, want %d", got, stormTokens)
	}
	logs := managerLogs.Since(logMark)
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "\tERROR\t") && strings.Contains(line, ns) {
			t.Errorf("logged at error level during the storm: %s", truncate(line, 400))
		}
	}
}
