package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	root      = "../.."
	chartDir  = root + "/charts/datasette-token-operator"
	namespace = "ops"
	release   = "dto"
	fullname  = "dto-datasette-token-operator"
)

// TestCRDsMatchConfig checks the chart ships exactly config/crd/bases (make helm-crds copies them
// into files/crds/, which templates/crds.yaml renders).
func TestCRDsMatchConfig(t *testing.T) {
	want := readDir(t, filepath.Join(root, "config/crd/bases"))
	got := readDir(t, filepath.Join(chartDir, "files/crds"))
	if len(want) == 0 {
		t.Fatal("config/crd/bases is empty")
	}
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("files/crds/%s is missing: run make helm-crds", name)
		} else if !bytes.Equal(g, data) {
			t.Errorf("files/crds/%s differs from config/crd/bases: run make helm-crds", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("files/crds/%s is not in config/crd/bases: run make helm-crds", name)
		}
	}
}

// TestChartFilesMatchSources checks the chart's copies of files kept elsewhere (make helm-files).
func TestChartFilesMatchSources(t *testing.T) {
	for copyPath, source := range map[string]string{
		"files/manager-role.yaml":     "config/rbac/role.yaml",
		"files/alerts.yaml":           "config/prometheus/alerts.yaml",
		"files/dashboard.json":        "config/grafana/dashboard.json",
		"files/admission-policy.yaml": "config/rbac/admission_policy.yaml",
	} {
		got, err := os.ReadFile(filepath.Join(chartDir, copyPath))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(root, source))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("the chart's %s differs from %s: run make helm-files", copyPath, source)
		}
	}
}

func TestDefaultRender(t *testing.T) {
	objs := render(t, loadChart(t), nil)
	assertKinds(t, objs, map[string]int{
		"ServiceAccount": 1, "ClusterRole": 3 + tenantRoleCount(t), "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1,
		"Service": 1, "Deployment": 1, "CustomResourceDefinition": crdCount(t),
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
	})

	var role rbacv1.ClusterRole
	decode(t, find(t, objs, "ClusterRole", "", fullname+"-manager"), &role)
	if got, want := ruleSet(role.Rules), ruleSet(managerRules(t)); !reflect.DeepEqual(got, want) {
		t.Errorf("the manager ClusterRole grants %v, config/rbac/role.yaml %v", got, want)
	}
	var crb rbacv1.ClusterRoleBinding
	decode(t, find(t, objs, "ClusterRoleBinding", "", fullname+"-manager"), &crb)
	if crb.RoleRef.Name != role.Name || len(crb.Subjects) != 1 || crb.Subjects[0].Name != fullname || crb.Subjects[0].Namespace != namespace {
		t.Errorf("the manager ClusterRoleBinding binds %v to %v", crb.RoleRef, crb.Subjects)
	}

	d := deployment(t, objs)
	c := d.Spec.Template.Spec.Containers[0]
	appVersion := loadChart(t).Metadata.AppVersion
	if c.Image != "datasette-token-operator:"+appVersion {
		t.Errorf("image %q, want the chart's appVersion %s as the tag", c.Image, appVersion)
	}
	for _, arg := range []string{"--leader-elect", "--metrics-bind-address=:8443", "--zap-devel=false", "--zap-encoder=json", "--zap-log-level=info"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	for _, arg := range c.Args {
		if strings.HasPrefix(arg, "--watch-namespaces") {
			t.Errorf("cluster-wide by default, yet %s", arg)
		}
	}
	if *d.Spec.Replicas != 1 || d.Spec.Template.Spec.ServiceAccountName != fullname {
		t.Errorf("replicas %d, service account %q", *d.Spec.Replicas, d.Spec.Template.Spec.ServiceAccountName)
	}
	assertRestricted(t, d)
	assertGoMemLimit(t, c)
}

// namespacedRules keeps of rules those on namespaced resources.
func namespacedRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, rule := range rules {
		rule.Resources = slices.DeleteFunc(slices.Clone(rule.Resources), func(r string) bool {
			return r == "namespaces" || strings.HasPrefix(r, "clusterdatasettesigners")
		})
		if len(rule.Resources) > 0 {
			out = append(out, rule)
		}
	}
	return out
}

