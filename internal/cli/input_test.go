package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// writeFile writes content to a new file in a test directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSecretFile(t *testing.T) {
	token := func(secret string) string {
		return mintWith(secret, dstoken.Claims{Actor: "root", IssuedAt: 1}) + "\n"
	}
	env := map[string]string{"DATASETTE_SECRET": "from-env"}
	tests := []struct {
		name    string
		content string // file content, or standard input with path "-"
		path    string // "" = a file holding content
		env     map[string]string
		want    string
	}{
		{"one trailing newline removed", "s3cret\n", "", nil, token("s3cret")},
		{"no newline: the bytes as they are (a mounted Secret)", "s3cret", "", nil, token("s3cret")},
		{"exactly one newline removed", "s3cret\n\n", "", nil, token("s3cret\n")},
		{"only \\n is a newline", "s3cret\r\n", "", nil, token("s3cret\r")},
		{"spaces kept", " s3cret \n", "", nil, token(" s3cret ")},
		{"standard input", "s3cret\n", "-", nil, token("s3cret")},
		{"the file wins over DATASETTE_SECRET", "s3cret\n", "", env, token("s3cret")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = writeFile(t, tc.content)
			}
			r := runMainIn([]string{"create-token", "root", "--secret-file", path, "--issued-at", "1"}, tc.env,
				strings.NewReader(tc.content))
			if r.code != 0 || r.stdout != tc.want || r.stderr != "" {
				t.Errorf("exit %d, stdout %q (want %q), stderr %q", r.code, r.stdout, tc.want, r.stderr)
			}
		})
	}

	t.Run("an empty file is an empty secret, as in Datasette", func(t *testing.T) {
		r := runMain([]string{"create-token", "root", "--secret-file", writeFile(t, "\n"), "--issued-at", "1"}, nil)
		if r.code != 0 || r.stdout != token(strings.Repeat("00", 32)) || !strings.HasPrefix(r.stderr, "Warning: the secret is empty") {
			t.Errorf("%+v", r)
		}
	})
	t.Run("both --secret and --secret-file", func(t *testing.T) {
		r := runMain([]string{"create-token", "root", "--secret", "s", "--secret-file", writeFile(t, "s")}, nil)
		want := usage("datasette-token create-token", "ID") + "Error: '--secret' and '--secret-file' cannot be used together.\n"
		if r.code != 2 || r.stderr != want {
			t.Errorf("exit %d, stderr %q, want %q", r.code, r.stderr, want)
		}
	})
	t.Run("too large: refused, secret not shown", func(t *testing.T) {
		big := strings.Repeat("k", maxSecretFileSize+1)
		r := runMain([]string{"create-token", "root", "--secret-file", writeFile(t, big)}, nil)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "is larger than 1048576 bytes") || strings.Contains(r.stderr, "kkkk") {
			t.Errorf("exit %d, stdout %q, stderr %.200q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("invalid UTF-8: refused, secret not shown", func(t *testing.T) {
		r := runMain([]string{"create-token", "root", "--secret-file", writeFile(t, "hidden\xff")}, nil)
		if r.code != 1 || r.stdout != "" || r.stderr != "Error: the secret is not valid UTF-8 (at byte 6), which Datasette cannot encode\n" {
			t.Errorf("%+v", r)
		}
	})
	t.Run("no standard input", func(t *testing.T) {
		r := runMain([]string{"create-token", "root", "--secret-file", "-"}, nil)
		if r.code != 1 || r.stderr != "Error: read --secret-file: standard input is not available\n" {
			t.Errorf("%+v", r)
		}
	})
	t.Run("verify", func(t *testing.T) {
		tok := mintWith("s3cret", dstoken.Claims{Actor: "root", IssuedAt: fixedNow.Unix()})
		r := runMain([]string{"verify", tok, "--secret-file", writeFile(t, "s3cret\n")}, nil)
		if r.code != 0 || r.stdout != `{"id":"root","token":"dstok"}`+"\n" {
			t.Errorf("%+v", r)
		}
		r = runMain([]string{"verify", tok, "--secret-file", writeFile(t, "other\n")}, map[string]string{"DATASETTE_SECRET": "s3cret"})
		if r.code != 1 || r.stderr != "Datasette would reject this token (HTTP 401): Invalid token signature\n" {
			t.Errorf("the file must win over the environment: %+v", r)
		}
	})
}

func TestTokenFromStdin(t *testing.T) {
	tok := mintWith("s", dstoken.Claims{Actor: "root", IssuedAt: fixedNow.Unix()})
	accepted := `{"id":"root","token":"dstok"}` + "\n"
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
		err   string
	}{
		{"verify: surrounding whitespace trimmed", []string{"verify", "-", "--secret", "s"}, " \t" + tok + "\r\n\n", 0, accepted, ""},
		{"verify: secret from a file, token from stdin", []string{"verify", "-", "--secret-file", writeFile(t, "s\n")}, tok, 0, accepted, ""},
		{"verify: both from stdin", []string{"verify", "-", "--secret-file", "-"}, tok, 2, "",
			usage("datasette-token verify", "TOKEN") + "Error: The token and the secret cannot both be read from standard input ('-').\n"},
		{"verify: empty stdin", []string{"verify", "-", "--secret", "s"}, " \n", 1, "", "Error: read the token: standard input is empty\n"},
		{"decode", []string{"decode", "-"}, tok + "\n", 0, "UNVERIFIED", ""},
		{"decode: stdin over the bound", []string{"decode", "-"}, strings.Repeat("A", maxStdinTokenSize+1), 1, "",
			"Error: read the token: standard input is larger than 1048576 bytes\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runMainIn(tc.args, nil, strings.NewReader(tc.stdin))
			if r.code != tc.code || !strings.HasPrefix(r.stdout, tc.out) || (tc.out == "" && r.stdout != "") || r.stderr != tc.err {
				t.Errorf("exit %d (want %d)\nstdout %q (want prefix %q)\nstderr %q\n want  %q", r.code, tc.code, r.stdout, tc.out, r.stderr, tc.err)
			}
		})
	}
	if r := runMain([]string{"decode", "-"}, nil); r.code != 1 || r.stderr != "Error: read the token: standard input is not available\n" {
		t.Errorf("decode - without stdin: %+v", r)
	}
}
