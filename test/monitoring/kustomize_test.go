package monitoring

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/datasette-token-operator/datasette-token-operator/internal/testenv"
)

// kustomizeBuild renders config/<dir> with KUSTOMIZE or bin/kustomize.
func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	bin := os.Getenv("KUSTOMIZE")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "kustomize")
	}
	if _, err := os.Stat(bin); err != nil {
		if testenv.Required() {
			t.Fatalf("no kustomize at %s: run `make kustomize`", bin)
		}
		t.Skipf("no kustomize at %s: run `make kustomize`, or set KUSTOMIZE", bin)
	}
	out, err := exec.Command(bin, "build", filepath.Join("..", "..", "config", dir)).Output()
	if err != nil {
		t.Fatalf("kustomize build config/%s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs
}

func findObj(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// TestPrometheusKustomization: config/prometheus, applied beside config/default, lands in the
// operator's namespace; its ServiceMonitor selects config/default's metrics Service and scrapes with
// `authorization` from a ServiceAccount token Secret it renders, whose ServiceAccount is bound to
// config/default's metrics-reader ClusterRole, and with no bearerTokenFile.
func TestPrometheusKustomization(t *testing.T) {
	def := kustomizeBuild(t, "default")
	prom := kustomizeBuild(t, "prometheus")
	var operatorNS string
	for _, o := range def {
		if o.GetKind() == "Deployment" {
			operatorNS = o.GetNamespace()
		}
	}
	if operatorNS == "" {
		t.Fatal("config/default renders no Deployment")
	}
	for _, o := range prom {
		if ns := o.GetNamespace(); o.GetKind() != "ClusterRoleBinding" && ns != operatorNS {
			t.Errorf("%s %s renders into namespace %q, not the operator's %s", o.GetKind(), o.GetName(), ns, operatorNS)
		}
	}

	var sm *unstructured.Unstructured
	for _, o := range prom {
		if o.GetKind() == "ServiceMonitor" {
			sm = o
		}
	}
	if sm == nil {
		t.Fatal("config/prometheus renders no ServiceMonitor")
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	ep := eps[0].(map[string]any)
	if _, ok := ep["bearerTokenFile"]; ok {
		t.Error("the ServiceMonitor uses the deprecated bearerTokenFile")
	}
	secretName, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
	secret := findObj(t, prom, "Secret", secretName)
	sa := secret.GetAnnotations()["kubernetes.io/service-account.name"]
	findObj(t, prom, "ServiceAccount", sa)

	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	matched := false
	for _, o := range def {
		if o.GetKind() != "Service" {
			continue
		}
		ok := true
		for k, v := range sel {
			ok = ok && o.GetLabels()[k] == v
		}
		matched = matched || ok
	}
	if !matched {
		t.Errorf("the ServiceMonitor's selector %v matches no Service of config/default", sel)
	}

	for _, o := range prom {
		if o.GetKind() != "ClusterRoleBinding" {
			continue
		}
		role, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
		cr := findObj(t, def, "ClusterRole", role)
		rules, _, _ := unstructured.NestedSlice(cr.Object, "rules")
		js, _ := yaml.Marshal(rules)
		if !strings.Contains(string(js), "/metrics") || strings.Contains(string(js), "resources") {
			t.Errorf("%s binds %s, which grants %s; want /metrics only", o.GetName(), role, js)
		}
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		s := subjects[0].(map[string]any)
		if s["name"] != sa || s["namespace"] != operatorNS {
			t.Errorf("%s binds %v, want the scraper %s/%s", o.GetName(), s, operatorNS, sa)
		}
	}
}