// TestEveryToggleOn renders ci/all-on-values.yaml, the values CI lints with.
func TestEveryToggleOn(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "ci/all-on-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(raw, &vals); err != nil {
		t.Fatal(err)
	}
	objs := render(t, loadChart(t), vals)
	assertKinds(t, objs, map[string]int{
		"ServiceAccount": 2, "ClusterRole": 3 + tenantRoleCount(t), "ClusterRoleBinding": 4, "Role": 3, "RoleBinding": 3,
		"Service": 1, "Deployment": 1, "ServiceMonitor": 1, "Secret": 1, "PrometheusRule": 1, "ConfigMap": 1,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
		"PodDisruptionBudget": 1, "NetworkPolicy": 1, "CustomResourceDefinition": crdCount(t),
	})

	// Namespace-scoped: a Role in each watched namespace with every namespaced rule of
	// config/rbac/role.yaml, nothing namespaced cluster-wide.
	want := ruleSet(namespacedRules(managerRules(t)))
	for _, ns := range []string{"analytics", "reporting"} {
		var role rbacv1.Role
		decode(t, find(t, objs, "Role", ns, fullname+"-manager"), &role)
		if got := ruleSet(role.Rules); !reflect.DeepEqual(got, want) {
			t.Errorf("Role in %s grants %v, want %v", ns, got, want)
		}
		var rb rbacv1.RoleBinding
		decode(t, find(t, objs, "RoleBinding", ns, fullname+"-manager"), &rb)
		if rb.RoleRef.Kind != "Role" || rb.Subjects[0].Name != fullname || rb.Subjects[0].Namespace != namespace {
			t.Errorf("RoleBinding in %s: %v %v", ns, rb.RoleRef, rb.Subjects)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && strings.Contains(mustJSON(t, o), `"secrets"`) {
			t.Errorf("namespace-scoped, yet ClusterRole %s grants Secrets", o.GetName())
		}
	}

	d := deployment(t, objs)
	c := d.Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"--watch-namespaces=analytics,reporting", "--max-concurrent-reconciles=4", "--leader-elect",
		"--min-renewal-interval=2m", "--allow-signing-secret-ref=false", "--allow-namespaced-probes",
		"--probe-deny-cidrs=10.0.0.10/32,192.0.2.0/24", "--probe-allow-cidrs=10.0.0.0/8,fd00::/8",
		"--key-cache-secret-bytes=131072", "--key-cache-bytes=33554432"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	assertRestricted(t, d)

	// The ServiceMonitor selects the metrics Service and keeps the tokens' namespace label.
	var svc corev1.Service
	decode(t, find(t, objs, "Service", namespace, fullname+"-metrics"), &svc)
	sm := find(t, objs, "ServiceMonitor", namespace, fullname)
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, the Service has %q", k, v, svc.Labels[k])
		}
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	ep := eps[0].(map[string]any)
	if ep["honorLabels"] != true || ep["port"] != "https" || ep["scheme"] != "https" {
		t.Errorf("ServiceMonitor endpoint %v", ep)
	}

	// The PrometheusRule carries files/alerts.yaml's groups, unchanged.
	pr := find(t, objs, "PrometheusRule", namespace, fullname)
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	if want := alertGroups(t); !reflect.DeepEqual(groups, want) {
		t.Errorf("the PrometheusRule's groups differ from config/prometheus/alerts.yaml")
	}

	// The dashboard ConfigMap, where Grafana's sidecar looks for it.
	var cm corev1.ConfigMap
	decode(t, find(t, objs, "ConfigMap", "monitoring", fullname+"-dashboard"), &cm)
	dash, err := os.ReadFile(filepath.Join(root, "config/grafana/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Data["datasette-token-operator.json"] != strings.TrimSuffix(string(dash), "\n") {
		t.Errorf("dashboard ConfigMap labels %v, or its JSON differs from config/grafana/dashboard.json", cm.Labels)
	}

	var pdb policyv1.PodDisruptionBudget
	decode(t, find(t, objs, "PodDisruptionBudget", namespace, fullname), &pdb)
	var np networkingv1.NetworkPolicy
	decode(t, find(t, objs, "NetworkPolicy", namespace, fullname), &np)
	if len(np.Spec.Ingress) != 1 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 8443 || len(np.Spec.Egress) != 2 {
		t.Errorf("NetworkPolicy %+v", np.Spec)
	}
	var reader rbacv1.ClusterRoleBinding
	decode(t, find(t, objs, "ClusterRoleBinding", "", fullname+"-metrics-reader"), &reader)
	if reader.Subjects[0].Name != "prometheus-k8s" || reader.Subjects[0].Namespace != "monitoring" {
		t.Errorf("metrics-reader binding %v", reader.Subjects)
	}
}

// TestNamespaceScopedSplitsClusterScopedRules gives the chart a ClusterRole with cluster-scoped
// resources too (as the signer kinds bring), and checks they stay in a ClusterRole while the rest
// moves into the Roles, with nothing lost or added.
func TestNamespaceScopedSplitsClusterScopedRules(t *testing.T) {
	c := loadChart(t)
	role := []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: manager-role}
rules:
- apiGroups: [""]
  resources: [namespaces, secrets]
  verbs: [get, list, watch]
