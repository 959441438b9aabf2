// Package version holds the build's version, commit and date, set at link
// time by both binaries' builds:
//
//	go build -ldflags "-X github.com/datasette-token-operator/datasette-token-operator/internal/version.Version=v0.2.0 \
//	  -X github.com/datasette-token-operator/datasette-token-operator/internal/version.Commit=abc1234 \
//	  -X github.com/datasette-token-operator/datasette-token-operator/internal/version.Date=2026-11-30T06:00:00Z"
//
// A build without those flags falls back to what the Go toolchain records
// (the module version of "go install module@version", the VCS revision and
// time of a build inside a Git checkout). It imports only the standard
// library, so both the manager and the CLI can link it.
package version

import (
	"fmt"
	"runtime/debug"
)

// Defaults of the link-time variables.
const (
	// DefaultVersion is Version when the build did not set it.
	DefaultVersion = "dev"
	// Unknown is Commit and Date when the build did not set them.
	Unknown = "unknown"
)

// Link-time variables (-ldflags -X); see the package documentation.
var (
	// Version is the release, e.g. "v0.2.0" (git describe).
	Version = DefaultVersion
	// Commit is the Git commit the binary was built from.
	Commit = Unknown
	// Date is when the binary was built (RFC 3339, UTC).
	Date = Unknown
)

// Info is a resolved version, commit and date.
type Info struct {
	Version, Commit, Date string
}

// String formats i as "v0.2.0 (commit abc1234, built 2026-11-30T06:00:00Z)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, built %s)", i.Version, i.Commit, i.Date)
}

// Get returns the link-time values, each one the build left at its default
// filled in from the Go toolchain's build information when it has it.
func Get() Info {
	info, _ := debug.ReadBuildInfo()
	return resolve(Info{Version: Version, Commit: Commit, Date: Date}, info)
}

// String is Get().String(): what "--version" prints after the program name.
func String() string { return Get().String() }

// shortRevision is how many hex digits of a VCS revision are kept.
const shortRevision = 12

// resolve fills the fields of set still at their defaults from info (nil:
// nothing to fill from).
func resolve(set Info, info *debug.BuildInfo) Info {
	if info == nil {
		return set
	}
	if set.Version == DefaultVersion && info.Main.Version != "" && info.Main.Version != "(devel)" {
		set.Version = info.Main.Version
	}
	var revision, modified, at string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		case "vcs.time":
			at = s.Value
		}
	}
	if set.Commit == Unknown && revision != "" {
		set.Commit = revision[:min(len(revision), shortRevision)]
		if modified == "true" {
			set.Commit += "-dirty"
		}
	}
	if set.Date == Unknown && at != "" {
		set.Date = at
	}
	return set
}
