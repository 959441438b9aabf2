package dstoken

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file parses JSON the way Python's json.loads (CPython's C scanner)
// does, because Datasette decodes token payloads with it:
//
//   - the text must be valid UTF-8 (itsdangerous decodes the bytes strictly);
//   - whitespace is " \t\n\r" only; a BOM is an error;
//   - NaN, Infinity and -Infinity are accepted;
//   - a number with a fraction or an exponent is a float (so 1.0 is not an
//     int); other numbers are ints of any size, except that an int with more
//     than 4300 digits is an error (Python 3.11+'s int_max_str_digits);
//   - control characters U+0000-U+001F inside strings are errors; \uXXXX
//     escapes may produce lone surrogates, which are kept;
//   - duplicate object keys: the last value wins, at the first key's position;
//   - nesting deeper than MaxJSONDepth is an error (Python raises
//     RecursionError at a depth that depends on its version and its stack);
//   - more than MaxJSONValues values is an error wrapping ErrTooLarge (Python
//     has no such limit; it bounds the memory a payload costs).

// maxIntDigits is CPython's default sys.get_int_max_str_digits().
const maxIntDigits = 4300

type pyKind uint8

const (
	pyNull pyKind = iota
	pyBool
	pyInt
	pyFloat
	pyString
	pyList
	pyDict
)

// pyValue is a decoded JSON value with Python's types. It is kept small (80
// bytes): a payload may hold MaxJSONValues of them.
type pyValue struct {
	kind  pyKind
	bool  bool
	float float64   // pyFloat
	str   string    // pyString: the text, lone surrogates in WTF-8 form; pyInt: the literal, as written
	list  []pyValue // pyList: the elements; pyDict: the last value given for each key
	keys  []string  // pyDict: keys in first-appearance order
}

// get returns the value of key in a dict.
func (v *pyValue) get(key string) (*pyValue, bool) {
	for i, k := range v.keys {
		if k == key {
			return &v.list[i], true
		}
	}
	return nil, false
}

// isInt reports whether Python's isinstance(v, int) holds: ints and bools.
func (v *pyValue) isInt() bool { return v.kind == pyInt || v.kind == pyBool }

// bigInt returns the value of an int or bool as a big.Int.
func (v *pyValue) bigInt() *big.Int {
	n := new(big.Int)
	switch v.kind {
	case pyBool:
		if v.bool {
			n.SetInt64(1)
		}
	case pyInt:
		n.SetString(v.str, 10) // the parser only produces valid literals
	}
	return n
}

// typeName returns Python's type(v).__name__.
func (v *pyValue) typeName() string {
	return [...]string{"NoneType", "bool", "int", "float", "str", "list", "dict"}[v.kind]
}

// compact returns v as json.dumps(v, separators=(",", ":"),
// ensure_ascii=False) writes it (lone surrogates as \uXXXX escapes).
func (v *pyValue) compact() []byte { return v.dump(nil, -1, 0) }

// dump appends v as Python's json.dumps writes it: with indent < 0 as
// json.dumps(v, separators=(",", ":"), ensure_ascii=False) (lone surrogates
// as \uXXXX escapes), else as json.dumps(v, indent=indent) (ensure_ascii=True,
// separators ",", ": ") with v nested level deep.
func (v *pyValue) dump(b []byte, indent, level int) []byte {
	switch v.kind {
	case pyNull:
		return append(b, "null"...)
	case pyBool:
		return strconv.AppendBool(b, v.bool)
	case pyInt:
		if v.str == "-0" {
			return append(b, '0')
		}
		return append(b, v.str...)
	case pyFloat:
		return appendPyFloat(b, v.float)
	}
	mode := decodedText
	if indent >= 0 {
		mode = decodedASCII
	}
	if v.kind == pyString {
		return appendPyString(b, v.str, mode)
	}
	opener, closer, elems := byte('['), byte(']'), v.list
	if v.kind == pyDict {
		opener, closer = '{', '}'
	}
	b = append(b, opener)
	for i := range elems {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNewline(b, indent, level+1)
		if v.kind == pyDict {
			b = appendPyString(b, v.keys[i], mode)
			b = append(b, ':')
			if indent >= 0 {
				b = append(b, ' ')
			}
		}
		b = elems[i].dump(b, indent, level+1)
	}
	if len(elems) > 0 {
		b = appendNewline(b, indent, level)
	}
	return append(b, closer)
}

