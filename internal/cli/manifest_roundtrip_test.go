package cli

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// restrictionsOfSpec maps the API's restrictions onto the token library's,
// in order, as the controller does (its restrictionsFromSpec).
func restrictionsOfSpec(in *datasettev1alpha1.Restrictions) dstoken.Restrictions {
	var out dstoken.Restrictions
	if in == nil {
		return out
	}
	actions := func(as []datasettev1alpha1.Action) []string {
		s := make([]string, len(as))
		for i, a := range as {
			s[i] = string(a)
		}
		return s
	}
	out.All = actions(in.All)
	for _, d := range in.Databases {
		out.Databases = append(out.Databases, dstoken.DatabaseActions{Database: d.Name, Actions: actions(d.Actions)})
	}
	for _, r := range in.Resources {
		out.Resources = append(out.Resources, dstoken.ResourceActions{Database: r.Database, Resource: r.Resource, Actions: actions(r.Actions)})
	}
	return out
}

// manifestRoundTripCases are create-token argument lists (without the
// secret and --issued-at) whose manifests must mint the same token.
var manifestRoundTripCases = [][]string{
	{"root"},
	{"root", "-e", "3600"},
	{"ci-bot", "-e", "86461", "-a", "view-instance", "-d", "analytics", "view-database",
		"-r", "analytics", "events", "insert-row", "-d", "raw", "view-database", "-d", "analytics", "execute-sql",
		"-r", "raw", "logs", "view-table", "-r", "analytics", "events", "update-row", "-a", "view-instance",
		"-r", "analytics", "clicks", "delete-row", "-a", "my-plugin-action"},
	{"yes", "-e", "1", "-a", "null", "-a", "true", "-d", "1:20", "2001-12-14", "-d", "on", "~",
		"-r", "#db", "a: b", "- x", "-a", " lead\ttab", "-d", "0x10", "1e3", "-r", "'q'", "\"dq\"", "[x]"},
	{"evil\x1b[31m\r\n\u2028\u0085\u202e\ufeff", "-d", "multi\nline\n", "view-table", "-a", "\U0001F600 \U000E0001"},
	{"12345", "-e", "9223372036", "-r", "db", "t", "view-table", "-r", "db", "t", "view-table"},
}

// TestManifestRoundTrip decodes manifest's YAML strictly into the real API
// type, checks every field, and mints from the decoded spec (with the
// controller's mapping) the very token create-token mints for the same
// arguments, key and issue time.
func TestManifestRoundTrip(t *testing.T) {
	const secret, issuedAt = "k", 1700000000
	for _, args := range manifestRoundTripCases {
		t.Run(strconv.Quote(strings.Join(args, " ")), func(t *testing.T) {
			extra := []string{"--signer", "ClusterDatasetteSigner/shared", "--namespace", "team-a", "--secret-name", "out"}
			if _, err := deriveName(args[0]); err != nil {
				extra = append(extra, "--name", "fallback")
			}
			out, err := ManifestYAML(append(append([]string{}, args...), extra...))
			if err != nil {
				t.Fatalf("ManifestYAML: %v", err)
			}
			var tok datasettev1alpha1.DatasetteToken
			if err := yaml.UnmarshalStrict(out, &tok); err != nil {
				t.Fatalf("strict decode: %v\n%s", err, out)
			}
			if tok.APIVersion != datasettev1alpha1.GroupVersion.String() || tok.Kind != "DatasetteToken" ||
				tok.Namespace != "team-a" || tok.Name == "" || tok.Spec.SecretName != "out" || tok.Spec.SigningSecretRef != nil ||
				tok.Spec.SignerRef == nil || *tok.Spec.SignerRef != (datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: "shared"}) {
				t.Errorf("decoded object: %+v", tok)
			}
			if tok.Spec.Actor != args[0] {
				t.Errorf("actor %q, want %q", tok.Spec.Actor, args[0])
			}

			create := NewCreateTokenOptions(IOStreams{Getenv: func(string) string { return "" }, Now: time.Now})
			if err := create.Complete(append(append([]string{}, args...), "--secret", secret, "--issued-at", strconv.Itoa(issuedAt))); err != nil {
				t.Fatal(err)
			}
			var expiresAfter int64
			if d := tok.Spec.ExpiresAfter; d != nil {
				if d.Duration%time.Second != 0 || d.Duration <= 0 {
					t.Errorf("expiresAfter %v is not a positive whole number of seconds", d.Duration)
				}
				expiresAfter = int64(d.Duration / time.Second)
			}
			if expiresAfter != create.ExpiresAfter {
				t.Errorf("expiresAfter %d s, create-token's -e %d", expiresAfter, create.ExpiresAfter)
			}
			fromSpec := dstoken.Claims{Actor: tok.Spec.Actor, IssuedAt: issuedAt, ExpiresAfter: expiresAfter,
				Restrictions: restrictionsOfSpec(tok.Spec.Restrictions)}
			if got, want := string(fromSpec.PayloadJSON()), string(create.Claims().PayloadJSON()); got != want {
				t.Errorf("payload from the manifest:\n%s\ncreate-token's:\n%s", got, want)
			}
			minted := dstoken.NewMinter([]byte(secret)).Mint(fromSpec)
			r := runMain(append(append([]string{"create-token"}, args...), "--secret", secret, "--issued-at", strconv.Itoa(issuedAt)), nil)
			if r.code != 0 || r.stdout != minted+"\n" {
				t.Errorf("create-token printed %q (exit %d), the manifest's spec mints %q", r.stdout, r.code, minted)
			}
		})
	}
}

// FuzzManifestRoundTrip checks that any actor, database, resource and action
// text manifest accepts survives the YAML unchanged.
func FuzzManifestRoundTrip(f *testing.F) {
	for _, s := range []string{"root", "yes", "- x", "a: b", "\x1b[0m", "\u2028", "'\"", " ", "0o17", "!tag", "&a", "*a", "|", ">", "%", "@", "`"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ManifestYAML([]string{s, "--name", "n", "--signer", "DatasetteSigner/s",
			"-a", s, "-d", s, s, "-r", s, s, s})
		if err != nil {
			return // refused text (empty, too long, invalid UTF-8) is tested elsewhere
		}
		var tok datasettev1alpha1.DatasetteToken
		if err := yaml.UnmarshalStrict(out, &tok); err != nil {
			t.Fatalf("strict decode: %v\n%s", err, out)
		}
		r := tok.Spec.Restrictions
		if tok.Spec.Actor != s || r == nil || len(r.All) != 1 || string(r.All[0]) != s ||
			len(r.Databases) != 1 || r.Databases[0].Name != s || string(r.Databases[0].Actions[0]) != s ||
			len(r.Resources) != 1 || r.Resources[0].Database != s || r.Resources[0].Resource != s || string(r.Resources[0].Actions[0]) != s {
			t.Fatalf("%q did not survive:\n%s", s, out)
		}
	})
}
