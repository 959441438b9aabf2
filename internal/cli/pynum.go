package cli

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// click's INTEGER and FLOAT types convert with Python's int(s) and float(s).
// These functions accept exactly what those accept for a str.

// pyNumberSpace reports whether int() and float() strip r around a number:
// ASCII " \t\n\v\f\r" and the non-ASCII characters for which str.isspace()
// is true (CPython maps those to ' ' first, but not \x1c-\x1f).
func pyNumberSpace(r rune) bool {
	switch {
	case r == ' ', r >= '\t' && r <= '\r':
		return true
	case r < 0x80:
		return false
	case r == 0x85, r == 0xa0, r == 0x1680, r >= 0x2000 && r <= 0x200a,
		r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// pyDecimal returns the value of a decimal digit (Unicode category Nd, which
// Python's int() and float() accept in place of ASCII digits).
func pyDecimal(r rune) (int, bool) {
	if r >= '0' && r <= '9' {
		return int(r - '0'), true
	}
	if r < 0x80 || !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	// Every Nd character belongs to a contiguous run 0..9, and the ranges
	// of unicode.Nd start at a zero, so the offset in the range gives the value.
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	return 0, false
}

// pyASCIINumber does what CPython does before parsing a number: it strips
// Unicode whitespace and maps Unicode decimal digits to ASCII. ok is false if
// any other non-ASCII character remains.
func pyASCIINumber(s string) (string, bool) {
	cps, _ := pyCodePoints(s)
	start, end := 0, len(cps)
	for start < end && pyNumberSpace(cps[start]) {
		start++
	}
	for end > start && pyNumberSpace(cps[end-1]) {
		end--
	}
	var b strings.Builder
	for _, c := range cps[start:end] {
		if d, ok := pyDecimal(c); ok {
			b.WriteByte(byte('0' + d))
			continue
		}
		if c >= 0x80 {
			return "", false
		}
		b.WriteRune(c)
	}
	return b.String(), true
}

// stripDigitUnderscores checks s (ASCII) is one or more digits with single
// underscores allowed only between digits, and returns the digits.
func stripDigitUnderscores(s string) (string, bool) {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '_' && s[i-1] != '_':
		default:
			return "", false
		}
	}
	return b.String(), true
}

// pyMaxStrDigits is CPython's default limit on digits in int(str).
const pyMaxStrDigits = 4300

// parsePyInt parses s as Python's int(s) does. valid reports whether int(s)
// would succeed; inRange whether the value also fits in an int64.
func parsePyInt(s string) (v int64, valid, inRange bool) {
	a, ok := pyASCIINumber(s)
	if !ok || a == "" {
		return 0, false, false
	}
	neg := false
	if a[0] == '+' || a[0] == '-' {
		neg = a[0] == '-'
		a = a[1:]
	}
	digits, ok := stripDigitUnderscores(a)
	if !ok || len(digits) > pyMaxStrDigits {
		return 0, false, false
	}
	if neg {
		digits = "-" + digits
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, true, false
	}
	return v, true, true
}

// parsePyFloat parses s as Python's float(s) does: decimal notation with
// optional exponent and digit underscores, or inf/infinity/nan in any case.
func parsePyFloat(s string) (float64, bool) {
	a, ok := pyASCIINumber(s)
	if !ok || a == "" {
		return 0, false
	}
	sign := ""
	if a[0] == '+' || a[0] == '-' {
		sign, a = a[:1], a[1:]
	}
	switch strings.ToLower(a) {
	case "inf", "infinity":
		if sign == "-" {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case "nan":
		return math.NaN(), true
	}
	mant, exp := a, ""
	if i := strings.IndexAny(a, "eE"); i >= 0 {
		mant, exp = a[:i], a[i+1:]
		esign := ""
		if exp != "" && (exp[0] == '+' || exp[0] == '-') {
			esign, exp = exp[:1], exp[1:]
		}
		d, ok := stripDigitUnderscores(exp)
		if !ok {
			return 0, false
		}
		exp = "e" + esign + d
	}
	intPart, frac, hasDot := strings.Cut(mant, ".")
	var clean string
	switch {
	case intPart != "" && (frac != "" || !hasDot):
		i, ok1 := stripDigitUnderscores(intPart)
		f := ""
		ok2 := true
		if frac != "" {
			f, ok2 = stripDigitUnderscores(frac)
		}
		if !ok1 || !ok2 {
			return 0, false
		}
		clean = i + "." + f
	case intPart != "": // "12."
		i, ok := stripDigitUnderscores(intPart)
		if !ok {
			return 0, false
		}
		clean = i
	case frac != "": // ".5"
		f, ok := stripDigitUnderscores(frac)
		if !ok {
			return 0, false
		}
		clean = "0." + f
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(sign+clean+exp, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}
