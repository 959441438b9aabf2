package cli

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// These tests check the Python behaviours click relies on against CPython
// itself (python3 is required).

func TestPyReprMatchesPython(t *testing.T) {
	corpus := []string{"", "x", "it's", `say "hi"`, `both ' and "`, `back\slash`, "tab\tnl\ncr\r",
		"\x00\x01\x1f\x7f", "é", "\u00a0", "\u00ad", "\u2028\u2029", "\u200b", "😀", "\U000e0001",
		"\ufeff", "\ue000", "日本語", "\u0378", "-é", "'", "\"", "''\"", "\\'"}
	var want []string
	runPython(t, `import json,sys; json.dump([repr(s) for s in json.load(sys.stdin)], sys.stdout)`, corpus, &want)
	for i, s := range corpus {
		if got := pyRepr(s); got != want[i] {
			t.Errorf("pyRepr(%q) = %s, Python %s", s, got, want[i])
		}
	}
	// Invalid UTF-8 arrives in Python as surrogateescape code points.
	if got := pyRepr("a\xffb"); got != `'a\udcffb'` {
		t.Errorf("pyRepr(invalid UTF-8) = %s", got)
	}
}

func TestParsePyIntMatchesPython(t *testing.T) {
	corpus := []string{"0", "-0", "+0", "7", "007", "-5", "+5", " 12 ", "\t12\n", "\v12\f", "\r12",
		"1_000", "1__000", "_1", "1_", "+_1", "1_0_0", "", " ", "+", "-", "+-1", "--1", "1 2", "1.0",
		"1e3", "0x10", "0o7", "0b1", "١٢٣", "٣_٣", "１２", "\u00a07\u3000", "\u20009", "\x1c9", "9\x1f",
		"\u200b7", "\ufeff7", "7\u00ad", "٣.٠", "9223372036854775807", "-9223372036854775808",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999999", "²", "Ⅻ", "½",
		"𝟙𝟚", "\U0001D7CE", "꘠", "a", "1a", "∞", strings.Repeat("9", 4300), strings.Repeat("9", 4301),
		strings.Repeat("0", 5000) + "1"}
	type pyInt struct {
		Valid bool   `json:"valid"`
		Value string `json:"value"`
	}
	var want []pyInt
	runPython(t, `
import json, sys
out = []
for s in json.load(sys.stdin):
    try:
        out.append({"valid": True, "value": str(int(s))})
    except ValueError:
        out.append({"valid": False, "value": ""})
json.dump(out, sys.stdout)`, corpus, &want)
	for i, s := range corpus {
		v, valid, inRange := parsePyInt(s)
		if valid != want[i].Valid {
			t.Errorf("parsePyInt(%q) valid = %v, Python %v", s, valid, want[i].Valid)
			continue
		}
		if valid && inRange && strconv.FormatInt(v, 10) != want[i].Value {
			t.Errorf("parsePyInt(%q) = %d, Python %s", s, v, want[i].Value)
		}
		if valid && !inRange && len(strings.TrimLeft(want[i].Value, "-")) < 19 {
			t.Errorf("parsePyInt(%q) out of range, Python %s", s, want[i].Value)
		}
	}
}

func TestParsePyFloatMatchesPython(t *testing.T) {
	corpus := []string{"0", "1", "-1.5", "+.5", "5.", ".", "1e3", "1E-3", "1e", "e3", "1e+", "1_0.5e1",
		"1_.5", "1._5", "1.5_", "1e1_0", "1e_1", " 2.5 ", "inf", "-INF", "Infinity", "+infinity", "nan",
		"-NaN", "nan1", "infinity"[:7], "0x10", "1e400", "-1e400", "1e-400", "4.9e-324", "1700000000.999999",
		"1700003599.5", "١.٥", "\u00a01.5", "1,5", "1.5.5", "", "-", "9007199254740993", "0.1", "1_000",
		"00.5", "1__0"}
	type pyFloat struct {
		Valid bool   `json:"valid"`
		Repr  string `json:"repr"`
	}
	var want []pyFloat
	runPython(t, `
import json, sys
out = []
for s in json.load(sys.stdin):
    try:
        f = float(s)
        out.append({"valid": True, "repr": json.dumps(f)})
    except ValueError:
        out.append({"valid": False, "repr": ""})
json.dump(out, sys.stdout)`, corpus, &want)
	for i, s := range corpus {
		f, ok := parsePyFloat(s)
		if ok != want[i].Valid {
			t.Errorf("parsePyFloat(%q) valid = %v, Python %v", s, ok, want[i].Valid)
			continue
		}
		if ok && pyFloatRepr(f) != want[i].Repr {
			t.Errorf("parsePyFloat(%q) = %s, Python %s", s, pyFloatRepr(f), want[i].Repr)
		}
	}
}

func TestCloseMatchesMatchesPython(t *testing.T) {
	options := []string{"--secret", "--expires-after", "--all", "--database", "--resource", "--debug",
		"--plugins-dir", "--issued-at", "--help"}
	words := []string{"--secre", "--da", "--dbug", "--expires", "--x", "--", "---secret", "--SECRET",
		"--res", "--he", "--h", "--issued", "--plugin-dir", "--databases", "--all-x", "--ddebug",
		"--" + strings.Repeat("e", 250), "--" + strings.Repeat("ab", 120) + "secret", "", "d", "--sceret"}
	type query struct {
		Word  string   `json:"word"`
		Words []string `json:"possibilities"`
	}
	var queries []query
	for _, w := range words {
		queries = append(queries, query{w, options})
	}
	queries = append(queries, query{"create-toke", []string{"completion", "create-token", "decode", "verify"}})
	// Random strings over a small alphabet, some long enough for autojunk.
	rng := rand.New(rand.NewPCG(1, 2))
	randWord := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcde-"[rng.IntN(6)]
		}
		return string(b)
	}
	for i := 0; i < 300; i++ {
		n := 1 + rng.IntN(12)
		if i%10 == 0 {
			n = 200 + rng.IntN(60)
		}
		var poss []string
		for j := 0; j < 1+rng.IntN(8); j++ {
			poss = append(poss, randWord(1+rng.IntN(n+3)))
		}
		queries = append(queries, query{randWord(n), poss})
	}
	var want [][]string
	runPython(t, `
import difflib, json, sys
json.dump([difflib.get_close_matches(q["word"], q["possibilities"]) for q in json.load(sys.stdin)], sys.stdout)`,
		queries, &want)
	for i, q := range queries {
		got := closeMatches(q.Word, q.Words)
		if strings.Join(got, "\x00") != strings.Join(want[i], "\x00") {
			t.Errorf("closeMatches(%q, %q) = %q, Python %q", q.Word, q.Words, got, want[i])
		}
	}
}
