// Package sbom checks the SBOM that `make sbom` writes (dist/manager.sbom.cdx.json): a CycloneDX
// document of the manager whose components are exactly the modules linked into it.
package sbom

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/datasette-token-operator/datasette-token-operator"

func TestManagerSBOM(t *testing.T) {
	path := os.Getenv("SBOM")
	if path == "" {
		path = filepath.Join("..", "..", "dist", "manager.sbom.cdx.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("DATASETTE_TOKEN_REQUIRE_SBOM") != "" {
			t.Fatalf("%v: run make sbom", err)
		}
		t.Skipf("%v: run make sbom (make sbom-check requires it)", err)
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct {
				Name string `json:"name"`
				Purl string `json:"purl"`
				Type string `json:"type"`
			} `json:"component"`
		} `json:"metadata"`
		Components []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Purl    string `json:"purl"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
		t.Fatalf("bomFormat %q, specVersion %q", bom.BOMFormat, bom.SpecVersion)
	}
	if bom.Metadata.Component.Name != module || bom.Metadata.Component.Type != "application" {
		t.Errorf("the SBOM describes %+v, want the application %s", bom.Metadata.Component, module)
	}

	// The modules the manager links, as the image builds it.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}}@{{.Version}}{{end}}{{end}}", "./cmd/manager")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	want := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		want[l] = true
	}
	got := map[string]bool{}
	for _, c := range bom.Components {
		if c.Name == "std" {
			continue
		}
		got[c.Name+"@"+c.Version] = true
		if !strings.HasPrefix(c.Purl, "pkg:golang/") {
			t.Errorf("component %s has purl %q", c.Name, c.Purl)
		}
	}
	var missing, extra []string
	for m := range want {
		if !got[m] {
			missing = append(missing, m)
		}
	}
	for m := range got {
		if !want[m] {
			extra = append(extra, m)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("the SBOM is not the manager's module graph (stale? run make sbom): missing %v, extra %v", missing, extra)
	}
	if len(want) < 20 {
		t.Errorf("go list found only %d modules", len(want))
	}
}
