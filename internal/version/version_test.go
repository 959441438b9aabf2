package version

import (
	"runtime/debug"
	"testing"
)

func TestInfoString(t *testing.T) {
	got := Info{Version: "v0.2.0", Commit: "abc1234", Date: "2026-11-30T06:00:00Z"}.String()
	if want := "v0.2.0 (commit abc1234, built 2026-11-30T06:00:00Z)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestResolve(t *testing.T) {
	defaults := Info{Version: DefaultVersion, Commit: Unknown, Date: Unknown}
	vcs := &debug.BuildInfo{
		Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-29T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name string
		set  Info
		info *debug.BuildInfo
		want Info
	}{
		{"no build info: defaults", defaults, nil, defaults},
		{"ldflags win over build info", Info{"v0.2.0", "abc1234", "2026-11-30T06:00:00Z"}, vcs,
			Info{"v0.2.0", "abc1234", "2026-11-30T06:00:00Z"}},
		{"checkout build: revision and time", defaults, vcs,
			Info{DefaultVersion, "0123456789ab-dirty", "2026-11-29T10:00:00Z"}},
		{"go install module@version", defaults, &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}},
			Info{"v0.3.1", Unknown, Unknown}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.set, tc.info); got != tc.want {
				t.Errorf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDefaults pins the documented defaults, which the builds' -X flags replace.
func TestDefaults(t *testing.T) {
	if Version != "dev" || Commit != "unknown" || Date != "unknown" {
		t.Errorf("defaults = %q %q %q, want dev unknown unknown", Version, Commit, Date)
	}
}
