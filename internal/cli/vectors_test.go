package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/datasette-token-operator/datasette-token-operator/internal/vectors"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// expectedWarnings is what Datasette's create-token prints on stderr for a
// vector: "  Unknown permission: X " for each unknown action of every -a,
// then every -d, then every -r, in command-line order.
func expectedWarnings(v vectors.MintVector) string {
	unknown := map[string]bool{}
	for _, a := range v.UnknownActions {
		unknown[a] = true
	}
	var b strings.Builder
	for _, kind := range []string{"all", "database", "resource"} {
		for _, r := range v.Restrictions {
			if r[0] == kind && unknown[r[len(r)-1]] {
				b.WriteString("  Unknown permission: " + r[len(r)-1] + " \n")
			}
		}
	}
	return b.String()
}

// TestMintVectors runs create-token with every mint vector's command line
// and --issued-at int(now), and requires Datasette's token (byte for byte
// when Datasette did not compress it, else the same signed payload), the
// same unknown-permission warnings, and with --debug Datasette's layout.
func TestMintVectors(t *testing.T) {
	mints := vectors.Mint(t)
	// Python renders each payload as create-token --debug prints it.
	payloads := make([]string, len(mints))
	for i, v := range mints {
		payloads[i] = v.PayloadJSON
	}
	var rendered []string
	runPython(t, `import json,sys; json.dump([json.dumps(json.loads(p), indent=2) for p in json.load(sys.stdin)], sys.stdout)`,
		payloads, &rendered)

	identical := 0
	for i, v := range mints {
		t.Run(v.ID, func(t *testing.T) {
			issuedAt := strconv.FormatInt(v.IssuedAt(t), 10)
			args := append(append([]string{}, v.CLIArgs...), "--issued-at", issuedAt)
			r := runMain(args, nil)
			if r.code != 0 {
				t.Fatalf("%q: exit %d, stderr %q", args, r.code, r.stderr)
			}
			token, ok := strings.CutSuffix(r.stdout, "\n")
			if !ok || strings.Contains(token, "\n") {
				t.Fatalf("stdout is not one line: %q", r.stdout)
			}
			if token == v.Token {
				identical++
			} else if !v.Compressed {
				t.Errorf("token\n got %s\nwant %s", token, v.Token)
			}
			decoded, err := dstoken.Decode(token)
			if err != nil {
				t.Fatalf("decode our token: %v", err)
			}
			if string(decoded.Payload) != v.PayloadJSON {
				t.Errorf("payload\n got %s\nwant %s", decoded.Payload, v.PayloadJSON)
			}
			signed, err := itsdangerous.NewSigner(dstoken.Salt, []byte(v.Secret)).Unsign(strings.TrimPrefix(token, dstoken.Prefix))
			if err != nil || string(signed) != v.PayloadJSON {
				t.Errorf("our token's signature does not check with the vector's secret: %v", err)
			}
			if want := expectedWarnings(v); r.stderr != want {
				t.Errorf("stderr\n got %q\nwant %q", r.stderr, want)
			}
			var warned []string
			for _, line := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
				if name, ok := strings.CutPrefix(line, "  Unknown permission: "); ok {
					warned = append(warned, strings.TrimSuffix(name, " "))
				}
			}
			slices.Sort(warned)
			warned = slices.Compact(warned)
			if len(warned) != len(v.UnknownActions) || (len(warned) > 0 && !reflect.DeepEqual(warned, v.UnknownActions)) {
				t.Errorf("warned about %q, Datasette's unknown actions are %q", warned, v.UnknownActions)
			}

			debug := runMain(append(args, "--debug"), nil)
			if want := token + "\n\nDecoded:\n\n" + rendered[i] + "\n"; debug.code != 0 || debug.stdout != want {
				t.Errorf("--debug stdout\n got %q\nwant %q", debug.stdout, want)
			}
		})
	}
	t.Logf("%d of %d tokens byte-identical to Datasette's (required only for uncompressed ones)", identical, len(mints))
}

