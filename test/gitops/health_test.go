package gitops

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// Argo CD's health codes (github.com/argoproj/gitops-engine/pkg/health).
const (
	healthy     = "Healthy"
	progressing = "Progressing"
	degraded    = "Degraded"
	suspended   = "Suspended"
)

// verdicts maps each fixture in testdata/ to what Argo CD (through health.lua) and kstatus must say.
// Every fixture must be listed, and every listed fixture must exist.
var verdicts = map[string]struct {
	argo        string
	kstatus     status.Status
	messageHas  string // a substring of Argo CD's message, when it matters
	description string
}{
	// DatasetteToken.
	"token-new-no-status": {progressing, status.CurrentStatus, "observe",
		"kstatus reads a missing status as Current: that is why the CRD defaults observedGeneration to -1"},
	"token-new-unobserved":           {progressing, status.InProgressStatus, "observe", "observedGeneration -1: not yet reconciled"},
	"token-issued":                   {healthy, status.CurrentStatus, "Issued", "Ready=True"},
	"token-waiting-signing-secret":   {progressing, status.InProgressStatus, "SigningSecretNotFound", "the Secret may be on its way"},
	"token-waiting-signer-not-ready": {progressing, status.InProgressStatus, "SignerNotReady", "the signer may become Ready"},
	"token-stalled-policy-violation": {degraded, status.FailedStatus, "PolicyViolation", "a person must act"},
	"token-stalled-secret-conflict":  {degraded, status.FailedStatus, "SecretConflict", "a person must act"},
	"token-suspended-still-valid":    {suspended, status.CurrentStatus, "Issued", "suspended, the kept token still valid"},
	// cli-utils reads Ready=False without Reconciling or Stalled as InProgress (checkReadyCondition),
	// so the operator sets Stalled beside these two: kstatus says Failed, final, and no sync waits
	// on them; Argo CD has a state of its own for them. See pausedTokens.
	"token-suspended":                 {suspended, status.FailedStatus, "Suspended", "suspended, the kept token no longer valid"},
	"token-ended":                     {suspended, status.FailedStatus, "Ended", "notAfter passed: nothing more will happen"},
	"token-restart-targets-not-ready": {healthy, status.CurrentStatus, "RestartTargetsReady=False", "a missing rollout target does not change Ready"},
	"token-old-observed-generation":   {progressing, status.InProgressStatus, "generation 3", "the operator has not seen the latest spec"},
	// DatasetteSigner.
	"signer-unobserved":       {progressing, status.InProgressStatus, "observe", "observedGeneration -1"},
	"signer-ready":            {healthy, status.CurrentStatus, "Ready", "Ready=True"},
	"signer-secret-not-found": {progressing, status.InProgressStatus, "SecretNotFound", "the Secret may be on its way"},
	"signer-key-missing":      {degraded, status.FailedStatus, "KeyMissing", "a person must act"},
	// ClusterDatasetteSigner.
	"clustersigner-new-no-status":           {progressing, status.CurrentStatus, "observe", "kstatus reads a missing status as Current"},
	"clustersigner-ready":                   {healthy, status.CurrentStatus, "Ready", "Ready=True"},
	"clustersigner-old-observed-generation": {progressing, status.InProgressStatus, "generation 4", "the operator has not seen the latest spec"},
	"clustersigner-key-missing":             {degraded, status.FailedStatus, "KeyMissing", "a person must act"},
}

func TestFixturesAllHaveVerdicts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		seen[name] = true
		if _, ok := verdicts[name]; !ok {
			t.Errorf("testdata/%s.yaml has no expected verdict", name)
		}
	}
	for name := range verdicts {
		if !seen[name] {
			t.Errorf("verdict for %s has no testdata/%s.yaml", name, name)
		}
	}
}

func TestArgoCDHealth(t *testing.T) {
	for _, name := range sortedFixtures() {
		want := verdicts[name]
		t.Run(name, func(t *testing.T) {
			obj := loadFixture(t, name)
			got, msg, err := argoHealth(obj)
			if err != nil {
				t.Fatal(err)
			}
			if got != want.argo {
				t.Errorf("Argo CD health = %s (%q), want %s: %s", got, msg, want.argo, want.description)
			}
			if !strings.Contains(msg, want.messageHas) {
				t.Errorf("Argo CD message %q does not mention %q", msg, want.messageHas)
			}
		})
	}
}

