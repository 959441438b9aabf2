package kubectlplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// bidi is tenant-written text that reorders what a terminal shows: a right-to-left override, an
// isolate, a zero-width joiner and a tag character. Printed raw, "root<RLO>nimda" reads "rootadmin".
const bidi = "root\u202enimda\u2066x\u2069\u200d\U000e0001"

// bidiEscaped is bidi as the plugin must print it.
const bidiEscaped = `root\u202enimda\u2066x\u2069\u200d\udb40\udc01`

// assertPrintable fails when out holds a character that is not printable, newlines aside.
func assertPrintable(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Errorf("%s holds the non-printable %U:\n%q", what, r, out)
			return
		}
	}
}

func hostileToken() datasettev1alpha1.DatasetteToken {
	return datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "t", Annotations: map[string]string{"note": "a\u202eb"}},
		Spec: datasettev1alpha1.DatasetteTokenSpec{
			Actor:     bidi,
			SignerRef: &datasettev1alpha1.SignerReference{Kind: "DatasetteSigner", Name: "s\u2067"},
		},
		Status: datasettev1alpha1.DatasetteTokenStatus{
			SecretName: "t",
			Conditions: []metav1.Condition{{Type: "Ready", Status: "False", Reason: "Bad", Message: "signer " + bidi + " refused"}},
		},
	}
}

// TestTableEscapesFormatCharacters: bidirectional overrides, isolates and zero-width characters in
// an actor, a signer's name or a condition's message reach the terminal as visible \u escapes.
func TestTableEscapesFormatCharacters(t *testing.T) {
	var out bytes.Buffer
	if err := writeTable(&out, []datasettev1alpha1.DatasetteToken{hostileToken()}, true, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	assertPrintable(t, "the table", out.String())
	for _, want := range []string{bidiEscaped, "signer " + bidiEscaped + " refused", `DatasetteSigner/s\u2067`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %s:\n%s", want, out.String())
		}
	}
}

// TestStatusOutputsEscapeFormatCharacters: -o json and -o yaml write format characters as \u
// escapes, which decode to the same strings.
func TestStatusOutputsEscapeFormatCharacters(t *testing.T) {
	for _, format := range []string{outputJSON, outputYAML} {
		var out bytes.Buffer
		o := &StatusOptions{Output: format, IOStreams: genericiooptions.IOStreams{Out: &out}, now: time.Now}
		if err := o.print([]datasettev1alpha1.DatasetteToken{hostileToken()}); err != nil {
			t.Fatal(err)
		}
		t.Logf("-o %s:\n%s", format, out.String())
		assertPrintable(t, "-o "+format, out.String())
		var list datasettev1alpha1.DatasetteTokenList
		decode := func(doc []byte, v any) error { return yaml.UnmarshalStrict(doc, v) }
		if format == outputJSON {
			// JSON writes a character beyond U+FFFF as a surrogate pair, which YAML decoders refuse.
			decode = func(doc []byte, v any) error { return json.Unmarshal(doc, v) }
		}
		if err := decode(out.Bytes(), &list); err != nil {
			t.Fatalf("-o %s does not decode: %v\n%s", format, err, out.String())
		}
		if len(list.Items) != 1 || list.Items[0].Spec.Actor != bidi || list.Items[0].Annotations["note"] != "a\u202eb" ||
			list.Items[0].Status.Conditions[0].Message != "signer "+bidi+" refused" {
			t.Errorf("-o %s changed the strings: %+v", format, list.Items)
		}
	}
}

// inspectWith runs inspect of tenant/t against objs and returns what it printed.
func inspectWith(t *testing.T, output string, objs ...client.Object) (string, error) {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, datasettev1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	o := &InspectOptions{
		Name: "t", Namespace: "tenant", Output: output, now: time.Now,
		client:    fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build(),
		IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &errOut},
	}
	err := o.Run(context.Background())
	return out.String() + errOut.String(), err
}

// secretHolding is a Secret holding a token for actor, controlled by owner when it is not nil.
func secretHolding(name, actor string, owner *datasettev1alpha1.DatasetteToken) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: name},
		Data:       map[string][]byte{tokenKey: []byte(dstoken.NewMinter([]byte(signingKey)).Mint(dstoken.Claims{Actor: actor, IssuedAt: 1700000000}))},
	}
	if owner != nil {
		yes := true
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: datasettev1alpha1.GroupVersion.String(), Kind: "DatasetteToken",
			Name: owner.Name, UID: owner.UID, Controller: &yes}}
	}
	return s
}

// TestInspectEscapesFormatCharacters: the actor a token carries is printed escaped, as text and
// as JSON.
func TestInspectEscapesFormatCharacters(t *testing.T) {
	tok := hostileToken()
	tok.UID = "uid-t"
	for _, output := range []string{"", outputJSON} {
		out, err := inspectWith(t, output, &tok, secretHolding("t", bidi, &tok))
		if err != nil {
			t.Fatal(err)
		}
		assertPrintable(t, "inspect -o "+output, out)
		if !strings.Contains(out, bidiEscaped) {
			t.Errorf("inspect -o %q lacks the escaped actor:\n%s", output, out)
		}
	}
}

// TestInspectFollowsOnlyStatusSecretName: a token never issued names, in spec.secretName, a Secret
// its author may not read; inspect, run by someone who may, prints nothing of that Secret and says
// the token was not issued. A status.secretName naming a Secret the token does not control is refused too.
func TestInspectFollowsOnlyStatusSecretName(t *testing.T) {
	tok := datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "t", UID: "uid-t"},
		Spec:       datasettev1alpha1.DatasetteTokenSpec{Actor: "reader", SecretName: "admin-token"},
		Status: datasettev1alpha1.DatasetteTokenStatus{Conditions: []metav1.Condition{{Type: "Ready", Status: "False",
			Reason: "SignerNotFound", Message: "the signer is missing"}}},
	}
	admin := secretHolding("admin-token", "cluster-admin-bot", nil)
	out, err := inspectWith(t, "", &tok, admin)
	t.Logf("inspect of a token never issued: %v", err)
	if err == nil || !strings.Contains(err.Error(), "has not been issued") || !strings.Contains(err.Error(), "SignerNotFound") {
		t.Errorf("inspect of a token never issued: %v, want an error saying it has not been issued", err)
	}
	if strings.Contains(out+errString(err), "cluster-admin-bot") || out != "" {
		t.Errorf("inspect of a token never issued printed %q (error %v)", out, err)
	}

	tok.Status.SecretName = "admin-token"
	out, err = inspectWith(t, outputJSON, &tok, admin)
	if err == nil || !strings.Contains(err.Error(), "not controlled by") || out != "" || strings.Contains(errString(err), "cluster-admin-bot") {
		t.Errorf("inspect of a token whose status names a Secret it does not control: %v, printed %q", err, out)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
