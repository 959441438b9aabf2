package kubectlplugin

import (
	"bytes"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// TestStatusYAMLSurvivesCharactersYAMLRefuses: a tenant who puts DEL, a C1 control or U+FFFF in
// an annotation of its own DatasetteToken must not break `kubectl datasette status -A -o yaml`
// for everyone else's tokens (sigs.k8s.io/yaml refuses to write them: "yaml: control characters
// are not allowed"). The plugin writes them escaped, and the document decodes to the same values.
func TestStatusYAMLSurvivesCharactersYAMLRefuses(t *testing.T) {
	const hostile = "a\x7fb\u0080c\u009bd\ufffee\uffff"
	tokens := []datasettev1alpha1.DatasetteToken{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "fine", Generation: 1234567},
			Spec: datasettev1alpha1.DatasetteTokenSpec{Actor: "bot", ExpiresAfter: &metav1.Duration{Duration: time.Hour}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "hostile", Name: "t", Annotations: map[string]string{"note": hostile, "n": "123"}},
			Spec: datasettev1alpha1.DatasetteTokenSpec{Actor: "true"}},
	}
	var out bytes.Buffer
	o := &StatusOptions{Output: outputYAML, IOStreams: genericiooptions.IOStreams{Out: &out}, now: time.Now}
	if err := o.print(tokens); err != nil {
		t.Fatalf("-o yaml fails for every token because of one tenant's annotation: %v", err)
	}
	t.Logf("-o yaml:\n%s", out.String())
	assertPrintable(t, "-o yaml", out.String())
	var list datasettev1alpha1.DatasetteTokenList
	if err := yaml.UnmarshalStrict(out.Bytes(), &list); err != nil {
		t.Fatalf("-o yaml does not decode: %v", err)
	}
	if len(list.Items) != 2 || list.Items[0].Generation != 1234567 || list.Items[0].Spec.ExpiresAfter.Duration != time.Hour ||
		list.Items[1].Annotations["note"] != hostile || list.Items[1].Annotations["n"] != "123" || list.Items[1].Spec.Actor != "true" ||
		list.Kind != "DatasetteTokenList" {
		t.Errorf("-o yaml changed the values: %+v", list)
	}
}
