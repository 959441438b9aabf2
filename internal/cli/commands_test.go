package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// mintWith mints the token datasette-token should print for claims.
func mintWith(secret string, c dstoken.Claims) string {
	return dstoken.NewMinter([]byte(secret)).Mint(c)
}

func TestCreateTokenRun(t *testing.T) {
	dir := t.TempDir()
	zeroSecret := strings.Repeat("00", 32) // hex of the 32 "random" zero bytes tests use
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		stdout string
		stderr string
	}{
		{"clock gives t", []string{"root", "--secret", "s"}, nil,
			mintWith("s", dstoken.Claims{Actor: "root", IssuedAt: fixedNow.Unix()}) + "\n", ""},
		{"secret from the environment", []string{"root", "--issued-at", "5"}, map[string]string{"DATASETTE_SECRET": "env"},
			mintWith("env", dstoken.Claims{Actor: "root", IssuedAt: 5}) + "\n", ""},
		{"-e 0 writes no d", []string{"root", "--secret", "s", "-e", "0"}, nil,
			mintWith("s", dstoken.Claims{Actor: "root", IssuedAt: fixedNow.Unix()}) + "\n", ""},
		{"empty secret: random secret and a warning", []string{"root", "--secret", "", "--issued-at", "1"}, nil,
			mintWith(zeroSecret, dstoken.Claims{Actor: "root", IssuedAt: 1}) + "\n",
			"Warning: the secret is empty, so (like Datasette) a random secret is used instead: nothing will be able to verify this token.\n"},
		{"unknown actions warned in Datasette's order, duplicates included",
			[]string{"root", "--secret", "s", "-r", "db", "t", "r1", "-d", "db", "d1", "-a", "a1", "-a", "view-table", "-a", "a1", "--issued-at", "1"}, nil,
			mintWith("s", dstoken.Claims{Actor: "root", IssuedAt: 1, Restrictions: dstoken.Restrictions{
				All:       []string{"a1", "view-table", "a1"},
				Databases: []dstoken.DatabaseActions{{Database: "db", Actions: []string{"d1"}}},
				Resources: []dstoken.ResourceActions{{Database: "db", Resource: "t", Actions: []string{"r1"}}},
			}}) + "\n",
			"  Unknown permission: a1 \n  Unknown permission: a1 \n  Unknown permission: d1 \n  Unknown permission: r1 \n"},
		{"--plugins-dir note", []string{"root", "--secret", "s", "--plugins-dir", dir, "-a", "my-plugin-action", "--issued-at", "1"}, nil,
			mintWith("s", dstoken.Claims{Actor: "root", IssuedAt: 1, Restrictions: dstoken.Restrictions{All: []string{"my-plugin-action"}}}) + "\n",
			"Note: datasette-token cannot load Datasette plugins from --plugins-dir " + dir +
				": actions defined by plugins are written unabbreviated (in full), which Datasette accepts, and may be reported below as unknown.\n" +
				"  Unknown permission: my-plugin-action \n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runMain(append([]string{"create-token"}, tc.args...), tc.env)
			if r.code != 0 || r.stdout != tc.stdout || r.stderr != tc.stderr {
				t.Errorf("exit %d\nstdout %q\n want  %q\nstderr %q\n want  %q", r.code, r.stdout, tc.stdout, r.stderr, tc.stderr)
			}
		})
	}
}

// TestIssuedAtZero checks "--issued-at 0" signs "t":0, not the current time.
func TestIssuedAtZero(t *testing.T) {
	r := runMain([]string{"create-token", "root", "--secret", "s", "--issued-at", "0"}, nil)
	want := dstoken.Prefix + itsdangerousSign("s", `{"a":"root","t":0}`) + "\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout %q, want %q", r.code, r.stdout, want)
	}
}

// itsdangerousSign signs payload as Datasette signs tokens.
func itsdangerousSign(secret, payload string) string {
	return itsdangerous.NewSigner(dstoken.Salt, []byte(secret)).Sign([]byte(payload))
}

