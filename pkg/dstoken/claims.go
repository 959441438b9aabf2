package dstoken

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Restrictions limit what a token may do, like `datasette create-token`'s
// -a/--all, -d/--database and -r/--resource options.
//
// Entries naming the same database (or the same database and resource) merge
// when serialised, in order of first appearance, so a caller can append one
// entry per command-line flag or per CRD list item. Actions are full names as
// the user typed them; serialisation abbreviates the 21 built-in ones (see
// [Abbreviate]) and keeps anything else verbatim.
//
// An entry with no actions still serialises (as an empty list), so the token
// carries "_r" and is restricted: dropping it could turn an intended
// restriction into an unrestricted token.
type Restrictions struct {
	All       []string          // actions allowed everywhere (-a ACTION)
	Databases []DatabaseActions // actions allowed on a database (-d DB ACTION)
	Resources []ResourceActions // actions allowed on a table or query (-r DB RESOURCE ACTION)
}

// DatabaseActions allows Actions on one database.
type DatabaseActions struct {
	Database string
	Actions  []string
}

// ResourceActions allows Actions on one resource (table, view or query) of a
// database.
type ResourceActions struct {
	Database, Resource string
	Actions            []string
}

// IsZero reports whether r has no entries at all, in which case the token
// carries no "_r" key and is unrestricted.
func (r Restrictions) IsZero() bool {
	return len(r.All) == 0 && len(r.Databases) == 0 && len(r.Resources) == 0
}

// Claims are the contents of a Datasette API token.
type Claims struct {
	// Actor is the actor id ("a"). Invalid UTF-8 is replaced, see PayloadJSON.
	Actor string
	// IssuedAt is "t", in Unix seconds, written as it is (zero included).
	IssuedAt int64
	// ExpiresAfter is "d", in seconds. 0 means no "d" claim (the token never
	// expires unless the server sets max_signed_tokens_ttl); negative values
	// are written as-is, like Datasette, and make an already-expired token.
	ExpiresAfter int64
	// Restrictions become "_r" unless they are zero.
	Restrictions Restrictions
	// Profile is the Datasette release whose create-token the payload matches: its
	// abbreviations, and for 1.0a0–1.0a1 its "token": "dstok" key. nil is the newest release.
	Profile *Profile
}

// ErrInvalidUTF8 is wrapped by [Claims.Validate] errors.
var ErrInvalidUTF8 = errors.New("dstoken: text is not valid UTF-8")

// Validate reports text in c that is not valid UTF-8. Datasette cannot mint
// such text (Python receives undecodable command-line bytes as lone
// surrogates and then fails to encode the payload), while [Claims.PayloadJSON]
// silently replaces each invalid byte with U+FFFD; callers that want to reject
// it instead call Validate first.
func (c Claims) Validate() error {
	check := func(what, s string) error {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: %s %q", ErrInvalidUTF8, what, s)
		}
		return nil
	}
	errs := []error{check("actor id", c.Actor)}
	r := c.Restrictions
	for _, a := range r.All {
		errs = append(errs, check("action", a))
	}
	for _, d := range r.Databases {
		errs = append(errs, check("database", d.Database))
		for _, a := range d.Actions {
			errs = append(errs, check("action", a))
		}
	}
	for _, res := range r.Resources {
		errs = append(errs, check("database", res.Database), check("resource", res.Resource))
		for _, a := range res.Actions {
			errs = append(errs, check("action", a))
		}
	}
	return errors.Join(errs...)
}

// PayloadJSON returns the exact bytes Datasette signs for c: what Python's
// json.dumps(payload, separators=(",", ":"), ensure_ascii=False) writes for
// {"a": actor, "t": issued_at, "d": expires_after, "_r": restrictions}, with
// "d" only when ExpiresAfter is non-zero and "_r" only when the restrictions
// are not zero. IssuedAt is written as it is (zero included).
//
// Strings are written as raw UTF-8 with only '"', '\\' and control
// characters escaped. Each byte of invalid UTF-8 is written as U+FFFD (use
// [Claims.Validate] to reject such input instead).
func (c Claims) PayloadJSON() []byte {
	return c.appendPayload(make([]byte, 0, 64+len(c.Actor)), new(mergeScratch))
}

// appendPayload appends the payload (see PayloadJSON) to b, with scratch
// space for merging restriction entries.
func (c Claims) appendPayload(b []byte, scratch *mergeScratch) []byte {
	b = append(b, `{"a":`...)
	b = appendPyString(b, c.Actor, userText)
	if c.Profile != nil && c.Profile.TokenKeyInPayload {
		b = append(b, `,"token":"dstok"`...)
	}
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	if c.ExpiresAfter != 0 {
		b = append(b, `,"d":`...)
		b = strconv.AppendInt(b, c.ExpiresAfter, 10)
	}
	if !c.Restrictions.IsZero() {
		b = append(b, `,"_r":`...)
		b = c.Restrictions.appendJSON(b, scratch, c.Profile)
	}
	return append(b, '}')
}

