package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pyIndentJSON re-renders the JSON text data exactly as Python's
// json.dumps(json.loads(data), indent=indent) does (ensure_ascii=True), which
// is how Datasette's create-token --debug prints a token's payload:
//
//   - objects and arrays open on their line, one member per line, indented by
//     indent more spaces per level; "," ends a member line, ": " follows a key;
//     empty ones are "{}" and "[]";
//   - strings escape '"', '\', \n \r \t \b \f, and every other code point
//     outside ' '..'~' as \uXXXX (lowercase hex; surrogate pairs above U+FFFF;
//     lone surrogates from \uD8xx escapes are kept);
//   - integers are printed in full, floats as Python's repr (1e+16, 1e-05,
//     100.0), NaN/Infinity/-Infinity as such;
//   - a key that repeats keeps its first position and its last value.
//
// It accepts what json.loads accepts (including NaN and Infinity) and
// rejects the rest.
func pyIndentJSON(data []byte, indent int) (string, error) {
	if !utf8.Valid(data) {
		return "", errors.New("JSON text is not valid UTF-8")
	}
	p := &pyJSONParser{s: string(data)}
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return "", err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return "", p.errorf("extra data")
	}
	var b strings.Builder
	v.write(&b, strings.Repeat(" ", indent), 0)
	return b.String(), nil
}

// pyJSONValue is a parsed JSON value, kept in the form needed to print it.
type pyJSONValue struct {
	kind  byte // '{', '[', '"', 'n' (already-rendered scalar)
	text  string
	keys  []string // rendered keys, for objects
	items []*pyJSONValue
}

func (v *pyJSONValue) write(b *strings.Builder, indent string, level int) {
	switch v.kind {
	case '{', '[':
		closer := byte('}')
		if v.kind == '[' {
			closer = ']'
		}
		if len(v.items) == 0 {
			b.WriteByte(v.kind)
			b.WriteByte(closer)
			return
		}
		inner := "\n" + strings.Repeat(indent, level+1)
		b.WriteByte(v.kind)
		for i, item := range v.items {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(inner)
			if v.kind == '{' {
				b.WriteString(v.keys[i])
				b.WriteString(": ")
			}
			item.write(b, indent, level+1)
		}
		b.WriteString("\n" + strings.Repeat(indent, level))
		b.WriteByte(closer)
	default:
		b.WriteString(v.text)
	}
}

type pyJSONParser struct {
	s     string
	i     int
	depth int
}

func (p *pyJSONParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *pyJSONParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *pyJSONParser) literal(word, rendered string) (*pyJSONValue, error) {
	if !strings.HasPrefix(p.s[p.i:], word) {
		return nil, p.errorf("expecting value")
	}
	p.i += len(word)
	return &pyJSONValue{kind: 'n', text: rendered}, nil
}

func (p *pyJSONParser) value() (*pyJSONValue, error) {
	if p.i >= len(p.s) {
		return nil, p.errorf("expecting value")
	}
	switch c := p.s[p.i]; {
	case c == '{' || c == '[':
		p.depth++
		if p.depth > 10000 {
			return nil, p.errorf("nested too deeply")
		}
		defer func() { p.depth-- }()
		if c == '{' {
			return p.object()
		}
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &pyJSONValue{kind: '"', text: s}, nil
	case c == 'n':
		return p.literal("null", "null")
	case c == 't':
		return p.literal("true", "true")
	case c == 'f':
		return p.literal("false", "false")
	case c == 'N':
		return p.literal("NaN", "NaN")
	case c == 'I':
		return p.literal("Infinity", "Infinity")
	case c == '-' && strings.HasPrefix(p.s[p.i:], "-Infinity"):
		return p.literal("-Infinity", "-Infinity")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.errorf("expecting value")
}

func (p *pyJSONParser) object() (*pyJSONValue, error) {
	p.i++ // '{'
	v := &pyJSONValue{kind: '{'}
	index := map[string]int{}
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.errorf("expecting property name enclosed in double quotes")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errorf("expecting ':' delimiter")
		}
		p.i++
		p.skipSpace()
		item, err := p.value()
		if err != nil {
			return nil, err
		}
		if at, dup := index[key]; dup {
			v.items[at] = item // dict semantics: first position, last value
		} else {
			index[key] = len(v.items)
			v.keys = append(v.keys, key)
			v.items = append(v.items, item)
		}
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return v, nil
		}
		return nil, p.errorf("expecting ',' delimiter")
	}
}

func (p *pyJSONParser) array() (*pyJSONValue, error) {
	p.i++ // '['
	v := &pyJSONValue{kind: '['}
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.skipSpace()
		item, err := p.value()
		if err != nil {
			return nil, err
		}
		v.items = append(v.items, item)
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return v, nil
		}
		return nil, p.errorf("expecting ',' delimiter")
	}
}

