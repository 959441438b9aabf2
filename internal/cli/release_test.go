package cli

import (
	"strings"
	"testing"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// payloadOf returns the payload of the token on the first line of out, decoded without a key.
func payloadOf(t *testing.T, out string) string {
	t.Helper()
	token, _, _ := strings.Cut(out, "\n")
	d, err := dstoken.Decode(token)
	if err != nil {
		t.Fatalf("decode %q: %v", token, err)
	}
	return string(d.Payload)
}

// TestCreateTokenDatasetteVersion pins, per release, the payload, the warnings and the
// refusals of create-token --datasette-version (the real releases' own create-token is the
// judge in test/datasette; these are the same facts without Python).
func TestCreateTokenDatasetteVersion(t *testing.T) {
	base := []string{"create-token", "bot", "--secret", "s", "--issued-at", "7"}
	u := "Usage: datasette-token create-token [OPTIONS] ID\nTry 'datasette-token create-token --help' for help.\n\n"
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		payload string // "" when nothing is minted
		stderr  string
	}{
		{"1.0a0 adds the token key", []string{"--datasette-version", "1.0a0", "-e", "5"}, 0,
			`{"a":"bot","token":"dstok","t":7,"d":5}`, ""},
		{"1.0a1 too", []string{"--datasette-version=1.0a1"}, 0, `{"a":"bot","token":"dstok","t":7}`, ""},
		{"1.0a0 has no -a", []string{"--datasette-version", "1.0a0", "-a", "vi"}, 2, "", u + "Error: No such option '-a'.\n"},
		{"1.0a1 has no --database", []string{"--datasette-version", "1.0a1", "--database", "db", "vi"}, 2, "",
			u + "Error: No such option '--database'.\n"},
		{"1.0a0 has no -r", []string{"-r", "db", "t", "vi", "--datasette-version", "1.0a0"}, 2, "", u + "Error: No such option '-r'.\n"},
		{"1.0a0 has no --plugins-dir", []string{"--datasette-version", "1.0a0", "--plugins-dir", "."}, 2, "",
			u + "Error: No such option '--plugins-dir'.\n"},
		{"1.0a2 has no token key", []string{"--datasette-version", "1.0a2", "-a", "view-instance"}, 0,
			`{"a":"bot","t":7,"_r":{"a":["vi"]}}`, ""},
		{"1.0a8 writes alter-table in full", []string{"--datasette-version", "1.0a8", "-r", "db", "t", "alter-table"}, 0,
			`{"a":"bot","t":7,"_r":{"r":{"db":{"t":["alter-table"]}}}}`,
			"  Unknown permission: alter-table \n" +
				`Warning: Datasette 1.0a8 does not know the action "alter-table", so it would answer HTTP 500 to every request made with this token.` + "\n"},
		{"1.0a9 abbreviates it", []string{"--datasette-version", "1.0a9", "-r", "db", "t", "alter-table"}, 0,
			`{"a":"bot","t":7,"_r":{"r":{"db":{"t":["at"]}}}}`, ""},
		{"1.0a19 and set-column-type", []string{"--datasette-version", "1.0a19", "-d", "db", "set-column-type", "-a", "vi", "-d", "db", "sct"}, 0,
			`{"a":"bot","t":7,"_r":{"a":["vi"],"d":{"db":["set-column-type","sct"]}}}`,
			"  Unknown permission: vi \n  Unknown permission: set-column-type \n  Unknown permission: sct \n" +
				`Warning: Datasette 1.0a19 does not know the actions "set-column-type", "sct", so it would answer HTTP 500 to every request made with this token.` + "\n"},
		{"1.0a2 ignores unknown names", []string{"--datasette-version", "1.0a2", "-d", "db", "set-column-type"}, 0,
			`{"a":"bot","t":7,"_r":{"d":{"db":["set-column-type"]}}}`, "  Unknown permission: set-column-type \n"},
		{"1.0a26 abbreviates sct", []string{"--datasette-version", "1.0a26", "-d", "db", "set-column-type", "-d", "db", "execute-write-sql"}, 0,
			`{"a":"bot","t":7,"_r":{"d":{"db":["sct","execute-write-sql"]}}}`, "  Unknown permission: execute-write-sql \n"},
		{"1.0a37 is the default", []string{"--datasette-version", "1.0a37", "-d", "db", "create-view"}, 0,
			`{"a":"bot","t":7,"_r":{"d":{"db":["cv"]}}}`, ""},
		{"later releases take the newest rules", []string{"--datasette-version", "1.0rc1", "-d", "db", "create-view"}, 0,
			`{"a":"bot","t":7,"_r":{"d":{"db":["cv"]}}}`, ""},
		{"no signed tokens before 1.0a0", []string{"--datasette-version", "0.64.8"}, 2, "",
			u + "Error: Invalid value for '--datasette-version': Datasette 0.64.8 has no signed API tokens (they arrived in 1.0a0).\n"},
		{"not a release", []string{"--datasette-version", "latest"}, 2, "",
			u + "Error: Invalid value for '--datasette-version': 'latest' is not a Datasette release such as 1.0a19.\n"},
		{"the value of -a is not the option", []string{"-a", "--datasette-version", "--datasette-version", "1.0a19", "-d", "d", "set-column-type"}, 0,
			`{"a":"bot","t":7,"_r":{"a":["--datasette-version"],"d":{"d":["set-column-type"]}}}`,
			"  Unknown permission: --datasette-version \n  Unknown permission: set-column-type \n" +
				`Warning: Datasette 1.0a19 does not know the actions "--datasette-version", "set-column-type", so it would answer HTTP 500 to every request made with this token.` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := runMain(append(append([]string{}, base...), tt.args...), nil)
			if got.code != tt.code || got.stderr != tt.stderr {
				t.Fatalf("code %d, stderr %q\nwant code %d, stderr %q", got.code, got.stderr, tt.code, tt.stderr)
			}
			if tt.payload == "" {
				if got.stdout != "" {
					t.Errorf("stdout %q, want none", got.stdout)
				}
				return
			}
			if p := payloadOf(t, got.stdout); p != tt.payload {
				t.Errorf("payload %s, want %s", p, tt.payload)
			}
		})
	}
}