func TestCreateTokenColouredWarning(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main([]string{"create-token", "root", "--secret", "s", "-a", "foo"}, IOStreams{
		Out: &out, ErrOut: &errOut, ErrColor: true,
		Getenv: func(string) string { return "" }, Now: time.Now, Rand: zeroReader{},
	})
	if want := "\x1b[31m  Unknown permission: foo \x1b[0m\n"; code != 0 || errOut.String() != want {
		t.Errorf("exit %d, stderr %q, want %q", code, errOut.String(), want)
	}
}

func TestCreateTokenRejectsInvalidUTF8(t *testing.T) {
	for _, args := range [][]string{
		{"create-token", "ro\xffot", "--secret", "s"},
		{"create-token", "root", "--secret", "s\xff"},
		{"create-token", "root", "--secret", "s", "-a", "\xff"},
		{"create-token", "root", "--secret", "s", "-r", "db", "t\xfe", "view-table"},
	} {
		r := runMain(args, nil)
		if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, "UTF-8") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestVerify(t *testing.T) {
	token := mintWith("s", dstoken.Claims{Actor: "root", IssuedAt: fixedNow.Unix(), ExpiresAfter: 60,
		Restrictions: dstoken.Restrictions{All: []string{"view-instance"}}})
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string
		stderr string
	}{
		{"accepted at the clock's time", []string{token, "--secret", "s"}, nil, 0,
			`{"id":"root","token":"dstok","_r":{"a":["vi"]},"token_expires":1700000060}` + "\n", ""},
		{"secret from the environment", []string{token}, map[string]string{"DATASETTE_SECRET": "s"}, 0,
			`{"id":"root","token":"dstok","_r":{"a":["vi"]},"token_expires":1700000060}` + "\n", ""},
		{"valid at exactly t+d", []string{token, "--secret", "s", "--at", "1700000060"}, nil, 0,
			`{"id":"root","token":"dstok","_r":{"a":["vi"]},"token_expires":1700000060}` + "\n", ""},
		{"expired half a second later", []string{token, "--secret", "s", "--at", "1700000060.5"}, nil, 1, "",
			"Datasette would reject this token (HTTP 401): Token has expired\n"},
		{"max TTL caps the lifetime", []string{token, "--secret", "s", "--max-ttl", "30", "--at", "1700000031"}, nil, 1, "",
			"Datasette would reject this token (HTTP 401): Token has expired\n"},
		{"wrong secret", []string{token, "--secret", "x"}, nil, 1, "",
			"Datasette would reject this token (HTTP 401): Invalid token signature\n"},
		{"signed tokens disabled", []string{token, "--secret", "s", "--no-signed-tokens"}, nil, 1, "",
			"Datasette would reject this token (HTTP 401): Signed tokens are not enabled for this Datasette instance\n"},
		{"not a Datasette token", []string{"abc", "--secret", "s"}, nil, 1, "",
			"Datasette would ignore this token: it does not start with \"dstok_\" (the request would stay anonymous)\n"},
		{"empty secret", []string{token, "--secret", ""}, nil, 1, "",
			"Warning: the secret is empty, so (like Datasette) a random secret is used instead: no signature can match.\n" +
				"Datasette would reject this token (HTTP 401): Invalid token signature\n"},
		{"missing secret", []string{token}, nil, 2, "", usage("datasette-token verify", "TOKEN") + "Error: Missing option '--secret' (env var: 'DATASETTE_SECRET'). Or read it from a file with '--secret-file'.\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runMain(append([]string{"verify"}, tc.args...), tc.env)
			if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.stderr {
				t.Errorf("exit %d (want %d)\nstdout %q\n want  %q\nstderr %q\n want  %q", r.code, tc.code, r.stdout, tc.stdout, r.stderr, tc.stderr)
			}
		})
	}
	// A payload on which Datasette's verify_token raises (no "a" key).
	bad := dstoken.Prefix + itsdangerousSign("s", `{"t":1700000000}`)
	if r := runMain([]string{"verify", bad, "--secret", "s"}, nil); r.code != 1 || r.stderr != "Datasette would fail with HTTP 500 (KeyError)\n" {
		t.Errorf("KeyError payload: %+v", r)
	}
}

