package cli

import (
	"fmt"
	"strings"
	"testing"
)

// TestManifestYAML pins manifest's output for typical and awkward command lines.
func TestManifestYAML(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"typical: merging in order of first appearance",
			[]string{"ci-bot", "-e", "86400", "-a", "view-instance", "-d", "analytics", "view-database",
				"-r", "analytics", "events", "insert-row", "-d", "raw", "view-database", "-d", "analytics", "execute-sql",
				"-r", "raw", "logs", "view-table", "-r", "analytics", "events", "update-row", "-a", "view-instance",
				"--signer", "DatasetteSigner/analytics", "--namespace", "analytics", "--secret-name", "ci-writer-token"},
			`apiVersion: datasette.io/v1alpha1
kind: DatasetteToken
metadata:
  name: ci-bot
  namespace: analytics
spec:
  actor: ci-bot
  expiresAfter: 24h
  restrictions:
    all:
    - view-instance
    - view-instance
    databases:
    - name: analytics
      actions:
      - view-database
      - execute-sql
    - name: raw
      actions:
      - view-database
    resources:
    - database: analytics
      resource: events
      actions:
      - insert-row
      - update-row
    - database: raw
      resource: logs
      actions:
      - view-table
  signerRef:
    kind: DatasetteSigner
    name: analytics
  secretName: ci-writer-token
`},
		{"never expires, no restrictions, signing Secret with its key",
			[]string{"root", "-e", "0", "--signing-secret", "datasette:SECRET_KEY", "--name", "root.token"},
			`apiVersion: datasette.io/v1alpha1
kind: DatasetteToken
metadata:
  name: root.token
spec:
  actor: root
  signingSecretRef:
    name: datasette
    key: SECRET_KEY
`},
		{"cluster signer by short name; name derived from the actor; strings YAML would misread",
			[]string{"CI Bot@Example.COM", "-e", "90", "--signer", "cdssigner/shared", "-a", "yes", "-a", "null",
				"-d", "1:20", "2001-12-14", "-d", "on", "~", "-r", "#db", "a: b", "- x", "-a", " lead\ttab"},
			`apiVersion: datasette.io/v1alpha1
kind: DatasetteToken
metadata:
  name: ci-bot-example-com
spec:
  actor: CI Bot@Example.COM
  expiresAfter: 1m30s
  restrictions:
    all:
    - "yes"
    - "null"
    - " lead\ttab"
    databases:
    - name: "1:20"
      actions:
      - "2001-12-14"
    - name: "on"
      actions:
      - "~"
    resources:
    - database: '#db'
      resource: 'a: b'
      actions:
      - '- x'
  signerRef:
    kind: ClusterDatasetteSigner
    name: shared
`},
		{"control characters are escaped",
			[]string{"evil\x1b[31m\r\n\u2028", "--name", "evil", "--signer", "DatasetteSigner/s", "-e", "3601"},
			`apiVersion: datasette.io/v1alpha1
kind: DatasetteToken
metadata:
  name: evil
spec:
  actor: "evil\e[31m\r\n\L"
  expiresAfter: 1h1s
  signerRef:
    kind: DatasetteSigner
    name: s
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ManifestYAML(tc.args)
			if err != nil {
				t.Fatalf("ManifestYAML: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			r := runMain(append([]string{"manifest"}, tc.args...), nil)
			if r.code != 0 || r.stdout != tc.want {
				t.Errorf("the command printed (exit %d):\n%s", r.code, r.stdout)
			}
		})
	}
}

func TestManifestWarnsUnknownActions(t *testing.T) {
	r := runMain([]string{"manifest", "root", "--signer", "dssigner/s", "-a", "my-plugin-action", "-d", "db", "view-table"}, nil)
	if r.code != 0 || r.stderr != "  Unknown permission: my-plugin-action \n" || !strings.Contains(r.stdout, "my-plugin-action") {
		t.Errorf("%+v", r)
	}
}

func TestManifestErrors(t *testing.T) {
	u := usage("datasette-token manifest", "ID") + "Error: "
	signer := []string{"--signer", "DatasetteSigner/s"}
	with := func(args ...string) []string { return append(append([]string{}, signer...), args...) }
	many := func(flag string, n int, value func(i int) []string) []string {
		var args []string
		for i := range n {
			args = append(append(args, flag), value(i)...)
		}
		return args
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // stderr; exit 2 when it starts with "Usage:", else 1
	}{
		{"no signer", []string{"root"}, u + "Missing option '--signer' or '--signing-secret' (the signing key the operator mints with).\n"},
		{"both signers", with("root", "--signing-secret", "s"), u + "'--signer' and '--signing-secret' cannot be used together.\n"},
		{"signer without a slash", []string{"root", "--signer", "s"},
			u + "Invalid value for '--signer': 's' is not KIND/NAME (DatasetteSigner/NAME or ClusterDatasetteSigner/NAME).\n"},
		{"signer of another kind", []string{"root", "--signer", "Secret/s"},
			u + "Invalid value for '--signer': the kind 'Secret' is neither DatasetteSigner nor ClusterDatasetteSigner.\n"},
		{"signer name", []string{"root", "--signer", "DatasetteSigner/S_1"},
			u + "Invalid value for '--signer': the signer name 'S_1' is not a valid DNS subdomain (lower-case letters, digits, '-' and '.') of at most 253 characters.\n"},
		{"signing Secret name", []string{"root", "--signing-secret", ":KEY"},
			u + "Invalid value for '--signing-secret': the Secret name '' is not a valid DNS subdomain (lower-case letters, digits, '-' and '.') of at most 253 characters.\n"},
		{"signing Secret key", []string{"root", "--signing-secret", "s:a/b"},
			u + "Invalid value for '--signing-secret': the key 'a/b' is not a valid Secret key (letters, digits, '-', '_' and '.', at most 253).\n"},
		{"name", with("root", "--name", "Root"),
			u + "Invalid value for '--name': 'Root' is not a valid DNS subdomain (lower-case letters, digits, '-' and '.') of at most 253 characters.\n"},
		{"namespace", with("root", "--namespace", "a.b"),
			u + "Invalid value for '--namespace': 'a.b' is not a valid DNS label (lower-case letters, digits and '-') of at most 63 characters.\n"},
		{"secret name", with("root", "--secret-name", "-x"),
			u + "Invalid value for '--secret-name': '-x' is not a valid DNS subdomain (lower-case letters, digits, '-' and '.') of at most 253 characters.\n"},
		{"negative lifetime", with("root", "-e", "-5"),
			u + "Invalid value for '-e' / '--expires-after': -5: a DatasetteToken's lifetime must be positive (0: never expires).\n"},
		{"lifetime beyond a duration", with("root", "-e", "9223372037"),
			u + "Invalid value for '-e' / '--expires-after': 9223372037 seconds is longer than a DatasetteToken's expiresAfter can be (9223372036).\n"},
		{"no name from the actor", with("日本"), "Error: cannot derive a DatasetteToken name from the actor ID: give one with --name\n"},
		{"empty actor", with("", "--name", "x"), "Error: the actor ID is empty, which a DatasetteToken does not allow\n"},
		{"invalid UTF-8", with("ro\xffot"), "Error: cannot write a DatasetteToken Datasette could mint: dstoken: text is not valid UTF-8: actor id \"ro\\xffot\"\n"},
		{"empty database", with("root", "-d", "", "view-table"),
			"Error: cannot write these restrictions as a DatasetteToken: a database name is empty, which a DatasetteToken does not allow\n"},
		{"action too long", with("root", "-a", strings.Repeat("x", 257)),
			"Error: cannot write these restrictions as a DatasetteToken: -a: an action has 257 characters, more than a DatasetteToken allows (256)\n"},
		{"too many -a", with(append([]string{"root"}, many("-a", 65, func(int) []string { return []string{"view-table"} })...)...),
			"Error: cannot write these restrictions as a DatasetteToken: -a: 65 actions are more than a DatasetteToken allows (64)\n"},
		{"too many actions once merged", with(append([]string{"root"}, many("-d", 65, func(int) []string { return []string{"db", "view-table"} })...)...),
			"Error: cannot write these restrictions as a DatasetteToken: -d \"db\": 65 actions are more than a DatasetteToken allows (64)\n"},
		{"too many databases", with(append([]string{"root"}, many("-d", 1025, func(i int) []string { return []string{fmt.Sprint("db", i), "view-table"} })...)...),
			"Error: cannot write these restrictions as a DatasetteToken: 1025 databases are more than a DatasetteToken allows (1024)\n"},
		{"too many actions in all", with(append([]string{"root"}, many("-d", 1024*8, func(i int) []string { return []string{fmt.Sprint("db", i/8), fmt.Sprint("a", i%8)} })...)...),
			"Error: cannot write these restrictions as a DatasetteToken: 9216 entries and actions in all are more than a DatasetteToken allows (8192)\n"},
		{"too many characters in all", with(append([]string{"root"}, many("-d", 200, func(i int) []string { return []string{fmt.Sprintf("%04d%s", i, strings.Repeat("x", 996)), "vt"} })...)...),
			"Error: cannot write these restrictions as a DatasetteToken: 200400 characters of names and actions in all are more than a DatasetteToken allows (131072)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runMain(append([]string{"manifest"}, tc.args...), nil)
			code := 1
			if strings.HasPrefix(tc.want, "Usage:") {
				code = 2
			}
			if r.code != code || r.stdout != "" || r.stderr != tc.want {
				t.Errorf("exit %d (want %d), stdout %q\nstderr %q\n want  %q", r.code, code, r.stdout, r.stderr, tc.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	for sec, want := range map[int64]string{
		1: "1s", 59: "59s", 60: "1m", 90: "1m30s", 3600: "1h", 3601: "1h1s", 3660: "1h1m",
		86400: "24h", 86461: "24h1m1s", 9223372036: "2562047h47m16s",
	} {
		if got := durationString(sec); got != want {
			t.Errorf("durationString(%d) = %q, want %q", sec, got, want)
		}
	}
}

func TestDeriveName(t *testing.T) {
	for actor, want := range map[string]string{
		"root":                         "root",
		"CI Bot@Example.COM":           "ci-bot-example-com",
		"--a__b--":                     "a-b",
		"user:42":                      "user-42",
		"é-tudiant":                    "tudiant",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "-b": strings.Repeat("a", 62),
	} {
		if got, err := deriveName(actor); err != nil || got != want {
			t.Errorf("deriveName(%q) = %q, %v; want %q", actor, got, err, want)
		}
	}
	for _, actor := range []string{"", "日本", "---"} {
		if got, err := deriveName(actor); err == nil {
			t.Errorf("deriveName(%q) = %q, want an error", actor, got)
		}
	}
}