// appendNewline starts a new line indented for level, unless indent < 0.
func appendNewline(b []byte, indent, level int) []byte {
	if indent < 0 {
		return b
	}
	b = append(b, '\n')
	for range indent * level {
		b = append(b, ' ')
	}
	return b
}

// IndentPayload renders a token payload (or any JSON text) exactly as
// Python's json.dumps(json.loads(payload), indent=indent) does, which is how
// `datasette create-token --debug` prints a token's payload:
//
//   - objects and arrays open on their line, with one member per line,
//     indented by indent more spaces per level (a negative indent counts as
//     0), "," after every member but the last and ": " after a key; empty
//     ones are "{}" and "[]";
//   - strings are escaped with ensure_ascii=True: '"', '\\', \n \r \t \b \f,
//     and every other code point outside ' '..'~' as \uXXXX (lowercase hex;
//     surrogate pairs above U+FFFF; lone surrogates from \uD8XX escapes are
//     kept);
//   - integers are written in full, floats as Python's repr (1e+16, 1e-05,
//     100.0), and NaN, Infinity and -Infinity as such;
//   - a key that repeats keeps its first position and takes its last value.
//
// payload is read as json.loads reads it (NaN and Infinity included); what
// json.loads rejects is an error, and so is nesting deeper than MaxJSONDepth.
// The caller supplies payload, so its size is the caller's to bound: there is
// no MaxJSONValues limit here (a payload from [Decode] is already within it).
func IndentPayload(payload []byte, indent int) (string, error) {
	v, err := parsePyJSONLimit(payload, -1)
	if err != nil {
		return "", fmt.Errorf("dstoken: %w", err)
	}
	return string(v.dump(nil, max(indent, 0), 0)), nil
}

var (
	nan    = math.NaN()
	posInf = math.Inf(1)
	negInf = math.Inf(-1)
)

// errJSON is wrapped by every parse error.
var errJSON = errors.New("invalid JSON")

// parsePyJSON parses data like Python's json.loads(data.decode("utf-8")),
// within MaxJSONValues values.
func parsePyJSON(data []byte) (pyValue, error) {
	return parsePyJSONLimit(data, MaxJSONValues)
}

// parsePyJSONLimit is parsePyJSON with at most maxValues values (no limit
// when negative).
func parsePyJSONLimit(data []byte, maxValues int) (pyValue, error) {
	if !utf8.Valid(data) {
		return pyValue{}, fmt.Errorf("%w: payload is not valid UTF-8", errJSON)
	}
	p := parser{s: string(data), valuesLeft: maxValues}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return pyValue{}, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return pyValue{}, p.errorf("extra data")
	}
	return v, nil
}

type parser struct {
	s          string
	i          int
	valuesLeft int // values that may still be parsed; no limit when negative at the start
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at char %d", errJSON, fmt.Sprintf(format, args...), p.i)
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) literal(word string) bool {
	if strings.HasPrefix(p.s[p.i:], word) {
		p.i += len(word)
		return true
	}
	return false
}

func (p *parser) value(depth int) (pyValue, error) {
	if p.valuesLeft == 0 {
		return pyValue{}, fmt.Errorf("%w: %w: more than %d values at char %d", errJSON, ErrTooLarge, MaxJSONValues, p.i)
	}
	p.valuesLeft--
	if p.i >= len(p.s) {
		return pyValue{}, p.errorf("expecting value")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		s, err := p.string()
		return pyValue{kind: pyString, str: s}, err
	case c == '{':
		return p.dict(depth + 1)
	case c == '[':
		return p.list(depth + 1)
	case c == '-' || c >= '0' && c <= '9':
		if p.literal("-Infinity") {
			return pyValue{kind: pyFloat, float: negInf}, nil
		}
		return p.number()
	case p.literal("null"):
		return pyValue{kind: pyNull}, nil
	case p.literal("true"):
		return pyValue{kind: pyBool, bool: true}, nil
	case p.literal("false"):
		return pyValue{kind: pyBool}, nil
	case p.literal("NaN"):
		return pyValue{kind: pyFloat, float: nan}, nil
	case p.literal("Infinity"):
		return pyValue{kind: pyFloat, float: posInf}, nil
	}
	return pyValue{}, p.errorf("expecting value")
}

