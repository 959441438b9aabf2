package helm

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// baseCRDs decodes config/crd/bases, by CRD name.
func baseCRDs(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for name, data := range readDir(t, filepath.Join(root, "config/crd/bases")) {
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(js); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[o.GetName()] = o
	}
	if len(out) == 0 {
		t.Fatal("config/crd/bases is empty")
	}
	return out
}

func renderedCRDs(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			out[o.GetName()] = o
		}
	}
	return out
}

// TestCRDTemplatesMatchConfig renders the chart and checks each CRD it carries is config/crd/bases'
// own, with only the release's labels and the keep annotation added: the schema that `helm upgrade`
// applies is the one controller-gen generated.
func TestCRDTemplatesMatchConfig(t *testing.T) {
	want := baseCRDs(t)
	got := renderedCRDs(render(t, loadChart(t), nil))
	if len(got) != len(want) {
		t.Errorf("rendered %d CRDs, config/crd/bases has %d", len(got), len(want))
	}
	for name, base := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("CRD %s not rendered", name)
			continue
		}
		if r.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s lacks helm.sh/resource-policy: keep: %v", name, r.GetAnnotations())
		}
		labels := r.GetLabels()
		for k, v := range map[string]string{"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": release, "app.kubernetes.io/name": "datasette-token-operator"} {
			if labels[k] != v {
				t.Errorf("CRD %s label %s=%q, want %q", name, k, labels[k], v)
			}
		}
		stripped := r.DeepCopy()
		ann := stripped.GetAnnotations()
		delete(ann, "helm.sh/resource-policy")
		stripped.SetAnnotations(ann)
		stripped.SetLabels(nil)
		if !reflect.DeepEqual(stripped.Object, base.Object) {
			t.Errorf("rendered CRD %s differs from config/crd/bases beyond labels and the keep annotation", name)
		}
	}
}

// TestCRDToggles: crds.keep=false drops the annotation (helm uninstall then deletes the CRDs);
// crds.enabled=false renders none; the chart has no crds/ directory, whose CRDs Helm would install
// beside the templates' (and never upgrade).
func TestCRDToggles(t *testing.T) {
	c := loadChart(t)
	if objs := c.CRDObjects(); len(objs) != 0 {
		t.Errorf("the chart has %d CRDs in crds/; they belong in files/crds/", len(objs))
	}
	for name, o := range renderedCRDs(render(t, c, map[string]any{"crds": map[string]any{"keep": false}})) {
		if _, ok := o.GetAnnotations()["helm.sh/resource-policy"]; ok {
			t.Errorf("crds.keep=false, yet CRD %s has helm.sh/resource-policy", name)
		}
	}
	if got := renderedCRDs(render(t, c, map[string]any{"crds": map[string]any{"enabled": false}})); len(got) != 0 {
		t.Errorf("crds.enabled=false, yet %d CRDs rendered", len(got))
	}
}

// crdCount is how many CRDs config/crd/bases holds (the chart renders each).
func crdCount(t *testing.T) int {
	t.Helper()
	return len(baseCRDs(t))
}

// TestNotesFollowCRDValues: the install notes say what helm uninstall will do to the CRDs.
func TestNotesFollowCRDValues(t *testing.T) {
	for _, tc := range []struct {
		vals map[string]any
		want string
	}{
		{nil, "helm uninstall leaves them"},
		{map[string]any{"crds": map[string]any{"keep": false}}, "helm uninstall DELETES them"},
		{map[string]any{"crds": map[string]any{"enabled": false}}, "apply the CRDs yourself"},
	} {
		c := loadChart(t)
		rv, err := chartutil.ToRenderValues(c, tc.vals, chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true}, chartutil.DefaultCapabilities)
		if err != nil {
			t.Fatal(err)
		}
		files, err := engine.Render(c, rv)
		if err != nil {
			t.Fatal(err)
		}
		notes := files["datasette-token-operator/templates/NOTES.txt"]
		if !strings.Contains(notes, tc.want) {
			t.Errorf("%v: NOTES lack %q:\n%s", tc.vals, tc.want, notes)
		}
	}
}
