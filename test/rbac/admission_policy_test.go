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
	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: inst.username()}
	manager, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
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
