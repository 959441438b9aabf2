package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const root = "../.."

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

func TestPrometheusRuleCarriesTheAlerts(t *testing.T) {
	var alerts, pr map[string]any
	readYAML(t, "config/prometheus/alerts.yaml", &alerts)
	readYAML(t, "config/prometheus/prometheusrule.yaml", &pr)
	spec, _ := pr["spec"].(map[string]any)
	if !reflect.DeepEqual(spec["groups"], alerts["groups"]) {
		t.Error("config/prometheus/prometheusrule.yaml's spec.groups differ from alerts.yaml: run make helm-files")
	}
}

// TestEveryAlertHasARunbook checks each alert's runbook_url names a section of docs/runbooks.md,
// and that it says how bad it is and what happened.
func TestEveryAlertHasARunbook(t *testing.T) {
	var f ruleFile
	readYAML(t, "config/prometheus/alerts.yaml", &f)
	runbooks, err := os.ReadFile(filepath.Join(root, "docs/runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)\s*$`).FindAllStringSubmatch(string(runbooks), -1) {
		anchors[strings.ToLower(m[1])] = true
	}
	const prefix = "https://github.com/datasette-token-operator/datasette-token-operator/blob/main/docs/runbooks.md#"
	want := []string{"DatasetteTokenExpiringSoon", "DatasetteTokenNotReady", "DatasetteTokenMintsFailing", "DatasetteTokenNeverExpires", "DatasetteSignerInstanceRejectsKey", "DatasetteTokenOperatorAbsent"}
	var got []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			got = append(got, r.Alert)
			url := r.Annotations["runbook_url"]
			if !strings.HasPrefix(url, prefix) || strings.TrimPrefix(url, prefix) != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook_url %q, want %s%s", r.Alert, url, prefix, strings.ToLower(r.Alert))
			}
			if !anchors[strings.ToLower(r.Alert)] {
				t.Errorf("%s: docs/runbooks.md has no section ## %s", r.Alert, r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" || r.For == "" {
				t.Errorf("%s: needs a summary, a description and a for", r.Alert)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
	for a := range anchors {
		found := false
		for _, g := range got {
			found = found || strings.ToLower(g) == a
		}
		if !found {
			t.Errorf("docs/runbooks.md has a section %s for no alert", a)
		}
	}
}

type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardShape checks the dashboard has the panels the operator's users look for and queries
// only series that exist: the operator's own and controller-runtime's.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" {
		t.Error("the dashboard has no uid: importing it twice would duplicate it")
	}
	titles := make([]string, 0, len(d.Panels))
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	for _, want := range []string{"Tokens by state", "Time to expiry", "Mints by reason", "Reconcile errors", "Reconcile latency"} {
		found := false
		for _, title := range titles {
			found = found || title == want
		}
		if !found {
			t.Errorf("no panel %q in %v", want, titles)
		}
	}
	known := regexp.MustCompile(`^(datasette_token_(expiry_timestamp_seconds|issued_timestamp_seconds|renewal_timestamp_seconds|ready|ready_reason|mints_total|operator_build_info)|` +
		`datasette_signer_(ready|ready_reason|tokens)|` +
		`controller_runtime_reconcile_(total|errors_total|time_seconds_bucket)|workqueue_depth|up)$`)
	metric := regexp.MustCompile(`\b([a-z_]+)\{`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllStringSubmatch(tg.Expr, -1) {
				if !known.MatchString(m[1]) {
					t.Errorf("panel %q queries %s, which nothing exports", p.Title, m[1])
				}
			}
		}
	}
}

// TestDashboardQueriesParse has promtool parse every dashboard query, with Grafana's variables
// replaced by values. make test-alerts sets PROMTOOL; without it there is no PromQL parser here.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		t.Skip("PROMTOOL is not set: make test-alerts runs this test with bin/promtool")
	}
	d := readDashboard(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$namespace", ".*")
	var f strings.Builder
	f.WriteString("groups:\n- name: dashboard\n  rules:\n")
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			n++
			expr, err := json.Marshal(vars.Replace(tg.Expr))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&f, "  - record: dashboard:query%d\n    expr: %s\n", n, expr)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, []byte(f.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's %d queries: %v\n%s", n, err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d rules found", n)) {
		t.Errorf("promtool did not check %d rules:\n%s", n, out)
	}
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config/grafana/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
