package controllers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// leaseName is the manager's LeaderElectionID.
const leaseName = "datasette-token-operator.datasette.io"

// Leader election settings of the failover test: the standby must hold the lease within
// failoverLease + 2 s of the leader's death.
const (
	failoverLease = 4 * time.Second
	failoverRenew = 3 * time.Second
	failoverRetry = 250 * time.Millisecond
)

// failoverTokens is how many tokens the failover test rotates: 150, or FAILOVER_TOKENS
// (make bench-failover runs 2 000).
func failoverTokens(t *testing.T) int {
	t.Helper()
	v := os.Getenv("FAILOVER_TOKENS")
	if v == "" {
		return 150
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10 || n > 20000 {
		t.Fatalf("FAILOVER_TOKENS=%q: want a number from 10 to 20000", v)
	}
	return n
}

// buildManager builds cmd/manager into dir.
func buildManager(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "manager")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/manager").CombinedOutput()
	if err != nil {
		t.Fatalf("building cmd/manager: %v\n%s", err, out)
	}
	return bin
}

// writeKubeconfig writes a kubeconfig for the envtest control plane.
func writeKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	c.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	c.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	c.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatalf("writing a kubeconfig: %v", err)
	}
	return path
}

// startManagerProcess starts the manager binary electing in ns and confined to it.
func startManagerProcess(t *testing.T, bin, kubeconfig, ns, logPath string) *exec.Cmd {
	t.Helper()
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(bin, "--kubeconfig="+kubeconfig, "--watch-namespaces="+ns,
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--leader-elect", "--leader-election-namespace="+ns,
		"--leader-election-lease-duration="+failoverLease.String(),
		"--leader-election-renew-deadline="+failoverRenew.String(),
		"--leader-election-retry-period="+failoverRetry.String())
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the manager: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// leaseHolder returns the identity holding the manager's lease in ns, "" when none.
func leaseHolder(ns string) string {
	var lease coordinationv1.Lease
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: leaseName}, &lease); err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// tokenWatch records every distinct token each output Secret of a namespace held that verifies
// under a key.
type tokenWatch struct {
	mu     sync.Mutex
	tokens map[string]map[string]bool // Secret name -> tokens seen
}

func (w *tokenWatch) count() (secrets, tokens int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, seen := range w.tokens {
		tokens += len(seen)
	}
	return len(w.tokens), tokens
}