// str parses a JSON string at p.i and returns it rendered with ensure_ascii.
func (p *pyJSONParser) str() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	b.WriteByte('"')
	for {
		if p.i >= len(p.s) {
			return "", p.errorf("unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			b.WriteByte('"')
			return b.String(), nil
		case c < 0x20:
			return "", p.errorf("invalid control character in string")
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errorf("unterminated string")
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				writePyASCIIRune(&b, rune(e))
			case 'b':
				writePyASCIIRune(&b, '\b')
			case 'f':
				writePyASCIIRune(&b, '\f')
			case 'n':
				writePyASCIIRune(&b, '\n')
			case 'r':
				writePyASCIIRune(&b, '\r')
			case 't':
				writePyASCIIRune(&b, '\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				// A high surrogate followed by \u low surrogate is one code point.
				if r >= 0xD800 && r <= 0xDBFF && strings.HasPrefix(p.s[p.i:], `\u`) {
					save := p.i
					p.i += 2
					lo, err := p.hex4()
					if err == nil && lo >= 0xDC00 && lo <= 0xDFFF {
						r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					} else {
						p.i = save
					}
				}
				writePyASCIIRune(&b, r)
			default:
				return "", p.errorf("invalid \\escape")
			}
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			p.i += size
			writePyASCIIRune(&b, r)
		}
	}
}

func (p *pyJSONParser) hex4() (rune, error) {
	if p.i+4 > len(p.s) {
		return 0, p.errorf("invalid \\uXXXX escape")
	}
	n, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
	if err != nil || strings.ContainsAny(p.s[p.i:p.i+4], "+-_") {
		return 0, p.errorf("invalid \\uXXXX escape")
	}
	p.i += 4
	return rune(n), nil
}

// writePyASCIIRune writes code point r as json.dumps(ensure_ascii=True) does.
func writePyASCIIRune(b *strings.Builder, r rune) {
	switch r {
	case '"':
		b.WriteString(`\"`)
	case '\\':
		b.WriteString(`\\`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	case '\b':
		b.WriteString(`\b`)
	case '\f':
		b.WriteString(`\f`)
	default:
		switch {
		case r >= ' ' && r <= '~':
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
}

// number parses a JSON number the way Python's json does: an integer stays
// an exact integer, anything with a fraction or exponent becomes a float.
func (p *pyJSONParser) number() (*pyJSONValue, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digitsFrom := p.i
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.i < len(p.s) && p.s[p.i] >= '1' && p.s[p.i] <= '9':
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
	default:
		return nil, p.errorf("expecting value")
	}
	intEnd := p.i
	isFloat := false
	if p.i+1 < len(p.s) && p.s[p.i] == '.' && isDigit(p.s[p.i+1]) {
		isFloat = true
		p.i++
		for p.i < len(p.s) && isDigit(p.s[p.i]) {
			p.i++
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		j := p.i + 1
		if j < len(p.s) && (p.s[j] == '+' || p.s[j] == '-') {
			j++
		}
		if j < len(p.s) && isDigit(p.s[j]) {
			isFloat = true
			for j < len(p.s) && isDigit(p.s[j]) {
				j++
			}
			p.i = j
		}
	}
	if !isFloat {
		digits := p.s[digitsFrom:intEnd]
		if digits == "0" || p.s[start] != '-' {
			return &pyJSONValue{kind: 'n', text: digits}, nil
		}
		return &pyJSONValue{kind: 'n', text: "-" + digits}, nil
	}
	f, err := strconv.ParseFloat(p.s[start:p.i], 64)
	if err != nil && !isRangeErr(err) {
		return nil, p.errorf("bad number")
	}
	return &pyJSONValue{kind: 'n', text: pyFloatRepr(f)}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// pyFloatRepr formats f as Python's float.__repr__ does (json.dumps uses
// it): the shortest round-tripping digits, in positional notation when the
// decimal exponent is in (-4, 16], else as d.ddde+XX; NaN and infinities as
// json.dumps writes them.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	sign := ""
	if math.Signbit(f) {
		sign = "-"
		f = -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddddde±XX
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expText)
	decpt := exp + 1 // value = 0.DIGITS × 10^decpt
	if f == 0 {
		return sign + "0.0"
	}
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			return sign + "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			return sign + digits[:decpt] + "." + digits[decpt:]
		}
	}
	out := sign + digits[:1]
	if len(digits) > 1 {
		out += "." + digits[1:]
	}
	expSign := "+"
	if exp < 0 {
		expSign, exp = "-", -exp
	}
	return fmt.Sprintf("%se%s%02d", out, expSign, exp)
}
