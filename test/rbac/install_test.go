package rbac

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// installation is a rendered installer: its objects, and who and how its manager runs.
type installation struct {
	objects []client.Object
	// namespace and serviceAccount are the manager Deployment's.
	namespace, serviceAccount string
	// args are the manager container's arguments.
	args []string
	// deployment and container locate the manager container, for patches.
	deployment string
	container  int
}

// render builds dir with kustomize and decodes what it prints.
func render(dir string) (*installation, error) {
	cmd := exec.Command(kustomizeBin, "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w: %s", dir, err, stderr.String())
	}
	inst := &installation{}
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the YAML that kustomize build %s printed: %w", dir, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decoding a document of kustomize build %s: %w", dir, err)
		}
		co, ok := obj.(client.Object)
		if !ok {
			return nil, fmt.Errorf("kustomize build %s: %s is not an object", dir, gvk)
		}
		co.GetObjectKind().SetGroupVersionKind(*gvk)
		inst.objects = append(inst.objects, co)
	}
	if err := inst.findManager(); err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return inst, nil
}

// mustRender renders dir or fails the test.
func mustRender(t *testing.T, dir string) *installation {
	t.Helper()
	inst, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// findManager reads the manager Deployment's namespace, ServiceAccount and arguments.
func (in *installation) findManager() error {
	var deployments []*appsv1.Deployment
	for _, o := range in.objects {
		if d, ok := o.(*appsv1.Deployment); ok {
			deployments = append(deployments, d)
		}
	}
	if len(deployments) != 1 {
		return fmt.Errorf("want one Deployment, the manager's; found %d", len(deployments))
	}
	d := deployments[0]
	pod := d.Spec.Template.Spec
	if len(pod.Containers) == 0 {
		return fmt.Errorf("Deployment %s has no container", d.Name)
	}
	in.namespace, in.serviceAccount, in.deployment = d.Namespace, pod.ServiceAccountName, d.Name
	for i, c := range pod.Containers {
		if c.Name == "manager" {
			in.container = i
		}
	}
	in.args = pod.Containers[in.container].Args
	if in.serviceAccount == "" || in.namespace == "" {
		return fmt.Errorf("Deployment %s names no ServiceAccount or namespace", d.Name)
	}
	return nil
}

// username is the manager's identity: its ServiceAccount's user name.
func (in *installation) username() string {
	return fmt.Sprintf("system:serviceaccount:%s:%s", in.namespace, in.serviceAccount)
}

// flag returns the value of the manager's --name argument (the last one, as Go's flag package
// does); a boolean flag given alone reads "true".
func (in *installation) flag(name string) (value string, ok bool) {
	argIndex := in.flagIndex(name)
	if argIndex < 0 {
		return "", false
	}
	arg := strings.TrimLeft(in.args[argIndex], "-")
	if _, v, found := strings.Cut(arg, "="); found {
		return v, true
	}
	return "true", true
}

// flagIndex is the index of the manager's last --name argument, or -1.
func (in *installation) flagIndex(name string) int {
	found := -1
	for i, arg := range in.args {
		bare, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if strings.HasPrefix(arg, "-") && bare == name {
			found = i
		}
	}
	return found
}

// crds are the installer's CustomResourceDefinitions.
func (in *installation) crds() []*apiextensionsv1.CustomResourceDefinition {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, o := range in.objects {
		if crd, ok := o.(*apiextensionsv1.CustomResourceDefinition); ok {
			crds = append(crds, crd)
		}
	}
	return crds
}

// rbac are the objects the test applies: the ServiceAccount, roles and bindings, and the admission
// policy that confines the manager's writes. Not the Deployment,
// nor the CRDs (installed once, by TestMain), nor the Service.
func (in *installation) rbac() []client.Object {
	var objs []client.Object
	for _, o := range in.objects {
		switch o.(type) {
		case *corev1.ServiceAccount, *rbacv1.Role, *rbacv1.ClusterRole, *rbacv1.RoleBinding, *rbacv1.ClusterRoleBinding,
			*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			objs = append(objs, o)
		}
	}
	return objs
}

// withoutVerbs removes verbs from every rule of every role that covers resource, and returns how
// many it removed.
func (in *installation) withoutVerbs(resource string, verbs ...string) int {
	removed := 0
	for _, o := range in.objects {
		var rules []rbacv1.PolicyRule
		switch r := o.(type) {
		case *rbacv1.Role:
			rules = r.Rules
		case *rbacv1.ClusterRole:
			rules = r.Rules
		}
		for i := range rules {
			if !slices.Contains(rules[i].Resources, resource) {
				continue
			}
			before := len(rules[i].Verbs)
			rules[i].Verbs = slices.DeleteFunc(rules[i].Verbs, func(v string) bool { return slices.Contains(verbs, v) })
			removed += before - len(rules[i].Verbs)
		}
	}
	return removed
}

// bindsManager says whether subjects include the manager's ServiceAccount.
func (in *installation) bindsManager(subjects []rbacv1.Subject) bool {
	return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Name == in.serviceAccount && s.Namespace == in.namespace
	})
}

