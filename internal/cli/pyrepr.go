package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file reproduces the few pieces of Python behaviour that click's error
// messages depend on: repr() of a str, and the code points Python sees in an
// argument (invalid UTF-8 bytes arrive as "surrogateescape" code points
// U+DC80..U+DCFF, as CPython decodes argv on POSIX).

// pyCodePoints splits s into the code points Python would see, together with
// the byte text of each: an invalid UTF-8 byte b becomes U+DC00+b.
func pyCodePoints(s string) (cps []rune, texts []string) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			r = 0xDC00 + rune(s[i])
			size = 1
		}
		cps = append(cps, r)
		texts = append(texts, s[i:i+size])
		i += size
	}
	return cps, texts
}

// pyRepr returns Python's repr() of the str s: single quotes unless s contains
// a single quote and no double quote, backslash escapes for the quote, the
// backslash, \t \n \r and non-printable code points (\xNN, \uNNNN, \UNNNNNNNN,
// lowercase hex); printable non-ASCII characters are kept as they are.
func pyRepr(s string) string {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	cps, _ := pyCodePoints(s)
	for _, c := range cps {
		switch {
		case c == quote || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < ' ' || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c < 0x7f:
			b.WriteRune(c)
		case c >= 0xD800 && c <= 0xDFFF:
			fmt.Fprintf(&b, `\u%04x`, c)
		case unicode.IsPrint(c):
			b.WriteRune(c)
		case c <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			fmt.Fprintf(&b, `\U%08x`, c)
		}
	}
	b.WriteRune(quote)
	return b.String()
}

// pyIsAlnum reports whether r is alphanumeric in Python's sense
// (str.isalnum), which click uses to tell option-looking words.
func pyIsAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// pyFilename returns s as click's format_filename shows a path: bytes that
// are not valid UTF-8 are replaced with U+FFFD.
func pyFilename(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}