func TestDecode(t *testing.T) {
	token := mintWith("s", dstoken.Claims{Actor: "root", IssuedAt: 1700000000, ExpiresAfter: 3600,
		Restrictions: dstoken.Restrictions{
			All:       []string{"view-instance", "my-action"},
			Databases: []dstoken.DatabaseActions{{Database: "db", Actions: []string{"create-table", "execute-sql"}}},
			Resources: []dstoken.ResourceActions{{Database: "db", Resource: "t", Actions: []string{"insert-row"}}},
		}})
	r := runMain([]string{"decode", token}, nil)
	want := `UNVERIFIED: the signature was not checked; anyone can forge these claims.
actor:        "root"
issued at:    2023-11-14T22:13:20Z (1700000000)
expires:      2023-11-14T23:13:20Z (1700003600: 3600 seconds after issue)
restrictions:
  all:        "view-instance", "my-action"
  database:   "db": "create-table", "execute-sql"
  resource:   "db" / "t": "insert-row"
payload:      {"a":"root","t":1700000000,"d":3600,"_r":{"a":["vi","my-action"],"d":{"db":["ct","es"]},"r":{"db":{"t":["ir"]}}}}
`
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}

	plain := runMain([]string{"decode", mintWith("k", dstoken.Claims{Actor: "bob", IssuedAt: 1})}, nil)
	if !strings.Contains(plain.stdout, "expires:      never") || !strings.Contains(plain.stdout, "restrictions: none") {
		t.Errorf("unrestricted token:\n%s", plain.stdout)
	}
	empty := runMain([]string{"decode", dstoken.Prefix + itsdangerousSign("k", `{"a":"x","t":1,"_r":{}}`)}, nil)
	if !strings.Contains(empty.stdout, `restrictions: "_r" is present but grants nothing`) {
		t.Errorf(`"_r": {} token:\n%s`, empty.stdout)
	}
	if r := runMain([]string{"decode", "abc"}, nil); r.code != 1 || !strings.HasPrefix(r.stderr, "Error: decode token: ") {
		t.Errorf("decode abc: %+v", r)
	}
}

// TestCompletionScripts checks each script is syntactically valid for its
// shell (bash is required; zsh and fish are checked when installed) and
// that bash completes subcommands, options and action names.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runMain([]string{"completion", shell}, nil)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "datasette-token") {
			t.Fatalf("completion %s: %+v", shell, r)
		}
		path, err := exec.LookPath(shell)
		if err != nil {
			if shell == "bash" {
				t.Fatalf("bash is required: %v", err)
			}
			t.Logf("%s not installed: syntax not checked", shell)
			continue
		}
		script := filepath.Join(t.TempDir(), "completion."+shell)
		if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(path, "-n", script).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}

	bash := runMain([]string{"completion", "bash"}, nil).stdout
	complete := func(words ...string) string {
		t.Helper()
		script := bash + `
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _datasette_token; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command("bash", append([]string{"-c", script, "bash"}, words...)...).Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v", words, err)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"datasette-token", "cr"}, "create-token"},
		{[]string{"datasette-token", ""}, "completion create-token decode manifest verify --help --version"},
		{[]string{"datasette-token", "ma"}, "manifest"},
		{[]string{"datasette-token", "manifest", "--s"}, "--signer --signing-secret --secret-name"},
		{[]string{"datasette-token", "manifest", "--signer", "Cl"}, "ClusterDatasetteSigner/"},
		{[]string{"datasette-token", "manifest", "root", "-d", "db", "view-t"}, "view-table"},
		{[]string{"datasette-token", "manifest", "--name", "x"}, ""},
		{[]string{"datasette-token", "create-token", "--secret-"}, "--secret-file"},
		{[]string{"datasette-token", "verify", "--secret-file", "/nonexistent-dir/"}, ""},
		{[]string{"datasette-token", "create-token", "--de"}, "--debug"},
		{[]string{"datasette-token", "create-token", "-a", "view-d"}, "view-database view-database-download"},
		{[]string{"datasette-token", "create-token", "-d", "db", "execute-"}, "execute-sql execute-write-sql"},
		{[]string{"datasette-token", "create-token", "-d", "d"}, ""},
		{[]string{"datasette-token", "create-token", "-r", "db", "t", "insert"}, "insert-row"},
		{[]string{"datasette-token", "verify", "--n"}, "--no-signed-tokens"},
		{[]string{"datasette-token", "completion", "z"}, "zsh"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
}
