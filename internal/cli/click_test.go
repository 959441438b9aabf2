package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// parsed is what create-token's parser produced, for table comparisons.
type parsed struct {
	ID, Secret   string
	Expires      int64
	All          []string
	Databases    []dstoken.DatabaseActions
	Resources    []dstoken.ResourceActions
	Debug        bool
	PluginsDir   string
	IssuedAt     int64
	issuedAtUser bool
}

func parseCreateToken(args []string, env map[string]string) (parsed, error) {
	o := NewCreateTokenOptions(IOStreams{
		Getenv: func(k string) string { return env[k] },
		Now:    func() time.Time { return fixedNow },
	})
	err := o.Complete(args)
	return parsed{o.ID, o.Secret, o.ExpiresAfter, o.All, o.Databases, o.Resources, o.Debug, o.PluginsDir, o.IssuedAt, o.issuedAtSet}, err
}

func db(name, action string) dstoken.DatabaseActions {
	return dstoken.DatabaseActions{Database: name, Actions: []string{action}}
}

func res(name, resource, action string) dstoken.ResourceActions {
	return dstoken.ResourceActions{Database: name, Resource: resource, Actions: []string{action}}
}

// TestCreateTokenParsing checks what click accepts, and how it reads it.
// Every case was checked against click 8.4 with Datasette's declarations
// (testdata/clickref.py; click_diff_test.go re-checks them automatically).
func TestCreateTokenParsing(t *testing.T) {
	for _, tc := range createTokenParseCases(t.TempDir()) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCreateToken(tc.args, tc.env)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.args, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parse %q:\n got %+v\nwant %+v", tc.args, got, tc.want)
			}
		})
	}
}

// parseCase is a create-token command line click accepts, and how it reads it.
type parseCase struct {
	name string
	args []string
	env  map[string]string
	want parsed
}