// number parses -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)? greedily, as
// Python's NUMBER_RE does: "1." is the int 1 followed by extra data.
func (p *parser) number() (pyValue, error) {
	s, start := p.s, p.i
	i := start
	if s[i] == '-' {
		i++
	}
	digits := func(j int) int {
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(i)
	default:
		return pyValue{}, p.errorf("expecting value")
	}
	intEnd := i
	isFloat := false
	if i+1 < len(s) && s[i] == '.' && s[i+1] >= '0' && s[i+1] <= '9' {
		i = digits(i + 1)
		isFloat = true
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			i = digits(j)
			isFloat = true
		}
	}
	p.i = i
	lit := s[start:i]
	if isFloat {
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return pyValue{}, p.errorf("bad number %q", lit)
		}
		return pyValue{kind: pyFloat, float: f}, nil
	}
	if n := intEnd - start - strings.Count(lit[:1], "-"); n > maxIntDigits {
		return pyValue{}, p.errorf("exceeds the limit (%d digits) for integer string conversion: value has %d digits", maxIntDigits, n)
	}
	return pyValue{kind: pyInt, str: lit}, nil
}

// string parses a string literal starting at the opening quote.
func (p *parser) string() (string, error) {
	s := p.s
	p.i++ // opening quote
	var b []byte
	start := p.i
	for {
		if p.i >= len(s) {
			return "", p.errorf("unterminated string")
		}
		c := s[p.i]
		switch {
		case c == '"':
			out := s[start:p.i]
			if b != nil {
				out = string(append(b, out...))
			}
			p.i++
			return out, nil
		case c < 0x20:
			return "", p.errorf("invalid control character")
		case c != '\\':
			p.i++
			continue
		}
		b = append(b, s[start:p.i]...)
		p.i++ // backslash
		if p.i >= len(s) {
			return "", p.errorf("unterminated string")
		}
		esc := s[p.i]
		p.i++
		switch esc {
		case '"', '\\', '/':
			b = append(b, esc)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("invalid \\uXXXX escape")
			}
			if utf16.IsSurrogate(r) && r < 0xDC00 && strings.HasPrefix(s[p.i:], "\\u") {
				save := p.i
				p.i += 2
				if r2, ok := p.hex4(); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
					b = utf8.AppendRune(b, utf16.DecodeRune(r, r2))
					break
				}
				p.i = save // Python: an invalid second escape is reported when it is read again
			}
			if utf16.IsSurrogate(r) {
				b = appendWTF8Surrogate(b, r)
			} else {
				b = utf8.AppendRune(b, r)
			}
		default:
			p.i--
			return "", p.errorf("invalid \\escape")
		}
		start = p.i
	}
}

// hex4 reads exactly four hex digits.
func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	p.i += 4
	return r, true
}

func (p *parser) list(depth int) (pyValue, error) {
	v := pyValue{kind: pyList}
	err := p.container(depth, ']', func() error {
		elem, err := p.value(depth)
		v.list = append(v.list, elem)
		return err
	})
	return v, err
}

func (p *parser) dict(depth int) (pyValue, error) {
	v := pyValue{kind: pyDict}
	var index map[string]int // used once the dict is large
	err := p.container(depth, '}', func() error {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return p.errorf("expecting property name enclosed in double quotes")
		}
		key, err := p.string()
		if err != nil {
			return err
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return p.errorf("expecting ':' delimiter")
		}
		p.i++
		p.skipSpace()
		val, err := p.value(depth)
		if err != nil {
			return err
		}
		v.set(key, val, &index)
		return nil
	})
	return v, err
}

// container parses the ","-separated elements of an array or object, from
// its opening bracket to closer, calling elem at the start of each.
func (p *parser) container(depth int, closer byte, elem func() error) error {
	if depth > MaxJSONDepth {
		return p.errorf("maximum recursion depth exceeded")
	}
	p.i++ // the opening bracket
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == closer {
		p.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == closer {
			p.i++
			return nil
		}
		if p.i >= len(p.s) || p.s[p.i] != ',' {
			return p.errorf("expecting ',' delimiter")
		}
		p.i++
		p.skipSpace()
	}
}

// set stores key: val in a dict with Python's semantics (a repeated key keeps
// its position and takes the new value). Small dicts are searched linearly;
// larger ones get an index.
func (v *pyValue) set(key string, val pyValue, index *map[string]int) {
	const linear = 16
	if *index == nil && len(v.keys) >= linear {
		*index = make(map[string]int, 2*linear)
		for i, k := range v.keys {
			(*index)[k] = i
		}
	}
	if *index != nil {
		if i, ok := (*index)[key]; ok {
			v.list[i] = val
			return
		}
		(*index)[key] = len(v.keys)
	} else {
		for i, k := range v.keys {
			if k == key {
				v.list[i] = val
				return
			}
		}
	}
	v.keys = append(v.keys, key)
	v.list = append(v.list, val)
}
