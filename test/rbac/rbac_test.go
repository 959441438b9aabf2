// Package rbac tests that the operator runs with nothing but the RBAC its installer grants: it renders
// the installer with kustomize, applies only its ServiceAccount, roles and bindings to a real
// kube-apiserver (envtest), runs the manager in-process as that ServiceAccount (impersonation) and
// drives the end-to-end scenario, asserting that no request was forbidden. A negative control runs the
// same scenario with a reduced role and asserts that it fails, so the test is known to be able to fail.
package rbac

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/testenv"
)

// enforceOwnerReferencePermissions turns on kube-apiserver's OwnerReferencesPermissionEnforcement
// admission plugin (on in OpenShift, for one): creating a Secret with a blockOwnerDeletion owner
// reference to a DatasetteToken then also needs update on datasettetokens/finalizers. The RBAC
// generated today lacks it, and the scenario fails with "cannot set blockOwnerDeletion if an
// ownerReference refers to a resource you can't set finalizers on" without it.
const enforceOwnerReferencePermissions = true

var (
	testEnv  *envtest.Environment
	adminCfg *rest.Config
	// admin is the envtest administrator's client: the test's own hands, never the operator's.
	admin  client.Client
	scheme = runtime.NewScheme()
	// logs holds everything every manager (and client-go, through klog) logs.
	logs testenv.SyncBuffer
	// repoRoot is the repository's root directory.
	repoRoot string
	// kustomizeBin is the kustomize binary that renders the installer.
	kustomizeBin string
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, datasettev1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	logger := zap.New(zap.WriteTo(&logs), zap.UseDevMode(true))
	logf.SetLogger(logger)
	// Leader election, event broadcasting and informers report their API errors through klog.
	klog.SetLogger(logger.WithName("klog"))

	var err error
	if repoRoot, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		panic(err)
	}
	assets, missing := testenv.Assets(repoRoot), []string(nil)
	if assets == "" {
		missing = append(missing, "no control plane binaries: run `make envtest` (it builds kube-apiserver and etcd into bin/k8s/), or set KUBEBUILDER_ASSETS")
	}
	if kustomizeBin = kustomizePath(); kustomizeBin == "" {
		missing = append(missing, "no kustomize: run `make kustomize` (it builds bin/kustomize), or set KUSTOMIZE")
	}
	if len(missing) > 0 {
		msg := strings.Join(missing, "; ")
		if testenv.Required() {
			fmt.Fprintln(os.Stderr, "FAIL:", msg)
			return 1
		}
		fmt.Fprintln(os.Stderr, "RBAC tests will be skipped:", msg)
		return m.Run()
	}

	// The CRDs come from the installer too.
	inst, err := render(filepath.Join(repoRoot, "config", "default"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDs:                     inst.crds(),
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if enforceOwnerReferencePermissions {
		testEnv.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	}
	if adminCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting the envtest control plane:", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the envtest control plane:", err)
		}
	}()
	if admin, err = client.New(adminCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: creating a client:", err)
		return 1
	}
	return m.Run()
}

