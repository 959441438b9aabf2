package controllers

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Actor patterns of a signer's policy. Datasette actor ids are free text, not paths, so a
// pattern matches the WHOLE actor id and:
//
//	?        exactly one character
//	*        any run of characters, "/" included (also none)
//	[abc]    one character of the class; [a-z] a range; [^abc] or [!abc] any character but those
//	\c       the character c itself (\*, \?, \[, \\, \])
//
// Every other character stands for itself. Inside a class, "]", "-" and "\" are written
// escaped (\], \-, \\); "[" opens nothing outside a class unless it starts one. A pattern that
// does not follow this syntax is malformed: the signer is not Ready (InvalidPolicy) and mints
// nothing, instead of the pattern silently matching nothing.
//
// Patterns are matched in place, from their text: nothing is compiled or cached, and matching
// costs at most len(pattern) × len(actor) steps and no memory, so what a tenant writes into a
// policy costs the operator its length and no more (the CRD bounds the length of all of a
// policy's patterns by datasettev1alpha1.MaxActorPatternBytes).
//
// actorPatternSyntax, the same grammar as a regular expression, is what the CRD's CEL rule
// checks at admission (it cannot check that a range's ends are in order; checkActorPattern does).
const actorPatternSyntax = `^([^\[\\]|\\.|\[([\^!]([^\]\\\-]|\\.)|([^\]\\\-\^!]|\\.))(-([^\]\\\-]|\\.))?(([^\]\\\-]|\\.)(-([^\]\\\-]|\\.))?)*\])*$`

// errBadPattern says an actor pattern is malformed.
var errBadPattern = errors.New("malformed actor pattern")

