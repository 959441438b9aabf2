package rbac

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestAdmissionPolicyConfinesManager: acting as the manager's ServiceAccount (impersonated),
// under the installer's RBAC and ValidatingAdmissionPolicy, a rollout restart passes; a change
// of replicas or image, and a Secret that is not the operator's, are refused by the API server
// although RBAC allows them.
func TestAdmissionPolicyConfinesManager(t *testing.T) {
	requireEnvtest(t)
	inst := mustRender(t, filepath.Join(repoRoot, "config", "default"))
	var policies int
	for _, o := range inst.rbac() {
		switch o.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			policies++
		}
	}
	if policies != 2 {
		t.Fatalf("config/default renders %d ValidatingAdmissionPolicy objects, want a policy and its binding", policies)
	}
	if n := mustRender(t, filepath.Join(repoRoot, "config", "namespaced")); len(n.rbac()) == 0 || !rendersPolicy(n) {
		t.Fatal("config/namespaced does not render the ValidatingAdmissionPolicy")
	}
	install(t, inst)
	ctx := context.Background()
	manager := managerClient(t, inst)
	ns := newNamespace(t, "vap-")
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "datasette"}}}},
	}}
	if err := admin.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	patch := func(obj client.Object, p string) error {
		return manager.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(p)))
	}
	refused := func(err error) bool { return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) }
	g := NewWithT(t)
	// The policy takes effect once the API server has compiled it.
	replicas := 1
	g.Eventually(func() error {
		replicas++ // a new value each time: one that passed before the policy was in force is no change
		return patch(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
	}, 30*time.Second, 200*time.Millisecond).Should(Satisfy(refused), "a change of replicas passed: policy status %s", policyStatus(t))

	web := func() client.Object {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	}
	if err := patch(web(), `{"spec":{"template":{"metadata":{"annotations":{"datasette.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}`); err != nil {
		t.Errorf("a rollout restart was refused: %v", err)
	}
	if err := patch(web(), `{"spec":{"template":{"metadata":{"annotations":{"datasette.io/restartedAt":"2026-01-02T00:00:00Z"}}}}}`); err != nil {
		t.Errorf("a second rollout restart was refused: %v", err)
	}
	for what, p := range map[string]string{
		"image":               `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"evil"}]}}}}`,
		"another annotation":  `{"spec":{"template":{"metadata":{"annotations":{"other":"x"}}}}}`,
		"a label of the pods": `{"spec":{"template":{"metadata":{"labels":{"app":"web","x":"y"}}}}}`,
		"the strategy":        `{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`,
		"its labels":          `{"metadata":{"labels":{"x":"y"}}}`,
	} {
		if err := patch(web(), p); !refused(err) {
			t.Errorf("a change of %s: err %v, want it refused", what, err)
		}
	}

	// Secrets: only the operator's.
	unlabelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "theirs"}, StringData: map[string]string{"k": "v"}}
	if err := manager.Create(ctx, unlabelled.DeepCopy()); !refused(err) || !strings.Contains(err.Error(), "managed-by") {
		t.Errorf("creating an unlabelled Secret: err %v, want it refused", err)
	}
	if err := admin.Create(ctx, unlabelled); err != nil {
		t.Fatal(err)
	}
	if err := patch(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "theirs"}}, `{"stringData":{"k":"w"}}`); !refused(err) {
		t.Errorf("patching someone else's Secret: err %v, want it refused", err)
	}
	if err := manager.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "theirs"}}); !refused(err) {
		t.Errorf("deleting someone else's Secret: err %v, want it refused", err)
	}
	ours := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ours",
		Labels: map[string]string{"app.kubernetes.io/managed-by": "datasette-token-operator"}}, StringData: map[string]string{"token": "x"}}
	if err := manager.Create(ctx, ours); err != nil {
		t.Errorf("creating a labelled Secret: %v", err)
	}
	// Releasing it (deletionPolicy Retain removes the label) is an update of a Secret that carried it.
	if err := patch(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ours"}},
		`{"metadata":{"labels":{"app.kubernetes.io/managed-by":null}}}`); err != nil {
		t.Errorf("releasing its own Secret: %v", err)
	}
	if err := patch(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ours"}}, `{"stringData":{"token":"y"}}`); !refused(err) {
		t.Errorf("writing a released Secret: err %v, want it refused", err)
	}
}

func rendersPolicy(in *installation) bool {
	for _, o := range in.rbac() {
		if _, ok := o.(*admissionregistrationv1.ValidatingAdmissionPolicy); ok {
			return true
		}
	}
	return false
}

