package helm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tenancyFlags are the manager flags that the chart's tenancy values set.
var tenancyFlags = []string{
	"--min-renewal-interval", "--allow-signing-secret-ref", "--allow-namespaced-probes",
	"--probe-deny-cidrs", "--probe-allow-cidrs", "--key-cache-secret-bytes", "--key-cache-bytes",
}

// flagArgs keeps of args those that set one of flags.
func flagArgs(args, flags []string) []string {
	var out []string
	for _, arg := range args {
		name, _, _ := strings.Cut(arg, "=")
		if slices.Contains(flags, name) {
			out = append(out, arg)
		}
	}
	return out
}

// TestTenancyValues: minRenewalInterval, allowSigningSecretRef, allowNamespacedProbes,
// probeDenyCIDRs, probeAllowCIDRs and keyCache reach the manager as its flags, and only when they differ from the binary's defaults,
// so that the default render leaves them to the binary.
func TestTenancyValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want []string
	}{
		{"defaults", nil, nil},
		{"defaults spelt out", map[string]any{
			"minRenewalInterval": "", "allowSigningSecretRef": true, "allowNamespacedProbes": false,
			"probeDenyCIDRs": []any{}, "probeAllowCIDRs": []any{},
			"keyCache": map[string]any{"secretBytes": "", "bytes": ""},
		}, nil},
		{"every one set", map[string]any{
			"minRenewalInterval": "5m", "allowSigningSecretRef": false, "allowNamespacedProbes": true,
			"probeDenyCIDRs": []any{"10.0.0.10", "192.0.2.0/24"}, "probeAllowCIDRs": []any{"10.96.0.0/12", "fd00::/8"},
			"keyCache": map[string]any{"secretBytes": 131072, "bytes": 33554432},
		}, []string{
			"--min-renewal-interval=5m", "--allow-signing-secret-ref=false", "--allow-namespaced-probes",
			"--probe-deny-cidrs=10.0.0.10,192.0.2.0/24", "--probe-allow-cidrs=10.96.0.0/12,fd00::/8",
			"--key-cache-secret-bytes=131072", "--key-cache-bytes=33554432",
		}},
		// Numbers read from a values file arrive as float64: no exponent may reach the flag.
		{"numbers from a values file", map[string]any{
			"keyCache": map[string]any{"bytes": float64(16 << 21)},
		}, []string{"--key-cache-bytes=33554432"}},
		{"the floor turned off", map[string]any{"minRenewalInterval": "0s"}, []string{"--min-renewal-interval=0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := deployment(t, render(t, loadChart(t), tc.vals)).Spec.Template.Spec.Containers[0]
			if got := flagArgs(c.Args, tenancyFlags); !slices.Equal(got, tc.want) {
				t.Errorf("tenancy args %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTenancyValuesAreManagerFlags: each flag the chart renders is one cmd/manager defines (in
// any of its files), with the default the chart's comments promise.
func TestTenancyValuesAreManagerFlags(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "cmd/manager/*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var src []byte
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	for flag, def := range map[string]string{
		"min-renewal-interval":     `"min-renewal-interval", time.Minute,`,
		"allow-signing-secret-ref": `"allow-signing-secret-ref", true,`,
		"allow-namespaced-probes":  `"allow-namespaced-probes", false,`,
		"probe-deny-cidrs":         `"probe-deny-cidrs", "",`,
		"probe-allow-cidrs":        `"probe-allow-cidrs", "",`,
		"key-cache-secret-bytes":   `"key-cache-secret-bytes", controllers.DefaultKeyCacheSecretBytes,`,
		"key-cache-bytes":          `"key-cache-bytes", controllers.DefaultKeyCacheBytes,`,
	} {
		if !strings.Contains(string(src), def) {
			t.Errorf("cmd/manager does not define --%s as %s", flag, def)
		}
	}
}

// TestTenancyValuesSchema: a value of the wrong shape fails rendering, naming the value.
func TestTenancyValuesSchema(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		path string
	}{
		{"floor not a duration", map[string]any{"minRenewalInterval": "soon"}, "/minRenewalInterval"},
		{"negative floor", map[string]any{"minRenewalInterval": "-1m"}, "/minRenewalInterval"},
		{"floor as a number", map[string]any{"minRenewalInterval": 60}, "/minRenewalInterval"},
		{"allowSigningSecretRef not a bool", map[string]any{"allowSigningSecretRef": "no"}, "/allowSigningSecretRef"},
		{"allowNamespacedProbes not a bool", map[string]any{"allowNamespacedProbes": 1}, "/allowNamespacedProbes"},
		{"probeDenyCIDRs as one string", map[string]any{"probeDenyCIDRs": "10.0.0.0/8"}, "/probeDenyCIDRs"},
		{"probeAllowCIDRs holding a name", map[string]any{"probeAllowCIDRs": []any{"datasette.svc.cluster.local"}}, "/probeAllowCIDRs/0"},
		{"probeAllowCIDRs holding a flag", map[string]any{"probeAllowCIDRs": []any{"10.0.0.0/8 --allow-namespaced-probes"}}, "/probeAllowCIDRs/0"},
		{"cache bytes as text", map[string]any{"keyCache": map[string]any{"bytes": "16Mi"}}, "/keyCache/bytes"},
		{"cache bytes too few", map[string]any{"keyCache": map[string]any{"secretBytes": 64}}, "/keyCache/secretBytes"},
		{"unknown keyCache key", map[string]any{"keyCache": map[string]any{"maxBytes": 1 << 20}}, "maxBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := renderErr(loadChart(t), tc.vals); err == nil {
				t.Fatalf("%v rendered", tc.vals)
			} else if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
		})
	}
}
