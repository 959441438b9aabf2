package testenv

import (
	"os"
	"strings"
	"testing"
)

// TestDatasetteHelper starts a real release and mints with its create-token: the helper the
// real-release suites use works, or skips saying how to provide the releases.
func TestDatasetteHelper(t *testing.T) {
	r := Datasette(t, "1.0a37")
	out, errOut, status := r.CreateToken(t, "helper-bot", "--secret", "s")
	if status != 0 || !strings.HasPrefix(out, "dstok_") || errOut != "" {
		t.Fatalf("create-token: %d %q %q", status, out, errOut)
	}
	s := r.ServeT(t, "s")
	code, body, err := s.Get("/-/actor.json", strings.TrimSpace(out))
	if err != nil || code != 200 || !strings.Contains(string(body), `"id": "helper-bot"`) {
		t.Fatalf("actor.json: %d %s %v\n%s", code, body, err, s.Log.String())
	}
	s.Stop()
	if _, _, err := s.Get("/-/actor.json", ""); err == nil {
		t.Errorf("the server still answers after Stop")
	}
}

func TestDatasetteSkipsWithoutDir(t *testing.T) {
	t.Setenv(DatasetteReleasesEnv, "")
	if _, err := FindDatasette("1.0a37"); err == nil || !strings.Contains(err.Error(), "pip install datasette==") {
		t.Errorf("FindDatasette without the variable: %v", err)
	}
	dir := t.TempDir()
	t.Setenv(DatasetteReleasesEnv, dir)
	if _, err := FindDatasette("1.0a37"); err == nil {
		t.Errorf("FindDatasette in an empty directory succeeded")
	}
	if err := os.MkdirAll(dir+"/1.0a19/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/1.0a19/bin/datasette", []byte("#!/bin/sh\necho venv \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := FindDatasette("1.0a19")
	if err != nil {
		t.Fatal(err)
	}
	if out, _, status, err := r.Run(nil, "create-token", "x"); err != nil || status != 0 || out != "venv create-token x\n" {
		t.Errorf("venv layout: %q %d %v", out, status, err)
	}
}