func policyStatus(t *testing.T) string {
	var list admissionregistrationv1.ValidatingAdmissionPolicyList
	if err := admin.List(context.Background(), &list); err != nil {
		return err.Error()
	}
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name+": "+mustYAML(t, p.Status))
	}
	return strings.Join(out, "; ")
}

// managerClient is a client acting as the installation's ServiceAccount (impersonated).
func managerClient(t *testing.T, inst *installation) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: inst.username()}
	manager, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return manager
}

// awaitPolicy waits until the API server enforces the installed policy: until it refuses the
// manager an unlabelled Secret in ns.
func awaitPolicy(t *testing.T, manager client.Client, ns string) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		return manager.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "probe-"}})
	}, 30*time.Second, 200*time.Millisecond).Should(Satisfy(apierrors.IsForbidden), "the policy is not in force: %s", policyStatus(t))
}

// managedSecret is a Secret labelled as the operator's, as a stolen manager token would label it.
func managedSecret(ns, name string, typ corev1.SecretType, annotations map[string]string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "datasette-token-operator"}},
		Type: typ, StringData: data,
	}
}

// TestAdmissionPolicyRefusesIdentitySecrets (issue 26, finding 4): the manager's ServiceAccount,
// though its RBAC lets it create Secrets anywhere, cannot create a Secret that is an identity (a
// bootstrap token, which authenticates as system:bootstrap:<id> in the groups it names; a
// ServiceAccount token, which the token controller fills for the account it names) nor write
// anything in a kube-* namespace; an Opaque Secret of its own in a tenant namespace still passes.
func TestAdmissionPolicyRefusesIdentitySecrets(t *testing.T) {
	requireEnvtest(t)
	inst := mustRender(t, filepath.Join(repoRoot, "config", "default"))
	install(t, inst)
	manager := managerClient(t, inst)
	ctx := context.Background()
	tenant := newNamespace(t, "vap-identity-")
	awaitPolicy(t, manager, tenant)

	for _, ns := range []string{"kube-system", tenant} {
		if err := admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "victim-controller"}}); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	bootstrap := map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef",
		"usage-bootstrap-authentication": "true", "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
	saName := map[string]string{"kubernetes.io/service-account.name": "victim-controller"}
	const (
		systemNS = "in kube-* namespaces"
		opaque   = "only Opaque Secrets"
		saAnnot  = "kubernetes.io/service-account.* annotations"
	)
	for _, tc := range []struct {
		what   string
		secret *corev1.Secret
		// why is what the refusal must say.
		why string
	}{
		{"a bootstrap token in kube-system", managedSecret("kube-system", "bootstrap-token-abcdef", corev1.SecretTypeBootstrapToken, nil, bootstrap), systemNS},
		{"a bootstrap token in a tenant namespace", managedSecret(tenant, "bootstrap-token-abcdef", corev1.SecretTypeBootstrapToken, nil, bootstrap), opaque},
		{"a kube-system controller's ServiceAccount token", managedSecret("kube-system", "victim-token", corev1.SecretTypeServiceAccountToken, saName, nil), systemNS},
		{"a tenant ServiceAccount's token", managedSecret(tenant, "victim-token", corev1.SecretTypeServiceAccountToken, saName, nil), opaque},
		{"an Opaque Secret with the ServiceAccount annotations", managedSecret(tenant, "annotated", corev1.SecretTypeOpaque,
			map[string]string{"kubernetes.io/service-account.name": "victim-controller", "kubernetes.io/service-account.uid": "1"}, map[string]string{"token": "x"}), saAnnot},
		{"a kubernetes.io/tls Secret", managedSecret(tenant, "tls", corev1.SecretTypeTLS, nil, map[string]string{"tls.crt": "", "tls.key": ""}), opaque},
		{"an Opaque Secret in kube-system", managedSecret("kube-system", "ours", corev1.SecretTypeOpaque, nil, map[string]string{"token": "x"}), systemNS},
		{"an Opaque Secret in kube-public", managedSecret("kube-public", "ours", corev1.SecretTypeOpaque, nil, map[string]string{"token": "x"}), systemNS},
		{"an Opaque Secret in kube-node-lease", managedSecret("kube-node-lease", "ours", corev1.SecretTypeOpaque, nil, map[string]string{"token": "x"}), systemNS},
	} {
		err := manager.Create(ctx, tc.secret)
		if err == nil {
			t.Errorf("creating %s as the manager: admitted, want it refused", tc.what)
			_ = admin.Delete(ctx, tc.secret)
		} else if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("creating %s as the manager: %v, want it refused saying %q", tc.what, err, tc.why)
		}
	}

	// In kube-system, the operator's own Secret (labelled) can be neither changed nor deleted, and
	// no workload restarted.
	if err := admin.Create(ctx, managedSecret("kube-system", "labelled", corev1.SecretTypeOpaque, nil, map[string]string{"token": "x"})); err != nil {
		t.Fatal(err)
	}
	labelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "labelled"}}
	if err := manager.Patch(ctx, labelled, client.RawPatch(types.MergePatchType, []byte(`{"stringData":{"token":"y"}}`))); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), systemNS) {
		t.Errorf("updating a labelled Secret in kube-system: %v, want it refused", err)
	}
	if err := manager.Delete(ctx, labelled); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), systemNS) {
		t.Errorf("deleting a labelled Secret in kube-system: %v, want it refused", err)
	}
	labels := map[string]string{"app": "dns"}
	dns := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "dns"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dns", Image: "dns"}}}},
	}}
	if err := admin.Create(ctx, dns); err != nil {
		t.Fatal(err)
	}
	restart := []byte(`{"spec":{"template":{"metadata":{"annotations":{"datasette.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}`)
	if err := manager.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "dns"}},
		client.RawPatch(types.MergePatchType, restart)); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), systemNS) {
		t.Errorf("a rollout restart in kube-system: %v, want it refused", err)
	}

	// In a tenant namespace the operator's Secrets pass: Opaque, or with no type (the API server
	// defaults it to Opaque before admission), created and updated.
	for _, s := range []*corev1.Secret{
		managedSecret(tenant, "typed", corev1.SecretTypeOpaque, map[string]string{"datasette.io/note": "x"}, map[string]string{"token": "x"}),
		managedSecret(tenant, "untyped", "", nil, map[string]string{"token": "x"}),
	} {
		if err := manager.Create(ctx, s); err != nil {
			t.Errorf("creating the Opaque Secret %s as the manager: %v", s.Name, err)
		} else if s.Type != corev1.SecretTypeOpaque {
			t.Errorf("the Secret %s created without a type has type %q", s.Name, s.Type)
		}
		if err := manager.Patch(ctx, s, client.RawPatch(types.MergePatchType, []byte(`{"stringData":{"token":"y"}}`))); err != nil {
			t.Errorf("updating the Opaque Secret %s as the manager: %v", s.Name, err)
		}
	}
	// Its type cannot be changed (the API server holds it immutable; the policy refuses it too).
	if err := manager.Patch(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "typed"}},
		client.RawPatch(types.MergePatchType, []byte(`{"type":"kubernetes.io/service-account-token"}`))); err == nil {
		t.Error("changing an Opaque Secret's type to kubernetes.io/service-account-token was admitted")
	}
}

