package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const aggregatePrefix = "rbac.authorization.k8s.io/aggregate-to-"

// configTenantRoles reads config/rbac's DatasetteToken and DatasetteSigner roles, by name.
func configTenantRoles(t *testing.T) map[string]rbacv1.ClusterRole {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "config/rbac/datasette*_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]rbacv1.ClusterRole{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var r rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(raw, &r); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[r.Name] = r
	}
	if len(out) < 5 {
		t.Fatalf("config/rbac has %d tenant roles, want the token admin/editor/viewer and signer editor/viewer", len(out))
	}
	return out
}

func aggregateLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if strings.HasPrefix(k, aggregatePrefix) {
			out[k] = v
		}
	}
	return out
}

// TestTenantRolesMatchConfig: the chart's tenant roles grant exactly config/rbac's, aggregated the
// same way by default and not at all with rbac.aggregateClusterRoles=false; its copies are current.
func TestTenantRolesMatchConfig(t *testing.T) {
	want := configTenantRoles(t)
	for name := range want {
		src, err := os.ReadFile(filepath.Join(root, "config/rbac", strings.ReplaceAll(name, "-", "_")+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := os.ReadFile(filepath.Join(chartDir, "files/tenant-roles", strings.ReplaceAll(name, "-", "_")+".yaml"))
		if err != nil || !bytes.Equal(src, cp) {
			t.Errorf("files/tenant-roles lacks or differs from config/rbac for %s: run make helm-files (%v)", name, err)
		}
	}
	for _, aggregate := range []bool{true, false} {
		objs := render(t, loadChart(t), map[string]any{"rbac": map[string]any{"aggregateClusterRoles": aggregate}})
		for name, w := range want {
			var got rbacv1.ClusterRole
			decode(t, find(t, objs, "ClusterRole", "", fullname+"-"+name), &got)
			if !reflect.DeepEqual(ruleSet(got.Rules), ruleSet(w.Rules)) {
				t.Errorf("chart role %s grants %v, config/rbac %v", name, ruleSet(got.Rules), ruleSet(w.Rules))
			}
			g := aggregateLabels(got.Labels)
			if aggregate && !reflect.DeepEqual(g, aggregateLabels(w.Labels)) {
				t.Errorf("chart role %s aggregates %v, config/rbac %v", name, g, aggregateLabels(w.Labels))
			}
			if !aggregate && len(g) != 0 {
				t.Errorf("aggregateClusterRoles=false, yet %s has %v", name, g)
			}
		}
	}
}

// TestTenantRoleAggregation pins which built-in role each tenant role joins: tokens view/edit/admin
// into view/edit/admin (each into those above it too), signer view into view (and up), signer edit
// into admin only, and nothing that grants ClusterDatasetteSigners aggregated anywhere.
func TestTenantRoleAggregation(t *testing.T) {
	want := map[string][]string{
		"datasettetoken-admin-role":   {"admin"},
		"datasettetoken-editor-role":  {"admin", "edit"},
		"datasettetoken-viewer-role":  {"admin", "edit", "view"},
		"datasettesigner-editor-role": {"admin"},
		"datasettesigner-viewer-role": {"admin", "edit", "view"},
	}
	roles := configTenantRoles(t)
	for name, into := range want {
		r, ok := roles[name]
		if !ok {
			t.Errorf("config/rbac lacks %s", name)
			continue
		}
		exp := map[string]string{}
		for _, b := range into {
			exp[aggregatePrefix+b] = "true"
		}
		if got := aggregateLabels(r.Labels); !reflect.DeepEqual(got, exp) {
			t.Errorf("%s aggregates %v, want %v", name, got, exp)
		}
	}
	for name, r := range roles {
		for _, p := range ruleSet(r.Rules) {
			if strings.Contains(p, "clusterdatasettesigners") && len(aggregateLabels(r.Labels)) > 0 {
				t.Errorf("%s grants %s and is aggregated", name, p)
			}
		}
	}
}

// tenantRoleCount is how many tenant ClusterRoles the chart renders.
func tenantRoleCount(t *testing.T) int {
	t.Helper()
	return len(configTenantRoles(t))
}
