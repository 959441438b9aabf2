package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const root = "../.."

// readme returns README.md's text.
func readme(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return files
}

// reasons maps each exported Reason* string constant of the files to its value.
func reasons(files []*ast.File) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range spec.Names {
				if !strings.HasPrefix(name.Name, "Reason") || i >= len(spec.Values) {
					continue
				}
				if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, err := strconv.Unquote(lit.Value); err == nil {
						out[name.Name] = v
					}
				}
			}
			return true
		})
	}
	return out
}

// TestReadmeNamesEveryReason: each reason the controllers set (Ready, RestartTargetsReady,
// InstanceVerified), declared in the API package, is in README.md, written as code.
func TestReadmeNamesEveryReason(t *testing.T) {
	text := readme(t)
	found := reasons(parseDir(t, "api/v1alpha1"))
	if len(found) < 20 {
		t.Fatalf("found only %d Reason constants in api/v1alpha1/: %v", len(found), found)
	}
	var missing []string
	for name, value := range found {
		if !strings.Contains(text, "`"+value+"`") {
			missing = append(missing, name+" ("+value+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README.md does not name the reasons %v", missing)
	}
}

// managerFlags returns the names of the flags cmd/manager defines through a FlagSet's *Var
// methods (flag.CommandLine's included).
func managerFlags(files []*ast.File) []string {
	var out []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Var") {
				return true
			}
			if lit, ok := call.Args[1].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil {
					out = append(out, v)
				}
			}
			return true
		})
	}
	return out
}

// TestReadmeDocumentsEveryFlag: each flag of cmd/manager is a row of README.md's flags table.
func TestReadmeDocumentsEveryFlag(t *testing.T) {
	text := readme(t)
	_, table, ok := strings.Cut(text, "### The manager's flags")
	if !ok {
		t.Fatal("README.md has no section \"The manager's flags\"")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	flags := managerFlags(parseDir(t, "cmd/manager"))
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in cmd/manager: %v", len(flags), flags)
	}
	for _, name := range flags {
		if !strings.Contains(table, "`--"+name+"`") {
			t.Errorf("README.md's flags table lacks --%s", name)
		}
	}
}

// TestReadmeDocumentsEveryValue: each top-level key of the chart's values.yaml is in README.md's
// values table.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	text := readme(t)
	raw, err := os.ReadFile(filepath.Join(root, "charts/datasette-token-operator/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(raw, &vals); err != nil {
		t.Fatal(err)
	}
	for key := range vals {
		if !strings.Contains(text, "`"+key+"`") && !strings.Contains(text, "`"+key+".") && !strings.Contains(text, "`"+key+":") {
			t.Errorf("README.md's values table lacks %s", key)
		}
	}
}
