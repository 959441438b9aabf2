package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
)

// clickScript runs testdata/clickref.py's click application (the same
// commands and options as datasette-token, create-token's being Datasette's
// own declarations) on each case with click's CliRunner, and reports exit
// code, stdout and stderr. It prints {"no_click": ...} if click is missing.
const clickScript = `
import json, os, sys
data = json.load(sys.stdin)
cases = data["cases"]
os.environ["DATASETTE_TOKEN_VERSION"] = data["version"]
try:
    import click
    from click.testing import CliRunner
except ImportError as e:
    json.dump({"no_click": str(e)}, sys.stdout)
    sys.exit(0)
sys.path.insert(0, "testdata")
import clickref
from importlib.metadata import version
out = []
for c in cases:
    # terminal_width=78: the help width click uses on a real terminal of 80
    # columns or more (CliRunner otherwise forces 80).
    r = CliRunner().invoke(clickref.cli, c["args"], env=c["env"], prog_name="datasette-token", terminal_width=78)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    out.append({"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr})
json.dump({"click": version("click"), "results": out}, sys.stdout)
`

type clickCase struct {
	Args []string           `json:"args"`
	Env  map[string]*string `json:"env"`
}

type clickResult struct {
	Code   int    `json:"code"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// TestClickDifferential runs every parser test case, and more, through real
// click (Python) and through datasette-token, and requires the same exit
// code, stdout and stderr, or for accepted command lines the same parsed
// values. It needs python3 with click installed; without click it is
// skipped (the table tests still pin click's behaviour).
func TestClickDifferential(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var cases []clickCase
	add := func(args []string, env map[string]string) {
		e := map[string]*string{"DATASETTE_SECRET": nil}
		if v, ok := env["DATASETTE_SECRET"]; ok {
			e["DATASETTE_SECRET"] = &v
		}
		cases = append(cases, clickCase{Args: append([]string{}, args...), Env: e})
	}
	for _, tc := range createTokenParseCases(dir) {
		add(append([]string{"create-token"}, tc.args...), tc.env)
	}
	for _, tc := range createTokenErrorCases(dir, file) {
		if !deliberateDeviations[tc.name] {
			add(append([]string{"create-token"}, tc.args...), tc.env)
		}
	}
	for _, tc := range otherCases() {
		if !strings.Contains(tc.stderr, "usable time") { // NaN: a deliberate deviation
			add(tc.args, nil)
		}
	}
	for _, args := range extraClickCorpus(dir) {
		add(args, nil)
	}
	for _, tc := range secretAndManifestCorpus(dir, file) {
		add(tc.args, tc.env)
	}

	var out struct {
		NoClick string        `json:"no_click"`
		Click   string        `json:"click"`
		Results []clickResult `json:"results"`
	}
	runPython(t, clickScript, map[string]any{"cases": cases, "version": version.String()}, &out)
	if out.NoClick != "" {
		t.Skipf("Python's click is not installed (%s): differential check skipped", out.NoClick)
	}
	t.Logf("compared %d command lines with click %s", len(cases), out.Click)
	for i, c := range cases {
		env := map[string]string{}
		if v := c.Env["DATASETTE_SECRET"]; v != nil {
			env["DATASETTE_SECRET"] = *v
		}
		want := out.Results[i]
		if want.Code == 0 && strings.HasPrefix(want.Stdout, "{") {
			// click accepted it: compare the parsed values.
			got, err := goParsedValues(c.Args, env)
			if err != nil {
				t.Errorf("%q: click accepts it, datasette-token: %v", c.Args, err)
				continue
			}
			var clickValues map[string]any
			dec := json.NewDecoder(strings.NewReader(want.Stdout))
			dec.UseNumber()
			if err := dec.Decode(&clickValues); err != nil {
				t.Fatalf("%q: %v", c.Args, err)
			}
			if !reflect.DeepEqual(got, clickValues) {
				t.Errorf("%q: parsed values differ\n click: %v\n   ours: %v", c.Args, clickValues, got)
			}
			continue
		}
		got := runMain(c.Args, env)
		if got.code != want.Code || got.stdout != want.Stdout || got.stderr != want.Stderr {
			t.Errorf("%q:\n click: code %d stdout %q\n        stderr %q\n  ours: code %d stdout %q\n        stderr %q",
				c.Args, want.Code, want.Stdout, want.Stderr, got.code, got.stdout, got.stderr)
		}
	}
}

// extraClickCorpus are more command lines for the differential test.
func extraClickCorpus(dir string) [][]string {
	return [][]string{
		{"--help"}, {"create-token", "--help"}, {"verify", "--help"}, {"decode", "--help"}, {"completion", "--help"},
		{"manifest", "--help"}, {"manif"},
		{"--version", "--help"}, {"--help", "--version"},
		{"create-token", "root", "--secret", "s", "--plugins-dir=" + dir, "--debug", "-a", "a", "-a", "-b"},
		{"create-token", "--all=x", "root", "-eee", "--secret", "s"},
		{"create-token", "root", "--secret", "s", "-e", "١٢٣"},
		{"create-token", "root", "--secret", "s", "-e", "-0"},
		{"create-token", "root", "--secret", "s", "-e", "0_0"},
		{"create-token", "root", "--secret", "s", "-e", "_1"},
		{"create-token", "root", "--secret", "s", "-e", "+-1"},
		{"create-token", "root", "--secret", "s", "-e", "1 2"},
		{"create-token", "root", "--secret", "s", "-e", "\u00a0 7\u3000"},
		{"create-token", "root", "--secret", "s", "-e", "\u200b7"},
		{"create-token", "root", "--secret", "s", "-e", "٣.٠"},
		{"create-token", "root", "--secret", "s", "--expires-after"},
		{"create-token", "root", "--secret", "s", "--resource", "a", "b", "c", "d"},
		{"create-token", "root", "--secret", "s", "--plugin-dir", dir},
		{"create-token", "root", "--secret", "s", "--resources", "a", "b", "c"},
		{"create-token", "root", "--secret", "s", "--databases", "a", "b"},
		{"create-token", "root", "--secret", "s", "--al", "x"},
		{"create-token", "root", "--secret", "s", "--issued", "1"},
		{"create-token", "root", "--secret", "s", "--SECRET", "x"},
		{"create-token", "root", "--secret", "s", "-E", "1"},
		{"create-token", "root", "--secret", "s", "-h"},
		{"create-token", "root", "--secret", "s", "--h"},
		{"create-token", "root", "--secret", "s", "--he"},
		{"create-token", "root", "--secret", "s", "--x" + strings.Repeat("e", 250)},
		{"create-token", "root", "--secret", "s", "--help=x"},
		{"create-token", "root", "--secret", "s", "--debug", "--debug"},
		{"create-token", "root", "--secret", "s", "-e", "1", "-e", "2", "--issued-at", "3", "--issued-at", "4"},
		{"create-token", "root", "--secret", "s", "-e", "x", "-e", "y"},
		{"create-token", "--", "--secret", "s"},
		{"create-token", "-", "-"},
		{"create-token", "root", "--secret", "s", "-a", "x", "--", "-a"},
		{"create-token", "root", "--secret", "s", "-d", "a", "--", "x"},
		{"create-token", "root", "--plugins-dir", "/nonexistent", "--plugins-dir", dir, "--secret", "s"},
		{"create-token", "root", "--secret", "s", "--plugins-dir", "."},
		{"create-token", "root", "--secret", "s", "--plugins-dir", "it's \"here\""},
		{"verify", "t", "--secret", "s", "--max-ttl", "60", "--at", "1700000000.5"},
		{"verify", "t", "--secret", "s", "--max-ttl", "-5"},
		{"verify", "t", "--secret", "s", "--at", " 1_0.5e1 "},
		{"verify", "t", "--secret", "s", "--at", "1e3"},
		{"verify", "t", "--secret", "s", "--at", ".5"},
		{"verify", "t", "--secret", "s", "--at", "5."},
		{"verify", "t", "--secret", "s", "--at", "-1.25E-2"},
		{"verify", "t", "--secret", "s", "--at", "1_.5"},
		{"verify", "t", "--secret", "s", "--at", "."},
		{"verify", "t", "--secret", "s", "--at", "1e"},
		{"verify", "t", "--secret", "s", "--at", "0x10"},
		{"verify", "t", "--secret", "s", "--at", "١.٥"},
		{"verify", "t", "--secret", "s", "--no-signed-tokens", "--max-ttl", "x"},
		{"verify", "--secret", "s"},
		{"verify", "t"},
		{"verify", "t", "--secret", "s", "--no-signed-token"},
		{"verify", "t", "--secret", "s", "--max"},
		{"verify", "t", "u", "--secret", "s"},
		{"decode", "t", "u"},
		{"decode", "--", "-t"},
		{"decode", "-t"},
		{"completion", "bash", "zsh"},
		{"completion", "BASH"},
		{"completion", "fish"},
		{"comp"}, {"create"}, {"token"}, {"decod"},
		// --datasette-version (releases from 1.0a2 on have every option click's reference has).
		{"create-token", "root", "--secret", "s", "--datasette-version", "1.0a19", "-a", "vi", "-d", "db", "sct"},
		{"create-token", "root", "--secret", "s", "--datasette-version=1.0a2", "--plugins-dir", dir},
		{"create-token", "root", "--secret", "s", "--datasette-version", "1.0a19", "--datasette-version", "1.0rc2"},
		{"create-token", "root", "--secret", "s", "--datasette-version", "2.0"},
		{"create-token", "root", "--secret", "s", "--datasette-version", "0.64"},
		{"create-token", "root", "--secret", "s", "--datasette-version", "0.0a1"},
		{"create-token", "root", "--secret", "s", "--datasette-version", "v1.0a19"},
		{"create-token", "root", "--secret", "s", "--datasette-version", "1.0a19\n"},
		{"create-token", "root", "--secret", "s", "--datasette-version", ""},
		{"create-token", "root", "--secret", "s", "--datasette-version", "1.0a" + strings.Repeat("9", 30)},
		{"create-token", "root", "--secret", "s", "--datasette-version"},
		{"create-token", "root", "--secret", "s", "--datasette"},
		{"create-token", "root", "--secret", "s", "-a", "--datasette-version", "--datasette-version", "1.0a37"},
		{"verify", "t", "--secret", "s", "--datasette-version", "1.0a19"},
		{"verify", "t", "--secret", "s", "--datasette-version", "1.0"},
		{"verify", "t", "--secret", "s", "--datasette-version", "x"},
		{"manifest", "root", "--signer", "dssigner/x", "--datasette-version", "1.0a37"},
		{"manifest", "root", "--signer", "dssigner/x", "--datasette-version", "0.1"},
	}
}

// secretAndManifestCorpus are command lines using --secret-file, a TOKEN
// of "-" and manifest, for the differential test.
func secretAndManifestCorpus(dir, file string) []struct {
	args []string
	env  map[string]string
} {
	env := map[string]string{"DATASETTE_SECRET": "from-env"}
	type c = struct {
		args []string
		env  map[string]string
	}
	return []c{
		{[]string{"create-token", "root", "--secret-file", file}, nil},
		{[]string{"create-token", "root", "--secret-file", file}, env},
		{[]string{"create-token", "root", "--secret-file=-", "--issued-at", "1"}, nil},
		{[]string{"create-token", "root", "--secret", "s", "--secret-file", file}, nil},
		{[]string{"create-token", "root", "--secret-file", file, "--secret", "s"}, env},
		{[]string{"create-token", "root", "--secret-file", file, "--secret", "s", "-e", "x"}, nil},
		{[]string{"create-token", "root", "-e", "x", "--secret-file", file, "--secret", "s"}, nil},
		{[]string{"create-token", "root", "--secret-file", dir}, nil},
		{[]string{"create-token", "root", "--secret-file", "/nonexistent/secret", "--secret", "s"}, nil},
		{[]string{"create-token", "root", "--secret-file"}, nil},
		{[]string{"create-token", "root"}, env},
		{[]string{"create-token", "root", "x"}, nil},
		{[]string{"create-token", "root", "--secret-fil", file}, nil},
		{[]string{"verify", "-", "--secret-file", file}, nil},
		{[]string{"verify", "-", "--secret-file", "-"}, nil},
		{[]string{"verify", "-", "--secret-file", "-", "--max-ttl", "x"}, nil},
		{[]string{"verify", "t", "--secret-file", "-", "--secret", "s"}, nil},
		{[]string{"verify", "t"}, env},
		{[]string{"verify", "t", "--secret-file", file}, env},
		{[]string{"decode", "-"}, nil},
		{[]string{"manifest", "--help"}, nil},
		{[]string{"manifest"}, nil},
		{[]string{"manifest", "root"}, nil},
		{[]string{"manifest", "root", "-e", "3600", "-a", "view-instance", "-d", "db", "execute-sql", "-r", "db", "t", "insert-row",
			"--signer", "DatasetteSigner/x", "--signing-secret", "s:k", "--name", "n", "--namespace", "ns", "--secret-name", "out"}, nil},
		{[]string{"manifest", "root", "--secret", "s"}, env},
		{[]string{"manifest", "root", "--sign", "x"}, nil},
		{[]string{"manifest", "root", "-e", "x", "--name"}, nil},
		{[]string{"manifest", "root", "-d", "db"}, nil},
		{[]string{"manifest", "root", "--debug"}, nil},
	}
}

// goParsedValues parses args with datasette-token and returns the values in
// the form testdata/clickref.py prints them.
func goParsedValues(args []string, env map[string]string) (map[string]any, error) {
	// Standard input holds "-", so that a TOKEN of "-" reads as click reports it.
	streams := IOStreams{In: strings.NewReader("-"), Getenv: func(k string) string { return env[k] }, Now: func() time.Time { return fixedNow }}
	num := func(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }
	switch args[0] {
	case "create-token":
		o := NewCreateTokenOptions(streams)
		if err := o.Complete(args[1:]); err != nil {
			return nil, err
		}
		v := map[string]any{"id": o.ID, "secret": optional(o.flagValue, o.given || o.fromEnv), "secret_file": optional(o.File, o.fileGiven), "debug": o.Debug,
			"all": strs(o.All), "database": []any{}, "resource": []any{},
			"expires_after": nil, "issued_at": nil, "plugins_dir": nil, "datasette_version": optional(o.DatasetteVersion, o.Profile != nil)}
		if o.expiresAfterSet {
			v["expires_after"] = num(o.ExpiresAfter)
		}
		if o.issuedAtSet {
			v["issued_at"] = num(o.IssuedAt)
		}
		if o.PluginsDir != "" {
			v["plugins_dir"] = o.PluginsDir
		}
		for _, d := range o.Databases {
			v["database"] = append(v["database"].([]any), []any{d.Database, d.Actions[0]})
		}
		for _, r := range o.Resources {
			v["resource"] = append(v["resource"].([]any), []any{r.Database, r.Resource, r.Actions[0]})
		}
		return v, nil
	case "verify":
		o := NewVerifyOptions(streams)
		if err := o.Complete(args[1:]); err != nil {
			return nil, err
		}
		v := map[string]any{"token": o.Token, "secret": optional(o.flagValue, o.given || o.fromEnv),
			"secret_file": optional(o.File, o.fileGiven), "max_ttl": num(o.MaxTTL),
			"at": nil, "no_signed_tokens": o.NoSignedTokens, "datasette_version": optional(o.DatasetteVersion, o.Profile != nil)}
		if o.atSet {
			v["at"] = json.Number(pyFloatRepr(o.At))
		}
		return v, nil
	case "decode":
		o := NewDecodeOptions(streams)
		err := o.Complete(args[1:])
		return map[string]any{"token": o.Token}, err
	case "manifest":
		o := NewManifestOptions(streams)
		if err := o.Complete(args[1:]); err != nil {
			return nil, err
		}
		v := map[string]any{"id": o.ID, "all": strs(o.All), "database": []any{}, "resource": []any{},
			"expires_after": nil, "signer": optional(o.Signer, o.signerSet),
			"signing_secret": optional(o.SigningSecret, o.signingSecretSet), "name": optional(o.Name, o.nameSet),
			"namespace": optional(o.Namespace, o.Namespace != ""), "secret_name": optional(o.SecretName, o.SecretName != ""),
			"datasette_version": optional(o.DatasetteVersion, o.Profile != nil)}
		if o.expiresAfterSet {
			v["expires_after"] = num(o.ExpiresAfter)
		}
		for _, d := range o.Databases {
			v["database"] = append(v["database"].([]any), []any{d.Database, d.Actions[0]})
		}
		for _, r := range o.Resources {
			v["resource"] = append(v["resource"].([]any), []any{r.Database, r.Resource, r.Actions[0]})
		}
		return v, nil
	case "completion":
		o := NewCompletionOptions(streams)
		err := o.Complete(args[1:])
		return map[string]any{"shell": o.Shell}, err
	}
	return nil, fmt.Errorf("no parsed values for %q", args)
}

// optional is s as click reports an option: None (nil) when not given.
func optional(s string, given bool) any {
	if !given {
		return nil
	}
	return s
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
