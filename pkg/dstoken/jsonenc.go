package dstoken

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file writes JSON strings and floats the way Python's json.dumps does.

const hexDigits = "0123456789abcdef"

// escaping says which json.dumps string escaping appendPyString applies, and
// where its text comes from.
type escaping uint8

const (
	// userText: ensure_ascii=False, for text from a user. Every byte that is
	// not part of a valid UTF-8 sequence is written as U+FFFD, as Go's range
	// loop decodes it.
	userText escaping = iota
	// decodedText: ensure_ascii=False, for text decoded from a JSON payload,
	// where a lone surrogate from a \uXXXX escape is kept in its 3-byte WTF-8
	// form: such a surrogate is written as a lowercase \udXXX escape, the only
	// way to put it in UTF-8 JSON. Other invalid bytes become U+FFFD.
	decodedText
	// decodedASCII: ensure_ascii=True, for text decoded from a JSON payload:
	// as decodedText, and every other code point outside ' '..'~' is escaped
	// too (as a surrogate pair above U+FFFF).
	decodedASCII
)

// appendPyString appends s as a JSON string literal with Python's escaping:
// '"', '\\' and U+0000-U+001F always (\" \\ \n \r \t \b \f, others \u00XX with
// lowercase hex); with ensure_ascii=False everything else, including DEL,
// '<', '>', '&', U+2028 and U+2029, is written as raw UTF-8. See [escaping]
// for the rest, and for invalid UTF-8.
func appendPyString(b []byte, s string, mode escaping) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && (c < 0x7f || c == 0x7f && mode != decodedASCII) {
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
			if sur, ok := decodeWTF8Surrogate(s[i:]); ok && mode != userText {
				r, size = sur, 3
			} else if size > 1 && mode != decodedASCII {
				i += size // valid UTF-8, written raw
				continue
			}
		}
		b = append(b, s[start:i]...)
		b = appendEscaped(b, r, mode)
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscaped appends the escape appendPyString writes for code point r
// (utf8.RuneError standing for an invalid byte, written as U+FFFD).
func appendEscaped(b []byte, r rune, mode escaping) []byte {
	switch r {
	case '"', '\\':
		return append(b, '\\', byte(r))
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	}
	switch {
	case r == utf8.RuneError && mode != decodedASCII:
		return append(b, "\uFFFD"...)
	case r > 0xFFFF:
		r -= 0x10000
		b = appendU4(b, 0xD800+(r>>10))
		return appendU4(b, 0xDC00+(r&0x3FF))
	default:
		return appendU4(b, r)
	}
}

// appendU4 appends \uXXXX with lowercase hex.
func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// decodeWTF8Surrogate reports whether s starts with the 3-byte generalized
// UTF-8 encoding of a surrogate code point (U+D800-U+DFFF), and returns it.
func decodeWTF8Surrogate(s string) (rune, bool) {
	if len(s) < 3 || s[0] != 0xED || s[1] < 0xA0 || s[1] > 0xBF || s[2] < 0x80 || s[2] > 0xBF {
		return 0, false
	}
	return 0xD000 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), true
}

// appendWTF8Surrogate appends the 3-byte generalized UTF-8 form of a
// surrogate code point (which utf8.AppendRune refuses to write).
func appendWTF8Surrogate(b []byte, r rune) []byte {
	return append(b, 0xED, 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
}

// appendPyFloat appends f as Python's json.dumps writes a float: repr(f)
// (the shortest string that round-trips, in fixed notation when the decimal
// exponent is in [-4, 16), scientific otherwise, always with a "." or an
// exponent), and NaN, Infinity and -Infinity for the non-finite values.
func appendPyFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d[.ddd]e±XX, two exponent digits at least
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if decpt := exp + 1; decpt > -4 && decpt <= 16 {
		start := len(b)
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
		if !strings.Contains(string(b[start:]), ".") {
			b = append(b, '.', '0')
		}
		return b
	}
	return append(b, e...)
}