func TestKstatus(t *testing.T) {
	for _, name := range sortedFixtures() {
		want := verdicts[name]
		t.Run(name, func(t *testing.T) {
			res, err := status.Compute(loadFixture(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != want.kstatus {
				t.Errorf("kstatus = %s (%q), want %s: %s", res.Status, res.Message, want.kstatus, want.description)
			}
		})
	}
}

// pausedTokens lists the fixtures of tokens that nothing but a person will change (suspended with
// an expired token, or ended): Stalled, so kstatus says Failed, while Argo CD says Suspended.
// kstatus has no state for "done on purpose, but not Ready".
var pausedTokens = map[string]bool{"token-suspended": true, "token-ended": true}

// TestArgoAndKstatusAgree checks the two readings never contradict each other where both have an
// opinion: Degraded exactly when Failed, and Healthy or Suspended only when Current.
func TestArgoAndKstatusAgree(t *testing.T) {
	for name, v := range verdicts {
		if pausedTokens[name] {
			if v.argo != suspended || v.kstatus != status.FailedStatus {
				t.Errorf("%s: listed in pausedTokens but Argo CD %s, kstatus %s", name, v.argo, v.kstatus)
			}
			continue
		}
		if (v.argo == degraded) != (v.kstatus == status.FailedStatus) {
			t.Errorf("%s: Argo CD %s but kstatus %s", name, v.argo, v.kstatus)
		}
		if (v.argo == healthy || v.argo == suspended) && v.kstatus != status.CurrentStatus {
			t.Errorf("%s: Argo CD %s but kstatus %s", name, v.argo, v.kstatus)
		}
	}
}

// TestArgoCDConfigMapCarriesTheScripts checks that config/argocd/argocd-cm.yaml, the ready-made
// argocd-cm patch, holds each health.lua unchanged.
func TestArgoCDConfigMapCarriesTheScripts(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(argocdDir, "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatalf("argocd-cm.yaml: %v", err)
	}
	for _, kind := range []string{"DatasetteToken", "DatasetteSigner", "ClusterDatasetteSigner"} {
		key := "resource.customizations.health.datasette.io_" + kind
		script, err := os.ReadFile(scriptPath(kind))
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data[key] != string(script) {
			t.Errorf("argocd-cm.yaml %s differs from %s", key, scriptPath(kind))
		}
	}
	if len(cm.Data) != 4 {
		t.Errorf("argocd-cm.yaml has %d keys, want 4 (three health checks, one actions)", len(cm.Data))
	}
}

const argocdDir = "../../config/argocd"

func scriptPath(kind string) string {
	return filepath.Join(argocdDir, "datasette.io", kind, "health.lua")
}

func sortedFixtures() []string {
	names := make([]string, 0, len(verdicts))
	for name := range verdicts {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func loadFixture(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Decode as the API machinery does (integers stay int64), not as plain JSON.
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return obj
}

// argoHealth runs the kind's health.lua as Argo CD does: the object as the global `obj`, only the
// base, table, string and math libraries open, and a table {status, message} returned.
func argoHealth(obj *unstructured.Unstructured) (string, string, error) {
	script, err := os.ReadFile(scriptPath(obj.GetKind()))
	if err != nil {
		return "", "", fmt.Errorf("no health.lua for %s: %w", obj.GetKind(), err)
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(string(script)); err != nil {
		return "", "", fmt.Errorf("health.lua for %s: %w", obj.GetKind(), err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health.lua for %s returned %s, not a table", obj.GetKind(), l.Get(-1).Type())
	}
	st := lua.LVAsString(ret.RawGetString("status"))
	switch st {
	case healthy, progressing, degraded, suspended, "Missing", "Unknown":
	default:
		return "", "", fmt.Errorf("health.lua for %s returned status %q, which Argo CD does not know", obj.GetKind(), st)
	}
	return st, lua.LVAsString(ret.RawGetString("message")), nil
}

// toLua converts decoded JSON into Lua values the way Argo CD does: objects and arrays become
// tables (arrays 1-indexed), numbers become numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(toLua(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		panic(fmt.Sprintf("unexpected %T in an object", v))
	}
}