// createTokenParseCases are the accepted command lines; dir is an existing
// directory.
func createTokenParseCases(dir string) []parseCase {
	now := fixedNow.Unix()
	return []parseCase{
		{"minimal", []string{"root", "--secret", "s"}, nil,
			parsed{ID: "root", Secret: "s", IssuedAt: now}},
		{"options before the ID", []string{"--secret", "s", "-e", "60", "root"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 60, IssuedAt: now}},
		{"--name=value", []string{"root", "--secret=s", "--expires-after=60"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 60, IssuedAt: now}},
		{"empty --secret= is given, not missing", []string{"root", "--secret="}, nil,
			parsed{ID: "root", Secret: "", IssuedAt: now}},
		{"attached short value", []string{"root", "--secret", "s", "-e3600"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 3600, IssuedAt: now}},
		{"value that looks like an option is taken", []string{"root", "--secret", "--debug"}, nil,
			parsed{ID: "root", Secret: "--debug", IssuedAt: now}},
		{"nargs=2 values taken even if they begin with -", []string{"root", "--secret", "s", "-d", "-x", "-y"}, nil,
			parsed{ID: "root", Secret: "s", Databases: []dstoken.DatabaseActions{db("-x", "-y")}, IssuedAt: now}},
		{"--database=db action: first value after =", []string{"root", "--secret", "s", "--database=db", "act"}, nil,
			parsed{ID: "root", Secret: "s", Databases: []dstoken.DatabaseActions{db("db", "act")}, IssuedAt: now}},
		{"-ddb action: first value attached", []string{"root", "--secret", "s", "-ddb", "act"}, nil,
			parsed{ID: "root", Secret: "s", Databases: []dstoken.DatabaseActions{db("db", "act")}, IssuedAt: now}},
		{"--resource=db t action", []string{"root", "--secret", "s", "--resource=db", "t", "ir"}, nil,
			parsed{ID: "root", Secret: "s", Resources: []dstoken.ResourceActions{res("db", "t", "ir")}, IssuedAt: now}},
		{"-rdb t action", []string{"root", "--secret", "s", "-rdb", "t", "ir"}, nil,
			parsed{ID: "root", Secret: "s", Resources: []dstoken.ResourceActions{res("db", "t", "ir")}, IssuedAt: now}},
		{"repeatable options keep order", []string{"root", "--secret", "s", "-a", "x", "-d", "d1", "a1", "--all", "y", "-d", "d2", "a2"}, nil,
			parsed{ID: "root", Secret: "s", All: []string{"x", "y"}, Databases: []dstoken.DatabaseActions{db("d1", "a1"), db("d2", "a2")}, IssuedAt: now}},
		{"combined short option takes rest of word: -ae", []string{"root", "--secret", "s", "-ae"}, nil,
			parsed{ID: "root", Secret: "s", All: []string{"e"}, IssuedAt: now}},
		{"-- ends options", []string{"--secret", "s", "--", "-5"}, nil,
			parsed{ID: "-5", Secret: "s", IssuedAt: now}},
		{"- alone is positional", []string{"-", "--secret", "s"}, nil,
			parsed{ID: "-", Secret: "s", IssuedAt: now}},
		{"empty ID", []string{"", "--secret", "s"}, nil,
			parsed{ID: "", Secret: "s", IssuedAt: now}},
		{"last -e wins, earlier invalid one never converted", []string{"root", "--secret", "s", "-e", "x", "-e", "5"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 5, IssuedAt: now}},
		{"secret from DATASETTE_SECRET", []string{"root"}, map[string]string{"DATASETTE_SECRET": "env"},
			parsed{ID: "root", Secret: "env", IssuedAt: now}},
		{"--secret beats DATASETTE_SECRET, even empty", []string{"root", "--secret", ""}, map[string]string{"DATASETTE_SECRET": "env"},
			parsed{ID: "root", Secret: "", IssuedAt: now}},
		{"--debug flag", []string{"root", "--secret", "s", "--debug"}, nil,
			parsed{ID: "root", Secret: "s", Debug: true, IssuedAt: now}},
		{"--plugins-dir existing directory", []string{"root", "--secret", "s", "--plugins-dir", dir}, nil,
			parsed{ID: "root", Secret: "s", PluginsDir: dir, IssuedAt: now}},
		{"--issued-at", []string{"root", "--secret", "s", "--issued-at", "1234"}, nil,
			parsed{ID: "root", Secret: "s", IssuedAt: 1234, issuedAtUser: true}},
		// Python int(): whitespace, sign, underscores, Unicode digits.
		{"int: surrounding whitespace", []string{"root", "--secret", "s", "-e", " \t12\n"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 12, IssuedAt: now}},
		{"int: plus sign", []string{"root", "--secret", "s", "-e", "+5"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 5, IssuedAt: now}},
		{"int: negative", []string{"root", "--secret", "s", "-e", "-5"}, nil,
			parsed{ID: "root", Secret: "s", Expires: -5, IssuedAt: now}},
		{"int: underscores", []string{"root", "--secret", "s", "-e", "1_000"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 1000, IssuedAt: now}},
		{"int: leading zeros", []string{"root", "--secret", "s", "-e", "007"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 7, IssuedAt: now}},
		{"int: Arabic-Indic digits", []string{"root", "--secret", "s", "-e", "٣٠"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 30, IssuedAt: now}},
		{"int: U+2003 EM SPACE and U+00A0 are whitespace", []string{"root", "--secret", "s", "-e", "\u2003\u00a09\v"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 9, IssuedAt: now}},
		{"int: 64-bit max", []string{"root", "--secret", "s", "-e", "9223372036854775807"}, nil,
			parsed{ID: "root", Secret: "s", Expires: 9223372036854775807, IssuedAt: now}},
	}
}

// TestCreateTokenUsageErrors checks click's exact error output (stderr) and
// exit status 2 for everything create-token rejects while parsing.
func TestCreateTokenUsageErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range createTokenErrorCases(dir, file) {
		t.Run(tc.name, func(t *testing.T) {
			r := runMain(append([]string{"create-token"}, tc.args...), tc.env)
			if r.code != 2 || r.stderr != tc.stderr || r.stdout != "" {
				t.Errorf("create-token %q:\n code %d, stdout %q\n stderr %q\n want %q", tc.args, r.code, r.stdout, r.stderr, tc.stderr)
			}
		})
	}
}

// errorCase is a create-token command line click rejects, with its stderr.
type errorCase struct {
	name   string
	args   []string
	env    map[string]string
	stderr string
}