// TestVerifyVectors runs verify on every verify vector (with --at now,
// --max-ttl and --no-signed-tokens from its settings) and requires
// Datasette's verdict: the same actor and exit 0, or Datasette's message and
// exit 1.
func TestVerifyVectors(t *testing.T) {
	for _, v := range vectors.Verify(t) {
		t.Run(v.ID, func(t *testing.T) {
			args := []string{"verify", "--secret", v.Secret, "--at", v.Now.String(), "--max-ttl", v.Settings.MaxSignedTokensTTL.String()}
			if !v.Settings.AllowSignedTokens {
				args = append(args, "--no-signed-tokens")
			}
			args = append(args, "--", v.Token)
			r := runMain(args, nil)
			switch e := v.Expected; e.Result {
			case "actor":
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q; Datasette accepts it", r.code, r.stderr)
				}
				if got, want := jsonValue(t, r.stdout), jsonValue(t, string(e.Actor)); !reflect.DeepEqual(got, want) {
					t.Errorf("actor\n got %s\nwant %s", r.stdout, e.Actor)
				}
				if strings.Count(r.stdout, "\n") != 1 {
					t.Errorf("actor is not one line: %q", r.stdout)
				}
			case "invalid":
				expectVerdict(t, r, "Datasette would reject this token (HTTP 401): "+e.Message+"\n")
			case "error":
				expectVerdict(t, r, "Datasette would fail with HTTP 500 ("+e.Exception+")\n")
			case "not_ours":
				expectVerdict(t, r, "Datasette would ignore this token: it does not start with \"dstok_\" (the request would stay anonymous)\n")
			default:
				t.Fatalf("unknown expected result %q", e.Result)
			}
		})
	}
}

func expectVerdict(t *testing.T, r result, stderr string) {
	t.Helper()
	if r.code != 1 || r.stdout != "" || r.stderr != stderr {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and stderr %q", r.code, r.stdout, r.stderr, stderr)
	}
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %q: %v", s, err)
	}
	return v
}

// TestDebugOutput pins create-token --debug's exact layout, which is
// Datasette's: click.echo(token), click.echo("\nDecoded:\n"), then
// click.echo(json.dumps(payload, indent=2)).
func TestDebugOutput(t *testing.T) {
	args := []string{"create-token", "root", "--secret", "s", "-a", "view-instance", "-d", "db", "create-table",
		"-r", "db", "t", "insert-row", "-e", "60", "--debug", "--issued-at", "1700000000"}
	r := runMain(args, nil)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	token, rest, ok := strings.Cut(r.stdout, "\n")
	if !ok || !strings.HasPrefix(token, "dstok_") {
		t.Fatalf("first line is not a token: %q", r.stdout)
	}
	const wantRest = `
Decoded:

{
  "a": "root",
  "t": 1700000000,
  "d": 60,
  "_r": {
    "a": [
      "vi"
    ],
    "d": {
      "db": [
        "ct"
      ]
    },
    "r": {
      "db": {
        "t": [
          "ir"
        ]
      }
    }
  }
}
`
	if rest != wantRest {
		t.Errorf("after the token\n got %q\nwant %q", rest, wantRest)
	}
	decoded, err := dstoken.Decode(token)
	if err != nil {
		t.Fatal(err)
	}
	const payload = `{"a":"root","t":1700000000,"d":60,"_r":{"a":["vi"],"d":{"db":["ct"]},"r":{"db":{"t":["ir"]}}}}`
	if string(decoded.Payload) != payload {
		t.Errorf("payload %s, want %s", decoded.Payload, payload)
	}
	var python string
	runPython(t, `import json,sys; json.dump(json.dumps(json.loads(json.load(sys.stdin)), indent=2), sys.stdout)`, payload, &python)
	if "\nDecoded:\n\n"+python+"\n" != rest {
		t.Errorf("Python renders the payload as\n%s", python)
	}
}
