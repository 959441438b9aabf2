package dstoken

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file writes JSON the way Python's
// json.dumps(obj, separators=(",", ":"), ensure_ascii=False) does.

const hexDigits = "0123456789abcdef"

// appendPyString appends s as a JSON string literal with Python's
// ensure_ascii=False escaping: only '"', '\\' and U+0000-U+001F are escaped
// (\" \\ \n \r \t \b \f, others \u00XX with lowercase hex); everything else,
// including DEL, '<', '>', '&', U+2028 and U+2029, is written as raw UTF-8.
//
// s should be valid UTF-8. Invalid bytes are handled in one of two ways:
//   - surrogates=false (text from a user): every byte that is not part of a
//     valid UTF-8 sequence is written as U+FFFD, as Go's range loop decodes it;
//   - surrogates=true (text decoded from a JSON payload, where a lone
//     surrogate from a \uXXXX escape is kept as its 3-byte WTF-8 form): a lone
//     surrogate is written as a lowercase \udXXX escape, the only way to put
//     it in UTF-8 JSON. Other invalid bytes become U+FFFD.
func appendPyString(b []byte, s string, surrogates bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size != 1 {
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		if sur, ok := decodeWTF8Surrogate(s[i:]); surrogates && ok {
			b = append(b, '\\', 'u',
				hexDigits[sur>>12], hexDigits[sur>>8&0xf], hexDigits[sur>>4&0xf], hexDigits[sur&0xf])
			i += 3
		} else {
			b = append(b, "\uFFFD"...)
			i++
		}
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
