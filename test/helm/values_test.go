package helm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// TestSchemaRejects: a wrong type, an unknown key or an unknown enum value fails rendering (helm
// template, install and upgrade validate values.schema.json the same way), naming the value.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		path string
	}{
		{"replicas not a number", map[string]any{"replicaCount": "many"}, "/replicaCount"},
		{"too many replicas", map[string]any{"replicaCount": 1000}, "/replicaCount"},
		{"unknown encoder", map[string]any{"logging": map[string]any{"encoder": "xml"}}, "/logging/encoder"},
		{"unknown level", map[string]any{"logging": map[string]any{"level": "verbose"}}, "/logging/level"},
		{"unknown pull policy", map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "/image/pullPolicy"},
		{"unknown top-level key", map[string]any{"replicas": 2}, "replicas"},
		{"unknown nested key", map[string]any{"crds": map[string]any{"enable": true}}, "enable"},
		{"crds.keep not a bool", map[string]any{"crds": map[string]any{"keep": "yes"}}, "/crds/keep"},
		{"aggregate not a bool", map[string]any{"rbac": map[string]any{"aggregateClusterRoles": "yes"}}, "/rbac/aggregateClusterRoles"},
		{"admissionPolicy not a bool", map[string]any{"admissionPolicy": map[string]any{"enabled": 1}}, "/admissionPolicy/enabled"},
		{"port out of range", map[string]any{"metrics": map[string]any{"port": 70000}}, "/metrics/port"},
		{"bad namespace", map[string]any{"watchNamespaces": []any{"Not_A_Namespace"}}, "/watchNamespaces/0"},
		{"extraEnv not a list", map[string]any{"extraEnv": map[string]any{"A": "b"}}, "/extraEnv"},
		{"commonLabels not strings", map[string]any{"commonLabels": map[string]any{"a": 1}}, "/commonLabels/a"},
		{"datasette egress not a list", map[string]any{"networkPolicy": map[string]any{"egress": map[string]any{"datasette": "all"}}}, "/networkPolicy/egress/datasette"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderErr(loadChart(t), tc.vals)
			if err == nil {
				t.Fatalf("%v rendered", tc.vals)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
		})
	}
	// And the values CI lints with pass.
	raw, err := os.ReadFile(filepath.Join(chartDir, "ci/all-on-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(raw, &vals); err != nil {
		t.Fatal(err)
	}
	if _, err := renderErr(loadChart(t), vals); err != nil {
		t.Errorf("ci/all-on-values.yaml: %v", err)
	}
}

// TestSchemaCoversEveryValue: every key of values.yaml is declared in values.schema.json, so that
// a value added later cannot go unchecked.
func TestSchemaCoversEveryValue(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(raw, &vals); err != nil {
		t.Fatal(err)
	}
	rawSchema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(rawSchema, &schema); err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(path string, v map[string]any, s map[string]any)
	walk = func(path string, v map[string]any, s map[string]any) {
		props, _ := s["properties"].(map[string]any)
		if props == nil {
			// A free-form object (labels, a Kubernetes type): its keys are the user's.
			return
		}
		for k, child := range v {
			cs, ok := props[k].(map[string]any)
			if !ok {
				missing = append(missing, path+k)
				continue
			}
			if m, ok := child.(map[string]any); ok {
				walk(path+k+".", m, cs)
			}
		}
		if s["additionalProperties"] != false {
			missing = append(missing, path+"* (additionalProperties not false)")
		}
	}
	walk("", vals, schema)
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("values.schema.json does not declare %v", missing)
	}
}

// TestOverridesAndExtras: nameOverride and fullnameOverride name everything, commonLabels reach every
// object, and extraEnv, extraVolumes, extraVolumeMounts and networkPolicy.egress.datasette land where
// they belong.
func TestOverridesAndExtras(t *testing.T) {
	objs := render(t, loadChart(t), map[string]any{
		"fullnameOverride":  "tokens",
		"commonLabels":      map[string]any{"team": "platform"},
		"extraEnv":          []any{map[string]any{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}},
		"extraVolumes":      []any{map[string]any{"name": "ca", "configMap": map[string]any{"name": "corp-ca"}}},
		"extraVolumeMounts": []any{map[string]any{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": true}},
		"networkPolicy": map[string]any{"enabled": true, "egress": map[string]any{"enabled": true, "datasette": []any{
			map[string]any{"to": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "datasette"}}}},
				"ports": []any{map[string]any{"port": 8001, "protocol": "TCP"}}},
		}}},
	})
	for _, o := range objs {
		if o.GetLabels()["team"] != "platform" {
			t.Errorf("%s %s lacks commonLabels", o.GetKind(), o.GetName())
		}
	}
	var d = func() corev1.PodSpec {
		var dep = find(t, objs, "Deployment", namespace, "tokens")
		var spec struct {
			Spec struct {
				Template struct {
					Spec corev1.PodSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		js, _ := dep.MarshalJSON()
		if err := json.Unmarshal(js, &spec); err != nil {
			t.Fatal(err)
		}
		return spec.Spec.Template.Spec
	}()
	c := d.Containers[0]
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "HTTPS_PROXY" }) {
		t.Errorf("env %v lacks extraEnv", c.Env)
	}
	if len(d.Volumes) != 1 || d.Volumes[0].ConfigMap == nil || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/ssl/corp" {
		t.Errorf("volumes %v, mounts %v", d.Volumes, c.VolumeMounts)
	}
	if d.ServiceAccountName != "tokens" {
		t.Errorf("service account %q, want the fullnameOverride", d.ServiceAccountName)
	}
	var np networkingv1.NetworkPolicy
	decode(t, find(t, objs, "NetworkPolicy", namespace, "tokens"), &np)
	if len(np.Spec.Egress) != 2 || np.Spec.Egress[1].Ports[0].Port.IntValue() != 8001 || np.Spec.Egress[1].To[0].NamespaceSelector == nil {
		t.Errorf("egress %+v, want the API server's rule and the Datasette one", np.Spec.Egress)
	}

	named := render(t, loadChart(t), map[string]any{"nameOverride": "dstok"})
	dep := find(t, named, "Deployment", namespace, release+"-dstok")
	if dep.GetLabels()["app.kubernetes.io/name"] != "dstok" {
		t.Errorf("nameOverride: labels %v", dep.GetLabels())
	}
}