// TestTokenInSystemNamespaceStalls: a DatasetteToken in kube-system is never served: its output
// Secret is refused by the policy, and the token says so in its status (Stalled, reason
// SecretRejected, with the policy's message) instead of failing reconcile after reconcile.
func TestTokenInSystemNamespaceStalls(t *testing.T) {
	requireEnvtest(t)
	inst := mustRender(t, filepath.Join(repoRoot, "config", "default"))
	install(t, inst)
	awaitPolicy(t, managerClient(t, inst), newNamespace(t, "vap-stall-"))
	m := startManager(t, inst)

	s := newScenario("kube-system")
	s.signingSecret = "datasette-stall-test"
	s.createSigningSecret(t)
	s.createToken(t, s.token.Name, s.secretName)
	ctx := context.Background()
	if err := s.eventually("Ready=False SecretRejected", func() error {
		return s.readyIs(ctx, s.token, metav1.ConditionFalse, "SecretRejected")
	}); err != nil {
		t.Fatal(err)
	}
	// A refused write that were retried as an error would show within a second or two (the
	// controller's backoff starts at milliseconds).
	time.Sleep(2 * time.Second)
	tok := s.get(t, s.token)
	ready := meta.FindStatusCondition(tok.Status.Conditions, "Ready")
	t.Logf("Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message)
	stalled := meta.FindStatusCondition(tok.Status.Conditions, "Stalled")
	if !strings.Contains(ready.Message, "in kube-* namespaces") || stalled == nil || stalled.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v, Stalled = %+v: want Stalled=True and the policy's message", ready, stalled)
	}
	if err := admin.Get(ctx, s.outputKey(), &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the output Secret in kube-system: %v, want it not found", err)
	}
	if n := m.reconcileErrorsGrowth(); n != 0 {
		t.Errorf("controller_runtime_reconcile_errors_total grew by %v: the refused write is retried as an error", n)
	}
}
