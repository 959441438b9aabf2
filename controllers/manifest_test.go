package controllers

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/cli"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// The bridge from ad hoc minting to GitOps: the DatasetteToken that `datasette-token manifest`
// prints for a create-token command line, applied to the real API server, makes the operator
// mint byte for byte the token `datasette-token create-token` mints with the same arguments, key
// and issue time.
func TestManifestMintsWhatCreateTokenMints(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "manifest-key")

	tokenArgs := []string{"ci-bot", "-e", "5400", "-a", "view-instance", "-d", "analytics", "view-database",
		"-r", "analytics", "events", "insert-row", "-d", "analytics", "execute-sql", "-a", "my-plugin-action"}
	manifest, err := cli.ManifestYAML(append(append([]string{}, tokenArgs...), "--name", "from-cli", "--namespace", ns, "--signing-secret", "datasette"))
	if err != nil {
		t.Fatal(err)
	}
	var tok datasettev1alpha1.DatasetteToken
	if err := yaml.UnmarshalStrict(manifest, &tok); err != nil {
		t.Fatalf("the manifest does not decode strictly into a DatasetteToken: %v\n%s", err, manifest)
	}
	create(t, &tok)
	waitReason(t, client.ObjectKeyFromObject(&tok), datasettev1alpha1.ReasonIssued)
	minted := string(outputSecret(t, ns, "from-cli").Data[tokenKey])

	decoded, err := dstoken.Decode(minted)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	args := append([]string{"create-token"}, tokenArgs...)
	args = append(args, "--secret", "manifest-key", "--issued-at", strconv.FormatInt(decoded.Claims.IssuedAt, 10))
	streams := cli.IOStreams{Out: &out, ErrOut: &errOut, Getenv: func(string) string { return "" }, Now: time.Now}
	if code := cli.Main(args, streams); code != 0 {
		t.Fatalf("create-token exited %d: %s", code, errOut.String())
	}
	if want := strings.TrimSpace(out.String()); minted != want {
		t.Errorf("the operator minted\n%s\ncreate-token mints\n%s", minted, want)
	}
}