// watchTokens follows the Secrets of ns until ctx ends, recording the tokens that verify under key.
func watchTokens(t *testing.T, ctx context.Context, ns, key string) *tokenWatch {
	t.Helper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	wi, err := wc.Watch(ctx, &corev1.SecretList{}, client.InNamespace(ns), client.MatchingLabels{managedByLabel: managedByValue})
	if err != nil {
		t.Fatalf("watching Secrets: %v", err)
	}
	w := &tokenWatch{tokens: map[string]map[string]bool{}}
	verifier := dstoken.NewVerifier([]byte(key))
	go func() {
		defer wi.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-wi.ResultChan():
				if !ok {
					return
				}
				s, isSecret := e.Object.(*corev1.Secret)
				if !isSecret || e.Type == watch.Deleted {
					continue
				}
				token := string(s.Data[tokenKey])
				if _, err := verifier.Verify(token, dstoken.VerifyOptions{Now: time.Now()}); err != nil {
					continue
				}
				w.mu.Lock()
				if w.tokens[s.Name] == nil {
					w.tokens[s.Name] = map[string]bool{}
				}
				w.tokens[s.Name][token] = true
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// TestLeaderFailoverMidRotation runs two managers (processes built from cmd/manager) with leader
// election, SIGKILLs the leader in the middle of a key rotation, and checks that the standby
// takes the lease within the lease duration + 2 s, finishes the rotation, and that no token is
// minted twice.
func TestLeaderFailoverMidRotation(t *testing.T) {
	requireEnvtest(t)
	g := NewWithT(t)
	dir := t.TempDir()
	bin, kubeconfig := buildManager(t, dir), writeKubeconfig(t, dir)
	ns := newNamespace(t)
	signing := signingSecret(t, ns, "datasette", "old-key")
	n := failoverTokens(t)

	leader := startManagerProcess(t, bin, kubeconfig, ns, filepath.Join(dir, "leader.log"))
	g.Eventually(func() string { return leaseHolder(ns) }, eventually, poll).ShouldNot(BeEmpty())
	first := leaseHolder(ns)
	startManagerProcess(t, bin, kubeconfig, ns, filepath.Join(dir, "standby.log"))

	keys := make([]types.NamespacedName, 0, n)
	for i := range n {
		tok := newToken(ns, fmt.Sprintf("tok-%03d", i), fmt.Sprintf("bot-%03d", i))
		create(t, tok)
		keys = append(keys, client.ObjectKeyFromObject(tok))
	}
	g.Eventually(func(g Gomega) {
		var toks datasettev1alpha1.DatasetteTokenList
		g.Expect(k8sClient.List(ctx, &toks, client.InNamespace(ns))).To(Succeed())
		ready := 0
		for _, tok := range toks.Items {
			if c := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady); c != nil && c.Reason == datasettev1alpha1.ReasonIssued {
				ready++
			}
		}
		g.Expect(ready).To(Equal(n))
	}, 5*time.Minute, time.Second).Should(Succeed())
	if holder := leaseHolder(ns); holder != first {
		t.Fatalf("the lease moved from %s to %s before the test killed anyone", first, holder)
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w := watchTokens(t, watchCtx, ns, "new-key")
	signing.StringData = map[string]string{defaultSigningKey: "new-key"}
	g.Expect(k8sClient.Update(ctx, signing)).To(Succeed())
	g.Eventually(func() int { done, _ := w.count(); return done }, eventually, time.Millisecond).Should(BeNumerically(">=", n/10))
	if err := leader.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	atKill, _ := w.count()

	g.Eventually(func() string { return leaseHolder(ns) }, failoverLease+10*time.Second, 20*time.Millisecond).
		ShouldNot(BeElementOf(first, ""))
	takeover := time.Since(killed)
	g.Eventually(func() int { done, _ := w.count(); return done }, 5*time.Minute, poll).Should(Equal(n))
	done := time.Since(killed)
	time.Sleep(2 * time.Second) // any late second mint would show now
	secrets, tokens := w.count()
	t.Logf("failover: leader SIGKILLed with %d of %d tokens re-minted; the standby held the lease %s later (lease %s, renew %s, retry %s) and the rotation finished %s after the kill; %d tokens minted under the new key for %d Secrets",
		atKill, n, takeover.Round(time.Millisecond), failoverLease, failoverRenew, failoverRetry, done.Round(time.Millisecond), tokens, secrets)
	if bound := failoverLease + 2*time.Second; takeover > bound {
		t.Errorf("the standby took the lease %s after the leader died, over %s", takeover, bound)
	}
	if atKill >= n {
		t.Errorf("the leader had finished the rotation before it was killed: nothing was left to the standby")
	}
	if tokens != secrets {
		t.Errorf("%d tokens minted under the new key for %d Secrets: %d minted twice", tokens, secrets, tokens-secrets)
	}
	for _, key := range keys {
		tok := waitReason(t, key, datasettev1alpha1.ReasonIssued)
		token := string(outputSecret(t, ns, key.Name).Data[tokenKey])
		v := verify(t, token, "new-key")
		if tok.Status.IssuedAt == nil || tok.Status.IssuedAt.Unix() != v.IssuedAt {
			t.Errorf("%s: status.issuedAt %v, the Secret's token was issued at %d", key.Name, tok.Status.IssuedAt, v.IssuedAt)
		}
	}
}