// kustomizePath finds kustomize: KUSTOMIZE, else what `make kustomize` built into bin/.
func kustomizePath() string {
	if p := os.Getenv("KUSTOMIZE"); p != "" {
		return p
	}
	p := filepath.Join(repoRoot, "bin", "kustomize")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// requireEnvtest skips a test when the control plane or kustomize was not found outside `make test`
// and CI (there, TestMain has already failed the run).
func requireEnvtest(t *testing.T) {
	t.Helper()
	if testEnv == nil {
		t.Skip("no envtest control plane or no kustomize: run `make envtest kustomize`")
	}
}

// requireKustomize skips a test that only renders, under the same rule.
func requireKustomize(t *testing.T) {
	t.Helper()
	if kustomizeBin == "" {
		t.Skip("no kustomize: run `make kustomize`")
	}
}

// TestInstallerRBAC: config/default's RBAC is enough for the whole scenario, with leader election.
func TestInstallerRBAC(t *testing.T) {
	requireEnvtest(t)
	inst := mustRender(t, filepath.Join(repoRoot, "config", "default"))
	if v, _ := inst.flag("leader-elect"); v != "true" {
		t.Fatalf("the installer's manager runs without --leader-elect (args %q): this test expects to exercise its leader-election Role", inst.args)
	}
	install(t, inst)
	m := startManager(t, inst)

	newScenario(newNamespace(t, "rbac-default-")).run(t)
	m.assertNoRBACErrors(t)
}

// TestReducedRoleFails is the negative control: the same scenario, under the installer's RBAC less
// the right to change a Secret, must fail and be seen failing by the checks TestInstallerRBAC relies on.
func TestReducedRoleFails(t *testing.T) {
	requireEnvtest(t)
	inst := mustRender(t, filepath.Join(repoRoot, "config", "default"))
	if removed := inst.withoutVerbs("secrets", "update", "patch"); removed == 0 {
		t.Fatal("the installer grants neither update nor patch on secrets: choose another reduction for this control")
	}
	install(t, inst)
	m := startManager(t, inst)

	s := newScenario(newNamespace(t, "rbac-reduced-"))
	s.timeout = 5 * time.Second
	failed, err := s.tryAll()
	if err == nil {
		t.Fatal("the scenario passed without the right to update Secrets: the RBAC test cannot tell a missing permission")
	}
	t.Logf("as expected, step %q failed: %v", failed, err)
	if lines := m.rbacErrors(); len(lines) == 0 {
		t.Errorf("no forbidden request in the manager's logs, although step %q failed", failed)
	}
	// A write the API server forbids is not retried in a loop: the token says so in its status.
	var tok datasettev1alpha1.DatasetteToken
	if err := admin.Get(context.Background(), s.token, &tok); err != nil {
		t.Fatal(err)
	}
	ready := meta.FindStatusCondition(tok.Status.Conditions, "Ready")
	if ready == nil || ready.Reason != "SecretRejected" || !strings.Contains(ready.Message, "forbidden") {
		t.Errorf("Ready = %+v, want reason SecretRejected quoting the API server's \"forbidden\"", ready)
	}
}

// TestNamespacedInstallerRBAC: config/namespaced, with its watch list set to the test's namespaces,
// is enough for the whole scenario in a watched namespace, and leaves other namespaces alone.
func TestNamespacedInstallerRBAC(t *testing.T) {
	requireEnvtest(t)
	watched := []string{newNamespace(t, "rbac-watched-"), newNamespace(t, "rbac-watched-")}
	inst := renderNamespaced(t, watched)
	install(t, inst)

	// A token outside the watch list: the manager must neither need nor use rights there.
	outside := newScenario(newNamespace(t, "rbac-unwatched-"))
	outside.createSigningSecret(t)
	outside.createToken(t, outside.token.Name, outside.secretName)

	m := startManager(t, inst)
	newScenario(watched[0]).run(t)
	m.assertNoRBACErrors(t)
	if tok := outside.get(t, outside.token); len(tok.Status.Conditions) > 0 {
		t.Errorf("the manager reconciled a DatasetteToken outside --watch-namespaces: %+v", tok.Status.Conditions)
	}
}

// TestNamespacedOverlayConsistent: config/namespaced grants the manager role only in the namespaces
// it watches, and cluster-wide nothing over Secrets or DatasetteTokens.
func TestNamespacedOverlayConsistent(t *testing.T) {
	requireKustomize(t)
	inst := mustRender(t, filepath.Join(repoRoot, "config", "namespaced"))
	list, ok := inst.flag("watch-namespaces")
	if !ok || list == "" {
		t.Fatalf("config/namespaced's manager has no --watch-namespaces (args %q)", inst.args)
	}
	watch := strings.Split(list, ",")
	slices.Sort(watch)
	if got := inst.managerRoleNamespaces(); !slices.Equal(got, watch) {
		t.Errorf("--watch-namespaces=%s but the manager role is bound in namespaces %q: keep watched_namespaces.yaml in step", list, got)
	}
	for _, rule := range inst.clusterWideRules() {
		for _, res := range rule.Resources {
			if res == "*" || res == "secrets" || strings.HasPrefix(res, "datasettetokens") || res == "events" {
				t.Errorf("config/namespaced grants %v on %q cluster-wide", rule.Verbs, res)
			}
		}
	}
}