// deliberateDeviations name cases where datasette-token knowingly differs
// from click: Python integers are unbounded, ours are 64-bit.
var deliberateDeviations = map[string]bool{"beyond 64 bits": true}

// createTokenErrorCases are the rejected command lines; dir is an existing
// directory holding the regular file file.
func createTokenErrorCases(dir, file string) []errorCase {
	u := usage("datasette-token create-token", "ID")
	return []errorCase{
		{"missing ID", []string{"--secret", "s"}, nil, u + "Error: Missing argument 'ID'.\n"},
		{"no arguments at all", nil, nil, u + "Error: Missing argument 'ID'.\n"},
		{"missing secret", []string{"root"}, nil, u + "Error: Missing option '--secret' (env var: 'DATASETTE_SECRET'). Or read it from a file with '--secret-file'.\n"},
		{"empty DATASETTE_SECRET counts as missing", []string{"root"}, map[string]string{"DATASETTE_SECRET": ""},
			u + "Error: Missing option '--secret' (env var: 'DATASETTE_SECRET'). Or read it from a file with '--secret-file'.\n"},
		{"missing ID is reported before missing secret", nil, nil, u + "Error: Missing argument 'ID'.\n"},
		{"one extra argument", []string{"root", "--secret", "s", "x"}, nil, u + "Error: Got unexpected extra argument (x)\n"},
		{"extra arguments", []string{"root", "x", "y", "--secret", "s"}, nil, u + "Error: Got unexpected extra arguments (x y)\n"},
		{"extra argument after --", []string{"root", "--secret", "s", "--", "--debug"}, nil, u + "Error: Got unexpected extra argument (--debug)\n"},
		{"unknown long option", []string{"root", "--secret", "s", "--foo"}, nil, u + "Error: No such option '--foo'.\n"},
		{"unknown long option with =", []string{"root", "--foo=bar"}, nil, u + "Error: No such option '--foo'.\n"},
		{"no prefix matching, with suggestion", []string{"root", "--secre", "s"}, nil,
			u + "Error: No such option '--secre'. (Did you mean one of: '--secret', '--secret-file'?)\n"},
		{"suggestion for --expires", []string{"root", "--expires", "5"}, nil,
			u + "Error: No such option '--expires'. Did you mean '--expires-after'?\n"},
		{"difflib suggestion for --da", []string{"root", "--da", "db", "x"}, nil,
			u + "Error: No such option '--da'. Did you mean '--all'?\n"},
		{"several suggestions", []string{"root", "--dbug"}, nil,
			u + "Error: No such option '--dbug'. Did you mean '--debug'?\n"},
		{"---secret", []string{"---secret"}, nil, u + "Error: No such option '---secret'. (Did you mean one of: '--secret', '--secret-file'?)\n"},
		{"unknown short option", []string{"root", "-x"}, nil, u + "Error: No such option '-x'.\n"},
		{"negative-number-looking ID", []string{"-5", "--secret", "s"}, nil, u + "Error: No such option '-5'.\n"},
		{"unknown short option in a group", []string{"-xe", "5"}, nil, u + "Error: No such option '-x'.\n"},
		{"non-ASCII short option", []string{"-ée"}, nil, u + "Error: No such option '-é'.\n"},
		{"-d requires 2 arguments (no usage lines, like click)", []string{"root", "--secret", "s", "-d", "db"}, nil,
			"Error: Option '-d' requires 2 arguments.\n"},
		{"--database requires 2 arguments", []string{"root", "--secret", "s", "--database"}, nil,
			"Error: Option '--database' requires 2 arguments.\n"},
		{"-ddb with nothing after", []string{"root", "--secret", "s", "-ddb"}, nil,
			"Error: Option '-d' requires 2 arguments.\n"},
		{"--resource=a b is one short", []string{"root", "--secret", "s", "--resource=a", "b"}, nil,
			"Error: Option '--resource' requires 3 arguments.\n"},
		{"-r requires 3 arguments", []string{"root", "--secret", "s", "-r", "a", "b"}, nil,
			"Error: Option '-r' requires 3 arguments.\n"},
		{"-a requires an argument", []string{"root", "--secret", "s", "-a"}, nil,
			"Error: Option '-a' requires an argument.\n"},
		{"--secret requires an argument", []string{"root", "--secret"}, nil,
			"Error: Option '--secret' requires an argument.\n"},
		{"flag does not take a value", []string{"root", "--secret", "s", "--debug=1"}, nil,
			"Error: Option '--debug' does not take a value.\n"},
		{"non-integer expiry", []string{"root", "--secret", "s", "-e", "x"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': 'x' is not a valid integer.\n"},
		{"float expiry", []string{"root", "--secret", "s", "--expires-after", "5.0"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '5.0' is not a valid integer.\n"},
		{"hex expiry", []string{"root", "--secret", "s", "-e", "0x10"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '0x10' is not a valid integer.\n"},
		{"double underscore", []string{"root", "--secret", "s", "-e", "1__0"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '1__0' is not a valid integer.\n"},
		{"trailing underscore", []string{"root", "--secret", "s", "-e", "10_"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '10_' is not a valid integer.\n"},
		{"U+001C is not whitespace for int()", []string{"root", "--secret", "s", "-e", "\x1c9"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '\\x1c9' is not a valid integer.\n"},
		{"empty expiry", []string{"root", "--secret", "s", "-e", ""}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '' is not a valid integer.\n"},
		{"-e=5 keeps the =", []string{"root", "--secret", "s", "-e=5"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '=5' is not a valid integer.\n"},
		{"-ex", []string{"root", "--secret", "s", "-ex"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': 'x' is not a valid integer.\n"},
		{"repr uses double quotes around a single quote", []string{"root", "--secret", "s", "-e", "it's"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': \"it's\" is not a valid integer.\n"},
		{"repr escapes", []string{"root", "--secret", "s", "-e", "a\"b'\n\x01é\u2028\x7f"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': 'a\"b\\'\\n\\x01é\\u2028\\x7f' is not a valid integer.\n"},
		{"beyond 64 bits", []string{"root", "--secret", "s", "-e", "9223372036854775808"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': '9223372036854775808' is out of range (datasette-token handles 64-bit integers only).\n"},
		{"bad --issued-at", []string{"root", "--secret", "s", "--issued-at", "now"}, nil,
			u + "Error: Invalid value for '--issued-at': 'now' is not a valid integer.\n"},
		{"--plugins-dir missing", []string{"root", "--secret", "s", "--plugins-dir", filepath.Join(dir, "nope")}, nil,
			u + "Error: Invalid value for '--plugins-dir': Directory '" + filepath.Join(dir, "nope") + "' does not exist.\n"},
		{"--plugins-dir is a file", []string{"root", "--secret", "s", "--plugins-dir", file}, nil,
			u + "Error: Invalid value for '--plugins-dir': Directory '" + file + "' is a file.\n"},
		{"--plugins-dir empty", []string{"root", "--secret", "s", "--plugins-dir", ""}, nil,
			u + "Error: Invalid value for '--plugins-dir': Directory '' does not exist.\n"},
		// Processing order: typed parameters in the order typed, then the rest.
		{"first typed bad value is reported", []string{"root", "--plugins-dir", "/nonexistent", "-e", "x", "--secret", "s"}, nil,
			u + "Error: Invalid value for '--plugins-dir': Directory '/nonexistent' does not exist.\n"},
		{"first typed bad value is reported (other order)", []string{"root", "-e", "x", "--plugins-dir", "/nonexistent", "--secret", "s"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': 'x' is not a valid integer.\n"},
		{"typed bad value before missing ID", []string{"-e", "x"}, nil,
			u + "Error: Invalid value for '-e' / '--expires-after': 'x' is not a valid integer.\n"},
		{"missing secret before extra arguments", []string{"root", "x"}, nil, u + "Error: Missing option '--secret' (env var: 'DATASETTE_SECRET'). Or read it from a file with '--secret-file'.\n"},
		{"splitting errors come before everything", []string{"-e", "x", "--foo"}, nil, u + "Error: No such option '--foo'.\n"},
		{"--help does not rescue a splitting error", []string{"--help", "--foo"}, nil, u + "Error: No such option '--foo'.\n"},
		{"missing ID after --", []string{"--secret", "s", "--"}, nil, u + "Error: Missing argument 'ID'.\n"},
		{"--=x", []string{"--=x"}, nil, u + "Error: No such option '--'.\n"},
	}
}

// TestHelp checks --help wins over other problems once splitting succeeded,
// and goes to stdout with exit status 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"create-token", "--help"},
		{"create-token", "-e", "x", "--help"},            // help is eager: before converting -e
		{"create-token", "root", "extra", "--help"},      // before the extra-argument check
		{"create-token", "--secret", "--help", "--help"}, // the first --help is the secret
	} {
		r := runMain(args, nil)
		if r.code != 0 || r.stdout != createTokenHelp || r.stderr != "" {
			t.Errorf("%q: code %d stderr %q stdout %q", args, r.code, r.stderr, r.stdout)
		}
	}
	if r := runMain([]string{"--help"}, nil); r.code != 0 || r.stdout != rootHelp {
		t.Errorf("--help: %+v", r)
	}
	if r := runMain([]string{"--help", "create-token"}, nil); r.code != 0 || r.stdout != rootHelp {
		t.Errorf("--help create-token: %+v", r)
	}
	if r := runMain([]string{"verify", "--help"}, nil); r.code != 0 || r.stdout != verifyHelp {
		t.Errorf("verify --help: %+v", r)
	}
}

// TestRootCommand checks the group level: no arguments, unknown commands,
// --version.
func TestRootCommand(t *testing.T) {
	for _, tc := range otherCases() {
		r := runMain(tc.args, nil)
		if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.stderr {
			t.Errorf("%q:\n got  code %d stdout %q\n stderr %q\n want code %d stdout %q\n stderr %q",
				tc.args, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	r := runMain([]string{"--version"}, nil)
	if r.code != 0 || r.stdout != "datasette-token "+version.String()+"\n" {
		t.Errorf("--version: %+v", r)
	}
}

// otherCase is a command line and its complete outcome.
type otherCase struct {
	args   []string
	code   int
	stdout string
	stderr string
}

// otherCases are outcomes at the group level and of the other subcommands.
func otherCases() []otherCase {
	u := "Usage: datasette-token [OPTIONS] COMMAND [ARGS]...\nTry 'datasette-token --help' for help.\n\n"
	return []otherCase{
		{nil, 2, "", rootHelp},
		{[]string{"nope"}, 2, "", u + "Error: No such command 'nope'.\n"},
		{[]string{"create-toke"}, 2, "", u + "Error: No such command 'create-toke'. Did you mean 'create-token'?\n"},
		{[]string{"verfy"}, 2, "", u + "Error: No such command 'verfy'. Did you mean 'verify'?\n"},
		{[]string{"--versio"}, 2, "", u + "Error: No such option '--versio'. Did you mean '--version'?\n"},
		{[]string{"-x", "create-token"}, 2, "", u + "Error: No such option '-x'.\n"},
		{[]string{"--"}, 2, "", u + "Error: Missing command.\n"},
		{[]string{"--", "--foo"}, 2, "", u + "Error: No such option '--foo'.\n"},
		{[]string{"--", "_x"}, 2, "", u + "Error: No such command '_x'.\n"},
		{[]string{"completion", "ksh"}, 2, "", usage("datasette-token completion", "{bash|zsh|fish}") +
			"Error: Invalid value for '{bash|zsh|fish}': 'ksh' is not one of 'bash', 'zsh', 'fish'.\n"},
		{[]string{"completion"}, 2, "", usage("datasette-token completion", "{bash|zsh|fish}") +
			"Error: Missing argument '{bash|zsh|fish}'. Choose from:\n\tbash,\n\tzsh,\n\tfish\n"},
		{[]string{"verify", "t", "--secret", "s", "--at", "x"}, 2, "", usage("datasette-token verify", "TOKEN") +
			"Error: Invalid value for '--at': 'x' is not a valid float.\n"},
		{[]string{"verify", "t", "--secret", "s", "--at", "nan"}, 2, "", usage("datasette-token verify", "TOKEN") +
			"Error: Invalid value for '--at': 'nan' is not a usable time (a finite number of seconds is needed).\n"},
		{[]string{"decode"}, 2, "", usage("datasette-token decode", "TOKEN") + "Error: Missing argument 'TOKEN'.\n"},
	}
}
