package textsafe

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"unicode"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"root", `"root"`},
		{`say "hi" \o/`, `"say \"hi\" \\o/"`},
		{"\x1b[31mred\x1b[0m", `"\u001b[31mred\u001b[0m"`},
		{"a\rb\nc\td\x00e\x7f", `"a\rb\nc\td\u0000e\u007f"`},
		{"c1: \u0085 \u009b2J", `"c1: \u0085 \u009b2J"`},
		{"nbsp\u00a0zwsp\u200bls\u2028ps\u2029", `"nbsp\u00a0zwsp\u200bls\u2028ps\u2029"`},
		{"rlo\u202egnp.exe bom\ufeff", `"rlo\u202egnp.exe bom\ufeff"`},
		{"private \ue000 tag \U000e0001", `"private \ue000 tag \udb40\udc01"`},
		{"kept: é 日本 😀", `"kept: é 日本 😀"`},
		{"bad byte \xff", `"bad byte \ufffd"`},
		{"lone surrogate \xed\xa0\x80", `"lone surrogate \ud800"`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestQuoteIsJSON checks quote's output is a JSON string holding the input
// exactly (for valid UTF-8), on one line of printable characters.
func TestQuoteIsJSON(t *testing.T) {
	var all strings.Builder
	for r := rune(0); r < 0x3000; r++ {
		if r < 0xd800 || r > 0xdfff {
			all.WriteRune(r)
		}
	}
	for _, s := range []string{all.String(), "\U0001F600\U000E007F\U0010FFFF", `\u001b`} {
		q := Quote(s)
		var back string
		if err := json.Unmarshal([]byte(q), &back); err != nil || back != s {
			t.Errorf("Quote(%.40q) does not decode back: %v", s, err)
		}
		for _, r := range q {
			if !unicode.IsPrint(r) {
				t.Fatalf("Quote(%.40q) holds the non-printable %U", s, r)
			}
		}
	}
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`say "hi" \o/`, `say "hi" \o/`},
		{"rlo\u202egnp.exe lri\u2066x\u2069 zw\u200d", `rlo\u202egnp.exe lri\u2066x\u2069 zw\u200d`},
		{"tab\tnl\nesc\x1b[2J", `tab\tnl\nesc\u001b[2J`},
		{"bad byte \xff", `bad byte \ufffd`},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestEscapeJSON: a JSON document keeps its value and loses its format characters.
func TestEscapeJSON(t *testing.T) {
	in := map[string]string{"actor\u202e": "root\u202egnp.exe\u2067 \u200b\U000e0001 é 日本 \ufffd", "bad": "\xff"}
	doc, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	escaped := EscapeJSON(doc)
	for _, r := range string(escaped) {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Errorf("EscapeJSON left %U in %s", r, escaped)
		}
	}
	var back, want map[string]string
	if err := json.Unmarshal(escaped, &back); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc, &want); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(back, want) {
		t.Errorf("EscapeJSON changed the value: %q, want %q", back, want)
	}
}