// TestCreateTokenDatasetteVersionDebug checks --debug shows the release's payload in its key
// order.
func TestCreateTokenDatasetteVersionDebug(t *testing.T) {
	got := runMain([]string{"create-token", "bot", "--secret", "s", "--issued-at", "7", "-e", "5", "--debug", "--datasette-version", "1.0a0"}, nil)
	want := "\nDecoded:\n\n{\n  \"a\": \"bot\",\n  \"token\": \"dstok\",\n  \"t\": 7,\n  \"d\": 5\n}\n"
	if got.code != 0 || !strings.HasSuffix(got.stdout, want) {
		t.Errorf("code %d stdout %q, want it to end with %q", got.code, got.stdout, want)
	}
}

func TestVerifyDatasetteVersion(t *testing.T) {
	mint := func(version string, c dstoken.Claims) string {
		p, err := dstoken.ProfileForVersion(version)
		if err != nil {
			t.Fatal(err)
		}
		c.Profile = p
		return dstoken.NewMinter([]byte("s")).Mint(c)
	}
	restricted := mint("1.0a2", dstoken.Claims{Actor: "bot", IssuedAt: 100, Restrictions: dstoken.Restrictions{All: []string{"view-instance"}}})
	sct := mint("1.0a19", dstoken.Claims{Actor: "bot", IssuedAt: 100, Restrictions: dstoken.Restrictions{
		Databases: []dstoken.DatabaseActions{{Database: "db", Actions: []string{"view-database", "set-column-type", "sct"}}}}})
	expired := mint("1.0a19", dstoken.Claims{Actor: "bot", IssuedAt: 100, ExpiresAfter: 1})
	a0 := mint("1.0a0", dstoken.Claims{Actor: "bot", IssuedAt: 100})
	for _, tt := range []struct {
		name, token, version string
		code                 int
		stdout, stderr       string
	}{
		{"1.0a0 drops _r", restricted, "1.0a0", 0, `{"id":"bot","token":"dstok"}` + "\n",
			`Warning: Datasette 1.0a0 ignores this token's restrictions ("_r"): it accepts it with all of its actor's permissions.` + "\n"},
		{"1.0a2 keeps it", restricted, "1.0a2", 0, `{"id":"bot","token":"dstok","_r":{"a":["vi"]}}` + "\n", ""},
		{"1.0a19 fails on unknown names", sct, "1.0a19", 0, `{"id":"bot","token":"dstok","_r":{"d":{"db":["vd","set-column-type","sct"]}}}` + "\n",
			`Warning: Datasette 1.0a19 does not know the actions "set-column-type", "sct" in this token's restrictions, so it answers HTTP 500 to every request made with it.` + "\n"},
		{"1.0a20 does not", sct, "1.0a20", 0, `{"id":"bot","token":"dstok","_r":{"d":{"db":["vd","set-column-type","sct"]}}}` + "\n", ""},
		{"1.0a19 ignores an expired token", expired, "1.0a19", 1, "",
			"Datasette 1.0a19 would ignore this token (the request would stay anonymous): Token has expired\n"},
		{"1.0a36 answers 401", expired, "1.0a36", 1, "", "Datasette 1.0a36 would reject this token (HTTP 401): Token has expired\n"},
		{"no version: as today", expired, "", 1, "", "Datasette would reject this token (HTTP 401): Token has expired\n"},
		{"1.0a0's own payload verifies everywhere", a0, "1.0a37", 0, `{"id":"bot","token":"dstok"}` + "\n", ""},
		{"not a token", "abc", "1.0a2", 1, "", `Datasette 1.0a2 would ignore this token: it does not start with "dstok_" (the request would stay anonymous)` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"verify", tt.token, "--secret", "s", "--at", "150"}
			if tt.version != "" {
				args = append(args, "--datasette-version", tt.version)
			}
			got := runMain(args, nil)
			if got.code != tt.code || got.stdout != tt.stdout || got.stderr != tt.stderr {
				t.Errorf("code %d stdout %q stderr %q\nwant code %d stdout %q stderr %q", got.code, got.stdout, got.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestManifestDatasetteVersion(t *testing.T) {
	got := runMain([]string{"manifest", "bot", "--signer", "dssigner/x", "-d", "db", "set-column-type", "--datasette-version", "1.0"}, nil)
	if got.code != 0 || !strings.Contains(got.stdout, "  annotations:\n    datasette.io/datasette-version: \"1.0\"\n") {
		t.Errorf("code %d stdout %s stderr %s", got.code, got.stdout, got.stderr)
	}
	got = runMain([]string{"manifest", "bot", "--signer", "dssigner/x", "-d", "db", "set-column-type", "--datasette-version", "1.0a19"}, nil)
	if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, `UnsupportedByDatasette): Datasette 1.0a19 does not know the action "set-column-type"`) {
		t.Errorf("code %d stdout %q stderr %q", got.code, got.stdout, got.stderr)
	}
	got = runMain([]string{"manifest", "bot", "--signer", "dssigner/x", "-a", "vi", "--datasette-version", "1.0a1"}, nil)
	if got.code != 1 || !strings.Contains(got.stderr, "Datasette 1.0a1 ignores token restrictions") {
		t.Errorf("code %d stdout %q stderr %q", got.code, got.stdout, got.stderr)
	}
	got = runMain([]string{"manifest", "bot", "--signer", "dssigner/x"}, nil)
	if got.code != 0 || strings.Contains(got.stdout, "annotations") {
		t.Errorf("without --datasette-version: code %d stdout %s", got.code, got.stdout)
	}
}