- apiGroups: [datasette.io]
  resources: [clusterdatasettesigners, datasettesigners, datasettetokens]
  verbs: [get, list, watch]
- apiGroups: [datasette.io]
  resources: [clusterdatasettesigners/status, datasettesigners/status]
  verbs: [get, update]
`)
	for _, f := range c.Files {
		if f.Name == "files/manager-role.yaml" {
			f.Data = role
		}
	}
	objs := render(t, c, map[string]any{"watchNamespaces": []any{"analytics"}})
	var cr rbacv1.ClusterRole
	decode(t, find(t, objs, "ClusterRole", "", fullname+"-manager"), &cr)
	var r rbacv1.Role
	decode(t, find(t, objs, "Role", "analytics", fullname+"-manager"), &r)
	clusterSide, nsSide := ruleSet(cr.Rules), ruleSet(r.Rules)
	for _, perm := range clusterSide {
		if !strings.Contains(perm, "clusterdatasettesigners") && !strings.Contains(perm, "/namespaces ") {
			t.Errorf("the ClusterRole grants %s, which is namespaced", perm)
		}
	}
	for _, perm := range nsSide {
		if strings.Contains(perm, "clusterdatasettesigners") || strings.Contains(perm, "/namespaces ") {
			t.Errorf("the Role grants %s, which is cluster-scoped", perm)
		}
	}
	var parsed rbacv1.ClusterRole
	if err := yaml.Unmarshal(role, &parsed); err != nil {
		t.Fatal(err)
	}
	union := append(append([]string(nil), clusterSide...), nsSide...)
	sort.Strings(union)
	if want := ruleSet(parsed.Rules); !reflect.DeepEqual(union, want) {
		t.Errorf("split rules %v, want %v", union, want)
	}
}

func TestReplicasNeedLeaderElection(t *testing.T) {
	_, err := renderErr(loadChart(t), map[string]any{"replicaCount": 2, "leaderElection": map[string]any{"enabled": false}})
	if err == nil || !strings.Contains(err.Error(), "leaderElection") {
		t.Errorf("two replicas without leader election rendered: %v", err)
	}
}

func TestImageDigestWins(t *testing.T) {
	objs := render(t, loadChart(t), map[string]any{"image": map[string]any{"repository": "registry.example/dto", "tag": "v9", "digest": "sha256:0123"}})
	if img := deployment(t, objs).Spec.Template.Spec.Containers[0].Image; img != "registry.example/dto@sha256:0123" {
		t.Errorf("image %q", img)
	}
}

func assertRestricted(t *testing.T, d appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v is not restricted", psc)
	}
	sc := pod.Containers[0].SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v is not restricted", sc)
	}
}

func assertGoMemLimit(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil &&
			e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" && e.ValueFrom.ResourceFieldRef.ContainerName == c.Name {
			return
		}
	}
	t.Errorf("no GOMEMLIMIT from limits.memory in %v", c.Env)
}

func assertKinds(t *testing.T, objs []*unstructured.Unstructured, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, o := range objs {
		got[o.GetKind()]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rendered kinds %v, want %v", got, want)
	}
}

// ruleSet flattens rules into sorted "group/resource verb" (or "url verb") permissions.
func ruleSet(rules []rbacv1.PolicyRule) []string {
	set := map[string]bool{}
	for _, r := range rules {
		for _, v := range r.Verbs {
			for _, u := range r.NonResourceURLs {
				set[u+" "+v] = true
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					set[g+"/"+res+" "+v] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func managerRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config/rbac/role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(raw, []byte("---\n")), &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return role.Rules
}

func alertGroups(t *testing.T) []any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config/prometheus/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f.Groups
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func render(t *testing.T, c *chart.Chart, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderErr(c, vals)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// renderErr renders the chart as `helm template` does and decodes every manifest.
func renderErr(c *chart.Chart, vals map[string]any) ([]*unstructured.Unstructured, error) {
	if err := chartutil.ProcessDependencies(c, vals); err != nil {
		return nil, err
	}
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(c, rv)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var objs []*unstructured.Unstructured
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[name], "\n---") {
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				return nil, err
			}
			if string(js) == "null" {
				continue
			}
			o := &unstructured.Unstructured{}
			if err := o.UnmarshalJSON(js); err != nil {
				return nil, err
			}
			objs = append(objs, o)
		}
	}
	return objs, nil
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s rendered", kind, ns, name)
	return nil
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	decode(t, find(t, objs, "Deployment", namespace, fullname), &d)
	return d
}

// decode converts a rendered object into a typed one, rejecting unknown fields (typos).
func decode(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(mustJSON(t, o)), into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

func mustJSON(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	js, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}
