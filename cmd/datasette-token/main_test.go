package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const versionPackage = "github.com/datasette-token-operator/datasette-token-operator/internal/version"

// TestBinary builds datasette-token as a release build does (the version
// set with -ldflags -X) and runs it as a process: --version, and a secret
// and a token read from real files and standard input.
func TestBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is required: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "datasette-token")
	ldflags := "-X " + versionPackage + ".Version=v0.2.0 -X " + versionPackage + ".Commit=abc1234 -X " +
		versionPackage + ".Date=2026-11-30T06:00:00Z"
	if out, err := exec.Command(goTool, "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("datasette-token %q: %v", args, err)
		}
		return string(out)
	}

	if got, want := run("", "--version"), "datasette-token v0.2.0 (commit abc1234, built 2026-11-30T06:00:00Z)\n"; got != want {
		t.Errorf("--version = %q, want %q", got, want)
	}

	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := run("", "create-token", "root", "--secret-file", secretFile, "--issued-at", "1700000000")
	fromStdin := run("s3cret\n", "create-token", "root", "--secret-file", "-", "--issued-at", "1700000000")
	fromArg := run("", "create-token", "root", "--secret", "s3cret", "--issued-at", "1700000000")
	if fromFile != fromArg || fromStdin != fromArg {
		t.Errorf("tokens differ: --secret-file %q, --secret-file - %q, --secret %q", fromFile, fromStdin, fromArg)
	}
	if got := run(fromArg, "verify", "-", "--secret-file", secretFile, "--at", "1700000000"); got != `{"id":"root","token":"dstok"}`+"\n" {
		t.Errorf("verify - = %q", got)
	}
	if got := run(fromArg, "decode", "-"); !strings.Contains(got, "actor:        \"root\"\n") {
		t.Errorf("decode - = %q", got)
	}
}
