package cli

import (
	"os/exec"
	"strings"
	"testing"
)

const commandPackage = "github.com/datasette-token-operator/datasette-token-operator/cmd/datasette-token"

// TestNoKubernetesDependencies keeps datasette-token fast to start: it must
// link no Kubernetes package (k8s.io/..., sigs.k8s.io/...), such as
// client-go or controller-runtime, whose init work costs milliseconds.
func TestNoKubernetesDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is required: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", commandPackage).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", commandPackage, err)
	}
	nonStd := strings.Fields(string(out))
	for _, pkg := range nonStd {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/") {
			t.Errorf("%s depends on %s", commandPackage, pkg)
		}
	}
	t.Logf("non-standard packages linked: %s", strings.Join(nonStd, " "))
}