// managerRoleNamespaces are the namespaces in which a RoleBinding grants the manager's ServiceAccount
// a ClusterRole (in config/namespaced: the manager role, in each watched namespace), sorted.
func (in *installation) managerRoleNamespaces() []string {
	var namespaces []string
	for _, o := range in.objects {
		if rb, ok := o.(*rbacv1.RoleBinding); ok && rb.RoleRef.Kind == "ClusterRole" && in.bindsManager(rb.Subjects) {
			namespaces = append(namespaces, rb.Namespace)
		}
	}
	slices.Sort(namespaces)
	return slices.Compact(namespaces)
}

// clusterWideRules are the rules that ClusterRoleBindings grant the manager's ServiceAccount.
func (in *installation) clusterWideRules() []rbacv1.PolicyRule {
	roles := map[string]*rbacv1.ClusterRole{}
	for _, o := range in.objects {
		if r, ok := o.(*rbacv1.ClusterRole); ok {
			roles[r.Name] = r
		}
	}
	var rules []rbacv1.PolicyRule
	for _, o := range in.objects {
		if b, ok := o.(*rbacv1.ClusterRoleBinding); ok && in.bindsManager(b.Subjects) {
			if r := roles[b.RoleRef.Name]; r != nil {
				rules = append(rules, r.Rules...)
			}
		}
	}
	return rules
}

// install creates the operator's namespace, then applies the installation's ServiceAccount, roles
// and bindings as the administrator; they are deleted when the test ends.
func install(t *testing.T, in *installation) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: in.namespace}}
	if err := admin.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the operator's namespace %s: %v", in.namespace, err)
	}
	for _, o := range in.rbac() {
		obj := o.DeepCopyObject().(client.Object)
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatalf("applying %s %s/%s: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetNamespace(), o.GetName(), err)
		}
		t.Cleanup(func() {
			if err := admin.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				t.Errorf("deleting %s %s/%s: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), err)
			}
		})
	}
}

// renderNamespaced renders config/namespaced with its watch list set to watched, the way a user
// would: an overlay of its own that uses config/namespaced as a base, replaces the
// --watch-namespaces argument, and swaps the example namespaces' RoleBindings for the watched ones.
func renderNamespaced(t *testing.T, watched []string) *installation {
	t.Helper()
	baseDir := filepath.Join(repoRoot, "config", "namespaced")
	base := mustRender(t, baseDir)
	argIndex := base.flagIndex("watch-namespaces")
	if argIndex < 0 {
		t.Fatalf("config/namespaced's manager has no --watch-namespaces (args %q)", base.args)
	}
	example := base.managerRoleNamespaces()
	if len(example) == 0 {
		t.Fatal("config/namespaced binds the manager role in no namespace")
	}

	dir := t.TempDir()
	rel, err := filepath.Rel(dir, baseDir)
	if err != nil {
		t.Fatal(err)
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{rel, "watched_namespaces.yaml"},
	}
	patches := []map[string]any{{
		"target": map[string]string{"kind": "Deployment", "name": base.deployment},
		"patch": mustYAML(t, []map[string]string{{
			"op":    "replace",
			"path":  fmt.Sprintf("/spec/template/spec/containers/%d/args/%d", base.container, argIndex),
			"value": "--watch-namespaces=" + strings.Join(watched, ","),
		}}),
	}}
	var bindings [][]byte
	for _, o := range base.objects {
		rb, ok := o.(*rbacv1.RoleBinding)
		if !ok || !slices.Contains(example, rb.Namespace) || rb.RoleRef.Kind != "ClusterRole" || !base.bindsManager(rb.Subjects) {
			continue
		}
		patches = append(patches, map[string]any{"patch": mustYAML(t, map[string]any{
			"$patch": "delete", "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
			"metadata": map[string]string{"name": rb.Name, "namespace": rb.Namespace},
		})})
		if rb.Namespace != example[0] {
			continue
		}
		for _, ns := range watched {
			copied := rb.DeepCopy()
			copied.Namespace = ns
			bindings = append(bindings, []byte(mustYAML(t, copied)))
		}
	}
	k["patches"] = patches
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("kustomization.yaml", []byte(mustYAML(t, k)))
	write("watched_namespaces.yaml", bytes.Join(bindings, []byte("---\n")))
	inst := mustRender(t, dir)
	if got := inst.managerRoleNamespaces(); !slices.Equal(got, sorted(watched)) {
		t.Fatalf("the test's overlay binds the manager role in %q, want %q", got, watched)
	}
	return inst
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// newNamespace creates a namespace with a generated name.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := admin.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}
