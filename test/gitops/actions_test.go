package gitops

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	actionsDir      = argocdDir + "/datasette.io/DatasetteToken/actions"
	renewAnnotation = "datasette.io/renew-requested-at"
)

// newActionState is a Lua state as Argo CD runs action scripts in: the base, table, string, math
// and package libraries, and require("os") giving only os.date and os.time.
func newActionState(obj *unstructured.Unstructured) *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.PreloadModule("os", func(l *lua.LState) int {
		// gopher-lua's os library, cut to what Argo CD's safe os offers scripts here.
		l.Push(l.NewFunction(lua.OpenOs))
		l.Push(lua.LString(lua.OsLibName))
		l.Call(1, 1)
		full := l.Get(-1).(*lua.LTable)
		l.Pop(1)
		safe := l.NewTable()
		for _, f := range []string{"date", "time"} {
			safe.RawSetString(f, full.RawGetString(f))
		}
		l.SetGlobal(lua.OsLibName, lua.LNil)
		l.Push(safe)
		return 1
	})
	l.SetGlobal("obj", toLua(l, obj.Object))
	return l
}

// runLua runs script with obj and returns the table it returns, as Go values.
func runLua(obj *unstructured.Unstructured, path string) (map[string]any, error) {
	script, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l := newActionState(obj)
	defer l.Close()
	if err := l.DoString(string(script)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("%s returned %s, not a table", path, l.Get(-1).Type())
	}
	out, _ := fromLua(ret).(map[string]any)
	return out, nil
}

// fromLua converts a Lua table back into JSON-like Go values (a table with keys 1..n is an array).
func fromLua(v lua.LValue) any {
	switch v := v.(type) {
	case *lua.LTable:
		if n := v.Len(); n > 0 {
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				arr = append(arr, fromLua(v.RawGetInt(i)))
			}
			return arr
		}
		m := map[string]any{}
		v.ForEach(func(k, e lua.LValue) { m[k.String()] = fromLua(e) })
		return m
	case lua.LString:
		return string(v)
	case lua.LBool:
		return bool(v)
	case lua.LNumber:
		if f := float64(v); f == float64(int64(f)) {
			return int64(f)
		}
		return float64(v)
	default:
		return nil
	}
}

// TestArgoCDRenewDiscovery: renew is offered for a token the operator would re-mint, and disabled
// for a suspended or ended one.
func TestArgoCDRenewDiscovery(t *testing.T) {
	for fixture, disabled := range map[string]bool{
		"token-issued":                   false,
		"token-waiting-signing-secret":   false,
		"token-stalled-policy-violation": false,
		"token-suspended-still-valid":    true,
		"token-suspended":                true,
		"token-ended":                    true,
	} {
		t.Run(fixture, func(t *testing.T) {
			got, err := runLua(loadFixture(t, fixture), filepath.Join(actionsDir, "discovery.lua"))
			if err != nil {
				t.Fatal(err)
			}
			renew, ok := got["renew"].(map[string]any)
			if !ok || len(got) != 1 {
				t.Fatalf("discovery returned %v, want one action, renew", got)
			}
			if renew["disabled"] != disabled {
				t.Errorf("renew disabled = %v, want %v", renew["disabled"], disabled)
			}
		})
	}
}

// TestArgoCDRenewAction: the action sets the renew annotation to the current UTC time, creating the
// annotations when there are none, and changes nothing else.
func TestArgoCDRenewAction(t *testing.T) {
	for _, withAnnotations := range []bool{true, false} {
		obj := loadFixture(t, "token-issued")
		if withAnnotations {
			obj.SetAnnotations(map[string]string{"team": "reports", renewAnnotation: "2020-01-01T00:00:00Z"})
		} else {
			obj.SetAnnotations(nil)
		}
		before := time.Now().UTC().Truncate(time.Second)
		got, err := runLua(obj, filepath.Join(actionsDir, "renew", "action.lua"))
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now().UTC()
		out := &unstructured.Unstructured{Object: got}
		ann := out.GetAnnotations()
		at, err := time.Parse(time.RFC3339, ann[renewAnnotation])
		if err != nil {
			t.Fatalf("annotation %q: %v", ann[renewAnnotation], err)
		}
		if at.Before(before) || at.After(after) {
			t.Errorf("renew requested at %s, want between %s and %s (UTC)", at, before, after)
		}
		if withAnnotations && ann["team"] != "reports" {
			t.Errorf("other annotations lost: %v", ann)
		}
		// Nothing else changed.
		want := obj.DeepCopy()
		wantAnn := want.GetAnnotations()
		if wantAnn == nil {
			wantAnn = map[string]string{}
		}
		wantAnn[renewAnnotation] = ann[renewAnnotation]
		want.SetAnnotations(wantAnn)
		if !reflect.DeepEqual(normalize(t, out.Object), normalize(t, want.Object)) {
			t.Errorf("the action changed more than the annotation:\n%v\nwant\n%v", out.Object, want.Object)
		}
	}
}

// normalize round-trips through JSON so that numbers compare alike.
func normalize(t *testing.T, obj map[string]any) map[string]any {
	t.Helper()
	js, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestArgoCDConfigMapCarriesTheActions: argocd-cm.yaml's actions key holds discovery.lua and
// renew/action.lua unchanged, in Argo CD's format.
func TestArgoCDConfigMapCarriesTheActions(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(argocdDir, "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	var actions struct {
		Discovery   string `json:"discovery.lua"`
		Definitions []struct {
			Name   string `json:"name"`
			Action string `json:"action.lua"`
		} `json:"definitions"`
	}
	if err := yaml.UnmarshalStrict([]byte(cm.Data["resource.customizations.actions.datasette.io_DatasetteToken"]), &actions); err != nil {
		t.Fatal(err)
	}
	discovery, _ := os.ReadFile(filepath.Join(actionsDir, "discovery.lua"))
	action, _ := os.ReadFile(filepath.Join(actionsDir, "renew", "action.lua"))
	if actions.Discovery != string(discovery) {
		t.Error("argocd-cm.yaml's discovery.lua differs from actions/discovery.lua")
	}
	if len(actions.Definitions) != 1 || actions.Definitions[0].Name != "renew" || actions.Definitions[0].Action != string(action) {
		t.Error("argocd-cm.yaml's renew action differs from actions/renew/action.lua")
	}
}
