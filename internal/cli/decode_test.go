package cli

import (
	"strings"
	"testing"
	"unicode"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// TestDecodeHostileToken decodes a forged token whose claims and payload
// carry terminal escape sequences, carriage returns, line separators and
// bidirectional overrides: the output must hold only printable characters
// and newlines, one line per field.
func TestDecodeHostileToken(t *testing.T) {
	payload := `{"a":"root\u001b[31mRED\r` + "\u2028x\u202egnp.exe\u009b2J" + `",` + "\r" +
		`"t":1700000000,"d":60,"_r":{"a":["view-instance\u001b]0;pwned\u0007"],` +
		`"d":{"db\u001b[2J":["ct\rX"]},"r":{"d` + "\u200b" + `b":{"t\n2":["ir","` + "\U000E0001" + `"]}}}}`
	token := dstoken.Prefix + itsdangerousSign("forger", payload)
	r := runMain([]string{"decode", token}, nil)
	want := `UNVERIFIED: the signature was not checked; anyone can forge these claims.
actor:        "root\u001b[31mRED\r\u2028x\u202egnp.exe\u009b2J"
issued at:    2023-11-14T22:13:20Z (1700000000)
expires:      2023-11-14T22:14:20Z (1700000060: 60 seconds after issue)
restrictions:
  all:        "view-instance\u001b]0;pwned\u0007"
  database:   "db\u001b[2J": "ct\rX"
  resource:   "d\u200bb" / "t\n2": "insert-row", "\udb40\udc01"
payload:      {"a":"root\u001b[31mRED\r\u2028x\u202egnp.exe\u009b2J",\r"t":1700000000,"d":60,"_r":{"a":["view-instance\u001b]0;pwned\u0007"],"d":{"db\u001b[2J":["ct\rX"]},"r":{"d\u200bb":{"t\n2":["ir","\udb40\udc01"]}}}}
`
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	for _, c := range r.stdout {
		if c != '\n' && !unicode.IsPrint(c) {
			t.Errorf("output holds the non-printable %U", c)
		}
	}
}

func TestDecodeTooLarge(t *testing.T) {
	body := strings.Repeat("A", dstoken.MaxTokenSize+1-len(dstoken.Prefix))
	r := runMain([]string{"decode", dstoken.Prefix + body}, nil)
	if want := "Error: token is too large to decode (65537 bytes; the limit is 65536)\n"; r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q, want %q", r.code, r.stdout, r.stderr, want)
	}
	// At the limit, the token is read (and here rejected for what it is).
	r = runMain([]string{"decode", dstoken.Prefix + body[1:]}, nil)
	if r.code != 1 || strings.Contains(r.stderr, "too large") || !strings.HasPrefix(r.stderr, "Error: decode token: ") {
		t.Errorf("a token of exactly the limit: exit %d, stderr %q", r.code, r.stderr)
	}
}