// checkActorPattern returns nil when pattern follows the syntax, or errBadPattern saying why not.
func checkActorPattern(pattern string) error {
	if !utf8.ValidString(pattern) {
		return fmt.Errorf("%w %q: not UTF-8", errBadPattern, pattern)
	}
	for i := 0; i < len(pattern); i = nextElement(pattern, i) {
		var err error
		switch {
		case pattern[i] == '\\' && i+1 == len(pattern):
			err = errors.New(`it ends with an unescaped \`)
		case pattern[i] == '[':
			err = checkClass(pattern, i)
		}
		if err != nil {
			return fmt.Errorf("%w %q: %w", errBadPattern, pattern, err)
		}
	}
	return nil
}

// checkClass returns nil when the class opened at pattern[open] == '[' is well formed.
func checkClass(pattern string, open int) error {
	i := open + 1
	if i < len(pattern) && (pattern[i] == '^' || pattern[i] == '!') {
		i++
	}
	for items := 0; ; items++ {
		if i < len(pattern) && pattern[i] == ']' {
			if items == 0 {
				return errors.New("an empty class []")
			}
			return nil
		}
		lo, next, err := classChar(pattern, i)
		if err != nil {
			return err
		}
		if next < len(pattern) && pattern[next] == '-' {
			hi, afterRange, err := classChar(pattern, next+1)
			if err != nil {
				return err
			}
			if hi < lo {
				return fmt.Errorf("the range %c-%c is backwards", lo, hi)
			}
			next = afterRange
		}
		i = next
	}
}

// classChar reads the class character at byte offset i of pattern, escaped or not, and
// returns it with the offset after it.
func classChar(pattern string, i int) (char rune, next int, err error) {
	switch {
	case i >= len(pattern):
		return 0, 0, errors.New("a [ is never closed")
	case pattern[i] == '\\' && i+1 == len(pattern):
		return 0, 0, errors.New(`it ends with an unescaped \`)
	case pattern[i] == ']' || pattern[i] == '-':
		return 0, 0, fmt.Errorf("%q must be escaped inside [...]", rune(pattern[i]))
	}
	char, next = charAt(pattern, i)
	return char, next, nil
}

// charAt reads the character at byte offset i of text, unescaping a "\", and returns it with
// the offset after it.
func charAt(text string, i int) (char rune, next int) {
	if b := text[i]; b < utf8.RuneSelf && b != '\\' {
		return rune(b), i + 1
	}
	if text[i] == '\\' && i+1 < len(text) {
		i++
	}
	char, width := utf8.DecodeRuneInString(text[i:])
	return char, i + width
}

// nextElement is the offset of the element after the one at byte offset i of pattern (each
// "*" is one). It does not check the syntax: checkActorPattern does, before anything is matched.
func nextElement(pattern string, i int) int {
	if pattern[i] == '[' {
		return classEnd(pattern, i) + 1
	}
	_, next := charAt(pattern, i)
	return next
}

// classEnd is the offset of the "]" closing the class opened at pattern[open] == '[': the
// first one not escaped (no byte of a multi-byte character is "]" or "\"), or len(pattern).
func classEnd(pattern string, open int) int {
	for i := open + 1; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			i++
		case ']':
			return i
		}
	}
	return len(pattern)
}

// matchCheckedPattern reports whether actor matches the whole of pattern, which
// checkActorPattern accepted. Every element but * takes exactly one character, so when what
// follows the last * fails, only that * need take one character more and the elements after it
// be tried again from there: an earlier * taking more could only move the same elements later.
// That is at most len(actor) tries of at most len(pattern) steps each, and no memory.
func matchCheckedPattern(pattern, actor string) bool {
	p, a := 0, 0
	afterStar, starTaken := -1, 0 // where the elements after the last * start, and where the actor's part for them starts
	for a < len(actor) {
		if p < len(pattern) {
			switch b := pattern[p]; {
			case b == '*':
				for p < len(pattern) && pattern[p] == '*' {
					p++
				}
				afterStar, starTaken = p, a
				continue
			case isPlainASCII(b): // the common cases, without decoding
				if b == actor[a] {
					p, a = p+1, a+1
					continue
				}
			case b == '?' && actor[a] < utf8.RuneSelf:
				p, a = p+1, a+1
				continue
			default:
				if next, width := matchElement(pattern, p, actor, a); width > 0 {
					p, a = next, a+width
					continue
				}
			}
		}
		if afterStar < 0 {
			return false
		}
		_, width := utf8.DecodeRuneInString(actor[starTaken:])
		starTaken += width
		p, a = afterStar, starTaken
	}
	return strings.TrimLeft(pattern[p:], "*") == ""
}

// isPlainASCII reports whether the pattern byte b is an ASCII character standing for itself.
func isPlainASCII(b byte) bool {
	return b < utf8.RuneSelf && b != '*' && b != '?' && b != '[' && b != '\\'
}

// matchElement matches the one-character element at pattern[p] (?, a class, an escaped or a
// non-ASCII character) with the character at actor[a]: it returns the offset of the next
// element and the width of the character taken, or a width of 0 when they do not match.
func matchElement(pattern string, p int, actor string, a int) (next, width int) {
	c, width := utf8.DecodeRuneInString(actor[a:])
	matched := false
	switch pattern[p] {
	case '?':
		matched, next = true, p+1
	case '[':
		matched, next = inClass(pattern, p, c)
	default:
		var char rune
		char, next = charAt(pattern, p)
		matched = char == c
	}
	if !matched {
		return 0, 0
	}
	return next, width
}

// inClass reports whether c is one of the class opened at pattern[open] == '[', and returns
// the offset after the class.
func inClass(pattern string, open int, c rune) (in bool, next int) {
	i := open + 1
	negated := i < len(pattern) && (pattern[i] == '^' || pattern[i] == '!')
	if negated {
		i++
	}
	for i < len(pattern) && pattern[i] != ']' {
		lo, afterLo := charAt(pattern, i)
		hi, afterItem := lo, afterLo
		if afterLo+1 < len(pattern) && pattern[afterLo] == '-' {
			hi, afterItem = charAt(pattern, afterLo+1)
		}
		in = in || (lo <= c && c <= hi)
		i = afterItem
	}
	return in != negated, i + 1
}

// actorMatch reports whether actor matches pattern; a malformed pattern reports its error.
func actorMatch(pattern, actor string) (bool, error) {
	if err := checkActorPattern(pattern); err != nil {
		return false, err
	}
	return matchCheckedPattern(pattern, actor), nil
}
