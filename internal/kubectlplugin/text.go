package kubectlplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/datasette-token-operator/datasette-token-operator/internal/textsafe"
)

// clean makes text written by anyone who may edit a DatasetteToken safe for a terminal: it is cut
// to at most max characters, and every character that is not printable (escape sequences,
// bidirectional overrides, zero-width characters, tabs and newlines) and every invalid UTF-8 byte
// becomes a visible \u escape, as the datasette-token CLI's decode writes them.
func clean(s string, max int) string {
	n := 0
	for i := range s {
		if n == max {
			return textsafe.Escape(s[:i]) + "…"
		}
		n++
	}
	return textsafe.Escape(s)
}

// cleanBlock is clean for multi-line text: newlines stay.
func cleanBlock(s string, max int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = clean(l, max)
	}
	return strings.Join(lines, "\n")
}

// safeYAML rewrites a YAML document, as sigs.k8s.io/yaml writes it, so that it holds only
// printable characters (newlines aside): each scalar that holds another is written double-quoted,
// the only YAML style with escapes, and those characters as escapes. The values stay the same.
func safeYAML(doc []byte) ([]byte, error) {
	if bytes.Equal(textsafe.EscapeYAML(doc), doc) {
		return doc, nil
	}
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("re-reading the YAML to escape it: %w", err)
	}
	doubleQuoteUnsafeScalars(&root)
	var b bytes.Buffer
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("re-writing the YAML to escape it: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("re-writing the YAML to escape it: %w", err)
	}
	return textsafe.EscapeYAML(b.Bytes()), nil
}

// yamlV3 writes v as sigs.k8s.io/yaml would (through its JSON form: the same field names,
// omissions and sorted keys), but with YAML v3, which writes every character escaped that the
// former refuses to write.
func yamlV3(v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(jsonNumbers(doc)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// jsonNumbers replaces, in a document decoded with json.Decoder.UseNumber, each number by an
// int64 or a float64, which YAML writes as numbers.
func jsonNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonNumbers(e)
		}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

// doubleQuoteUnsafeScalars gives the double-quoted style to every scalar under n, keys included,
// that holds a character to escape.
func doubleQuoteUnsafeScalars(n *yamlv3.Node) {
	if n.Kind == yamlv3.ScalarNode && string(textsafe.EscapeYAML([]byte(n.Value))) != n.Value {
		n.Style = yamlv3.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		doubleQuoteUnsafeScalars(c)
	}
}

// relative says when t is from now: "5m ago", "in 23h", or "-" without a time.
func relative(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	if d := t.Sub(now); d > 0 {
		return "in " + duration.HumanDuration(d)
	}
	return duration.HumanDuration(now.Sub(t.Time)) + " ago"
}

func parseSelector(s string) (labels.Selector, error) {
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-l %q: %w", s, err)
	}
	return sel, nil
}
