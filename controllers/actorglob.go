package controllers

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// Actor patterns of a signer's policy. Datasette actor ids are free text, not paths, so a
// pattern matches the WHOLE actor id and:
//
//   - any run of characters, "/" included (also none)
//     ?        exactly one character
//     [abc]    one character of the class; [a-z] a range; [^abc] or [!abc] any character but those
//     \c       the character c itself (\*, \?, \[, \\, \])
//
// Every other character stands for itself. Inside a class, "]", "-" and "\" are written
// escaped (\], \-, \\); "[" opens nothing outside a class unless it starts one. A pattern that
// does not follow this syntax is malformed: the signer is not Ready (InvalidPolicy) and mints
// nothing, instead of the pattern silently matching nothing.
//
// actorPatternSyntax, the same grammar as a regular expression, is what the CRD's CEL rule
// checks at admission (it cannot check that a range's ends are in order; compileActorPattern does).
const actorPatternSyntax = `^([^\[\\]|\\.|\[([\^!]([^\]\\\-]|\\.)|([^\]\\\-\^!]|\\.))(-([^\]\\\-]|\\.))?(([^\]\\\-]|\\.)(-([^\]\\\-]|\\.))?)*\])*$`

// errBadPattern says an actor pattern is malformed.
var errBadPattern = errors.New("malformed actor pattern")

// compileActorPattern turns an actor pattern into an anchored regular expression.
func compileActorPattern(pattern string) (*regexp.Regexp, error) {
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("%w %q: not UTF-8", errBadPattern, pattern)
	}
	var re strings.Builder
	re.WriteString(`^(?s:`)
	runes := []rune(pattern)
	for i := 0; i < len(runes); i++ {
		switch c := runes[i]; c {
		case '*':
			for i+1 < len(runes) && runes[i+1] == '*' {
				i++
			}
			re.WriteString(`.*`)
		case '?':
			re.WriteString(`.`)
		case '\\':
			if i+1 == len(runes) {
				return nil, fmt.Errorf("%w %q: it ends with an unescaped \\", errBadPattern, pattern)
			}
			i++
			re.WriteString(regexp.QuoteMeta(string(runes[i])))
		case '[':
			end, class, err := classAt(runes, i)
			if err != nil {
				return nil, fmt.Errorf("%w %q: %w", errBadPattern, pattern, err)
			}
			re.WriteString(class)
			i = end
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString(`)$`)
	compiled, err := regexp.Compile(re.String())
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", errBadPattern, pattern, err)
	}
	return compiled, nil
}

// classAt reads the class starting at runes[start] == '[' and returns the index of its "]" and
// the class as a regular expression.
func classAt(runes []rune, start int) (end int, class string, err error) {
	var out strings.Builder
	out.WriteString("[")
	i := start + 1
	if i < len(runes) && (runes[i] == '^' || runes[i] == '!') {
		out.WriteString("^")
		i++
	}
	// char reads one class character at i (escaped or not).
	char := func() (rune, error) {
		if i >= len(runes) {
			return 0, errors.New("a [ is never closed")
		}
		c := runes[i]
		switch c {
		case '\\':
			if i+1 >= len(runes) {
				return 0, errors.New("it ends with an unescaped \\")
			}
			i += 2
			return runes[i-1], nil
		case ']', '-':
			return 0, fmt.Errorf("%q must be escaped inside [...]", c)
		}
		i++
		return c, nil
	}
	items := 0
	for {
		if i >= len(runes) {
			return 0, "", errors.New("a [ is never closed")
		}
		if runes[i] == ']' {
			if items == 0 {
				return 0, "", errors.New("an empty class []")
			}
			out.WriteString("]")
			return i, out.String(), nil
		}
		lo, err := char()
		if err != nil {
			return 0, "", err
		}
		fmt.Fprintf(&out, `\x{%x}`, lo)
		if i < len(runes) && runes[i] == '-' {
			i++
			hi, err := char()
			if err != nil {
				return 0, "", err
			}
			if hi < lo {
				return 0, "", fmt.Errorf("the range %c-%c is backwards", lo, hi)
			}
			fmt.Fprintf(&out, `-\x{%x}`, hi)
		}
		items++
	}
}

// maxCompiledPatterns bounds the compiled-pattern cache: patterns come from tenants'
// DatasetteSigners, so the cache is emptied when full rather than allowed to grow.
const maxCompiledPatterns = 4096

// actorPatterns caches compiled actor patterns by their text.
var actorPatterns = struct {
	sync.Mutex
	m map[string]compiledPattern
}{m: map[string]compiledPattern{}}

type compiledPattern struct {
	re  *regexp.Regexp
	err error
}

// actorPattern returns the compiled pattern, from the cache when it was compiled before.
func actorPattern(pattern string) (*regexp.Regexp, error) {
	actorPatterns.Lock()
	defer actorPatterns.Unlock()
	if c, ok := actorPatterns.m[pattern]; ok {
		return c.re, c.err
	}
	re, err := compileActorPattern(pattern)
	if len(actorPatterns.m) >= maxCompiledPatterns {
		clear(actorPatterns.m)
	}
	actorPatterns.m[pattern] = compiledPattern{re: re, err: err}
	return re, err
}

// actorMatch reports whether actor matches pattern; a malformed pattern reports its error.
func actorMatch(pattern, actor string) (bool, error) {
	re, err := actorPattern(pattern)
	if err != nil {
		return false, err
	}
	return re.MatchString(actor), nil
}