// appendJSON writes the "_r" object: "a", "d" and "r" keys, each only when
// non-empty, with databases and resources merged in first-appearance order.
// Actions are abbreviated as p's create-token does (nil: the newest release).
func (r Restrictions) appendJSON(b []byte, scratch *mergeScratch, p *Profile) []byte {
	b = append(b, '{')
	if len(r.All) > 0 {
		b = append(b, `"a":[`...)
		b = appendActionList(b, r.All, new(int), p)
		b = append(b, ']')
	}
	if dbs := r.Databases; len(dbs) > 0 {
		if len(r.All) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"d":`...)
		b = entryTree{
			n: len(dbs), levels: 1,
			key:     func(i, _ int) string { return sanitize(dbs[i].Database) },
			actions: func(i int) []string { return dbs[i].Actions },
			profile: p,
		}.append(b, scratch)
	}
	if res := r.Resources; len(res) > 0 {
		if len(r.All) > 0 || len(r.Databases) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"r":`...)
		b = entryTree{
			n: len(res), levels: 2,
			key: func(i, level int) string {
				if level == 0 {
					return sanitize(res[i].Database)
				}
				return sanitize(res[i].Resource)
			},
			actions: func(i int) []string { return res[i].Actions },
			profile: p,
		}.append(b, scratch)
	}
	return append(b, '}')
}

// entryTree is a list of n restriction entries, each with a key per level
// (its database, or its database and resource) and actions. It is written as
// nested objects, one per level, whose leaves are lists of actions; entries
// with the same keys merge, in order of first appearance.
type entryTree struct {
	n, levels int
	key       func(i, level int) string // sanitized, so that keys that serialise alike merge alike
	actions   func(i int) []string
	profile   *Profile // abbreviates the actions (nil: the newest release)
}

// maxEntryLevels is the most levels an entryTree has (database, resource).
const maxEntryLevels = 2

// mergeScratch links the entries of an entryTree that share keys. For each
// level l, next[l][i] is the next entry after i with the same keys as i up to
// and including level l (or -1), and first[l][i] reports whether no earlier
// entry has them. Writing then follows the links, so merging is linear in the
// number of entries.
type mergeScratch struct {
	next  [maxEntryLevels][]int
	first [maxEntryLevels][]bool
	index map[mergeKey]int // the last entry seen with a key; used for larger trees
}

// mergeKey identifies the keys of an entry up to a level.
type mergeKey struct {
	level    int
	db, name string
}

// linearMerge is the number of entries up to which links are found by
// scanning earlier entries (no map, no allocation) rather than with the index.
const linearMerge = 16

// link fills s for e.
func (s *mergeScratch) link(e entryTree) {
	for l := range e.levels {
		s.next[l] = slices.Grow(s.next[l][:0], e.n)[:e.n]
		s.first[l] = slices.Grow(s.first[l][:0], e.n)[:e.n]
	}
	if e.n > linearMerge {
		if s.index == nil {
			s.index = make(map[mergeKey]int, e.n*e.levels)
		}
		defer clear(s.index)
	}
	for i := range e.n {
		for l := range e.levels {
			s.next[l][i] = -1
			last := -1
			if e.n > linearMerge {
				k := mergeKey{level: l, db: e.key(i, 0)}
				if l > 0 {
					k.name = e.key(i, l)
				}
				if j, ok := s.index[k]; ok {
					last = j
				}
				s.index[k] = i
			} else {
				for j := i - 1; j >= 0; j-- {
					if e.sameKeys(i, j, l+1) {
						last = j
						break
					}
				}
			}
			s.first[l][i] = last < 0
			if last >= 0 {
				s.next[l][last] = i
			}
		}
	}
}

// append writes the entries as nested objects.
func (e entryTree) append(b []byte, s *mergeScratch) []byte {
	s.link(e)
	return e.appendObject(b, s, 0, 0)
}

// appendObject writes the object at level for the entries that share the
// keys of entry start below that level (start being the earliest of them).
func (e entryTree) appendObject(b []byte, s *mergeScratch, start, level int) []byte {
	b = append(b, '{')
	written := 0
	for i := start; i >= 0 && i < e.n; {
		if s.first[level][i] {
			if written > 0 {
				b = append(b, ',')
			}
			written++
			b = appendPyString(b, e.key(i, level), userText)
			b = append(b, ':')
			if level+1 < e.levels {
				b = e.appendObject(b, s, i, level+1)
			} else {
				b = append(b, '[')
				n := 0
				for j := i; j >= 0; j = s.next[level][j] {
					b = appendActionList(b, e.actions(j), &n, e.profile)
				}
				b = append(b, ']')
			}
		}
		if level == 0 {
			i++ // every entry
		} else {
			i = s.next[level-1][i] // the entries with the same keys below level
		}
	}
	return append(b, '}')
}

// sameKeys reports whether entries i and j have the same keys below level.
func (e entryTree) sameKeys(i, j, level int) bool {
	for l := range level {
		if e.key(i, l) != e.key(j, l) {
			return false
		}
	}
	return true
}

// appendActionList writes abbreviated actions as list elements, continuing a
// list that already holds *n elements, abbreviated as p's create-token does (nil: the
// newest release).
func appendActionList(b []byte, actions []string, n *int, p *Profile) []byte {
	for _, a := range actions {
		if *n > 0 {
			b = append(b, ',')
		}
		*n++
		var abbr string
		if p == nil {
			abbr, _ = Abbreviate(a)
		} else {
			abbr, _ = p.Abbreviate(a)
		}
		b = appendPyString(b, abbr, userText)
	}
	return b
}

// sanitize replaces each byte of invalid UTF-8 in s with U+FFFD, as
// appendPyString does for user text, so that names that serialise alike
// merge alike.
func sanitize(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for _, r := range s {
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}
