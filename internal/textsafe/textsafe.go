// Package textsafe makes text that someone else wrote safe to print to a terminal: every
// character that is not printable (control characters such as ESC, format characters such as
// bidirectional overrides and zero-width spaces, line separators, unassigned and private-use code
// points) and every invalid UTF-8 byte becomes a visible \u escape. The datasette-token CLI and the
// kubectl plugin share it; it imports nothing outside the standard library.
package textsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Quote returns s as a JSON string literal that is safe to print: besides the quote and the
// backslash, every character that is not printable (unicode.IsPrint: C0 and C1 controls such as
// ESC and CSI, carriage return, line and paragraph separators, format characters such as
// bidirectional overrides and zero-width spaces, unassigned and private-use code points, and any
// space but U+0020) is written as a \u escape, so the result is one line of visible characters.
// Invalid UTF-8 bytes appear as \ufffd, except that a surrogate code point (held as WTF-8, as the
// token library decodes a JSON "\udXXX" escape) appears as its own \u escape.
func Quote(s string) string {
	return `"` + escape(s, true) + `"`
}

// Escape escapes what Quote escapes but the double quote and the backslash, for text shown
// unquoted (a table cell, a JSON payload).
func Escape(s string) string {
	return escape(s, false)
}

// EscapeJSON escapes, in a JSON document written by encoding/json, every character that Escape
// escapes and the encoder leaves as it is (format characters, for one: encoding/json escapes only
// controls, U+2028, U+2029 and invalid UTF-8). Outside strings such a document is ASCII, and inside
// them a \u escape is the same character, so the result decodes to the same value.
func EscapeJSON(doc []byte) []byte {
	return escapeDocument(doc, false)
}

// EscapeYAML is EscapeJSON for a YAML document whose every such character stands in a
// double-quoted scalar, the only YAML style with escapes; beyond U+FFFF it writes YAML's \U
// escape, as YAML has no surrogate pairs.
func EscapeYAML(doc []byte) []byte {
	return escapeDocument(doc, true)
}

// escapeDocument escapes the non-ASCII characters to escape in doc, whose ASCII is left as it is.
func escapeDocument(doc []byte, longEscapes bool) []byte {
	var b strings.Builder
	for i := 0; i < len(doc); {
		r, size := decodeRune(string(doc[i:min(len(doc), i+utf8.UTFMax)]))
		switch {
		case r < utf8.RuneSelf || !needsEscape(r):
			b.Write(doc[i : i+size])
		case longEscapes && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			writeEscape(&b, r)
		}
		i += size
	}
	return []byte(b.String())
}

// escape writes s with its non-printable characters escaped; quoted also escapes the double
// quote and the backslash (for text inside quotes).
func escape(s string, quoted bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := decodeRune(s[i:])
		i += size
		switch {
		case quoted && (r == '"' || r == '\\'):
			b.WriteByte('\\')
			b.WriteRune(r)
		case needsEscape(r):
			writeEscape(&b, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// decodeRune decodes the first character of s: utf8.RuneError for an invalid byte, and a
// surrogate code point held as WTF-8 as itself.
func decodeRune(s string) (rune, int) {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		if sr, ok := wtf8Surrogate(s); ok {
			return sr, 3
		}
		return utf8.RuneError, max(size, 1)
	}
	return r, size
}

// needsEscape reports whether r is not printed as itself.
func needsEscape(r rune) bool {
	if r < utf8.RuneSelf {
		return r < ' ' || r == 0x7f
	}
	return r == utf8.RuneError || isSurrogate(r) || !unicode.IsPrint(r)
}

// writeEscape writes r as \n, \r, \t or \u escapes (a UTF-16 pair beyond U+FFFF).
func writeEscape(b *strings.Builder, r rune) {
	switch {
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\r':
		b.WriteString(`\r`)
	case r == '\t':
		b.WriteString(`\t`)
	case r > 0xffff:
		hi, lo := utf16.EncodeRune(r)
		fmt.Fprintf(b, `\u%04x\u%04x`, hi, lo)
	default:
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// wtf8Surrogate decodes a surrogate code point (U+D800..U+DFFF) encoded as three UTF-8-style
// bytes at the start of s.
func wtf8Surrogate(s string) (rune, bool) {
	if len(s) < 3 || s[0] != 0xed || s[1] < 0xa0 || s[1] > 0xbf || s[2] < 0x80 || s[2] > 0xbf {
		return 0, false
	}
	return rune(s[0]&0x0f)<<12 | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f), true
}

// isSurrogate reports whether r is a UTF-16 surrogate code point.
func isSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }
