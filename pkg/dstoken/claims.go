package dstoken

import (
	"errors"
	"fmt"
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
	// IssuedAt is "t", in Unix seconds. Minter.Mint uses the current time
	// when it is zero.
	IssuedAt int64
	// ExpiresAfter is "d", in seconds. 0 means no "d" claim (the token never
	// expires unless the server sets max_signed_tokens_ttl); negative values
	// are written as-is, like Datasette, and make an already-expired token.
	ExpiresAfter int64
	// Restrictions become "_r" unless they are zero.
	Restrictions Restrictions
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
	return c.appendPayload(make([]byte, 0, 64+len(c.Actor)))
}

func (c Claims) appendPayload(b []byte) []byte {
	b = append(b, `{"a":`...)
	b = appendPyString(b, c.Actor, false)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	if c.ExpiresAfter != 0 {
		b = append(b, `,"d":`...)
		b = strconv.AppendInt(b, c.ExpiresAfter, 10)
	}
	if !c.Restrictions.IsZero() {
		b = append(b, `,"_r":`...)
		b = c.Restrictions.appendJSON(b)
	}
	return append(b, '}')
}

// appendJSON writes the "_r" object: "a", "d" and "r" keys, each only when
// non-empty, with databases and resources merged in first-appearance order.
//
// Merging compares each entry with the earlier ones, which allocates nothing
// and is quadratic only in the number of entries; a token has to fit in an
// HTTP header, so that number stays small.
func (r Restrictions) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if len(r.All) > 0 {
		b = append(b, `"a":[`...)
		b = appendActionList(b, r.All, new(int))
		b = append(b, ']')
	}
	if dbs := r.Databases; len(dbs) > 0 {
		if len(r.All) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"d":{`...)
		written := 0
		for i := range dbs {
			db := sanitize(dbs[i].Database)
			if seenDatabase(dbs[:i], db) {
				continue
			}
			if written > 0 {
				b = append(b, ',')
			}
			written++
			b = appendPyString(b, db, false)
			b = append(b, ':', '[')
			n := 0
			for j := i; j < len(dbs); j++ {
				if j == i || sanitize(dbs[j].Database) == db {
					b = appendActionList(b, dbs[j].Actions, &n)
				}
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if res := r.Resources; len(res) > 0 {
		if len(r.All) > 0 || len(r.Databases) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"r":{`...)
		written := 0
		for i := range res {
			db := sanitize(res[i].Database)
			if seenResourceDatabase(res[:i], db) {
				continue
			}
			if written > 0 {
				b = append(b, ',')
			}
			written++
			b = appendPyString(b, db, false)
			b = append(b, ':', '{')
			names := 0
			for j := i; j < len(res); j++ {
				name := sanitize(res[j].Resource)
				if sanitize(res[j].Database) != db || seenResource(res[i:j], db, name) {
					continue
				}
				if names > 0 {
					b = append(b, ',')
				}
				names++
				b = appendPyString(b, name, false)
				b = append(b, ':', '[')
				n := 0
				for k := j; k < len(res); k++ {
					if k == j || sanitize(res[k].Database) == db && sanitize(res[k].Resource) == name {
						b = appendActionList(b, res[k].Actions, &n)
					}
				}
				b = append(b, ']')
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// seenDatabase reports whether an entry of earlier names db.
func seenDatabase(earlier []DatabaseActions, db string) bool {
	for _, d := range earlier {
		if sanitize(d.Database) == db {
			return true
		}
	}
	return false
}

// seenResourceDatabase reports whether an entry of earlier is in db.
func seenResourceDatabase(earlier []ResourceActions, db string) bool {
	for _, r := range earlier {
		if sanitize(r.Database) == db {
			return true
		}
	}
	return false
}

// seenResource reports whether an entry of earlier names db and resource.
func seenResource(earlier []ResourceActions, db, resource string) bool {
	for _, r := range earlier {
		if sanitize(r.Database) == db && sanitize(r.Resource) == resource {
			return true
		}
	}
	return false
}

// appendActionList writes abbreviated actions as list elements, continuing a
// list that already holds *n elements.
func appendActionList(b []byte, actions []string, n *int) []byte {
	for _, a := range actions {
		if *n > 0 {
			b = append(b, ',')
		}
		*n++
		abbr, _ := Abbreviate(a)
		b = appendPyString(b, abbr, false)
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
