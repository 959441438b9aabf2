package dstoken

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// legacyTree is the quadratic merging this package used before the linear
// one (kept verbatim as a reference): for each entry it scans the earlier
// ones, and for each merged key all the later ones.
type legacyTree struct{ entryTree }

func (e legacyTree) appendObject(b []byte, first, level int) []byte {
	b = append(b, '{')
	written := 0
	for i := first; i < e.n; i++ {
		if !e.sameKeys(i, first, level) || e.seen(first, i, level+1) {
			continue
		}
		if written > 0 {
			b = append(b, ',')
		}
		written++
		b = appendPyString(b, e.key(i, level), userText)
		b = append(b, ':')
		if level+1 < e.levels {
			b = e.appendObject(b, i, level+1)
			continue
		}
		b = append(b, '[')
		n := 0
		for j := i; j < e.n; j++ {
			if e.sameKeys(j, i, e.levels) {
				b = appendActionList(b, e.actions(j), &n, nil)
			}
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (e legacyTree) seen(from, i, level int) bool {
	for j := from; j < i; j++ {
		if e.sameKeys(j, i, level) {
			return true
		}
	}
	return false
}

// legacyJSON writes r's "d" and "r" objects with the legacy merging.
func legacyJSON(r Restrictions) []byte {
	dbs, res := r.Databases, r.Resources
	b := legacyTree{entryTree{
		n: len(dbs), levels: 1,
		key:     func(i, _ int) string { return sanitize(dbs[i].Database) },
		actions: func(i int) []string { return dbs[i].Actions },
	}}.appendObject(nil, 0, 0)
	return legacyTree{entryTree{
		n: len(res), levels: 2,
		key: func(i, level int) string {
			if level == 0 {
				return sanitize(res[i].Database)
			}
			return sanitize(res[i].Resource)
		},
		actions: func(i int) []string { return res[i].Actions },
	}}.appendObject(b, 0, 0)
}

// linearJSON writes the same objects with the linear merging.
func linearJSON(r Restrictions, s *mergeScratch) []byte {
	dbs, res := r.Databases, r.Resources
	b := entryTree{
		n: len(dbs), levels: 1,
		key:     func(i, _ int) string { return sanitize(dbs[i].Database) },
		actions: func(i int) []string { return dbs[i].Actions },
	}.append(nil, s)
	return entryTree{
		n: len(res), levels: 2,
		key: func(i, level int) string {
			if level == 0 {
				return sanitize(res[i].Database)
			}
			return sanitize(res[i].Resource)
		},
		actions: func(i int) []string { return res[i].Actions },
	}.append(b, s)
}

// randomRestrictions draws n database and n resource entries over a few
// names (so that many merge), invalid UTF-8 included.
func randomRestrictions(r *rand.Rand, n, names int) Restrictions {
	name := func() string {
		return []string{"db", "\xff", "\xfe", "données", "", "a\x00b", "t"}[r.IntN(7)] + fmt.Sprint(r.IntN(names))
	}
	var out Restrictions
	for range n {
		acts := make([]string, r.IntN(3))
		for i := range acts {
			acts[i] = actionPool[r.IntN(len(actionPool))]
		}
		out.Databases = append(out.Databases, DatabaseActions{name(), acts})
		out.Resources = append(out.Resources, ResourceActions{name(), name(), acts})
	}
	return out
}

// TestMergeMatchesLegacy checks that linear merging writes exactly what the
// quadratic one wrote, on both sides of the size where it switches from
// scanning to a map, with one scratch reused across sizes as Mint does.
func TestMergeMatchesLegacy(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	s := new(mergeScratch)
	for range 400 {
		n := r.IntN(3 * linearMerge)
		in := randomRestrictions(r, n, 1+r.IntN(n+1))
		if got, want := linearJSON(in, s), legacyJSON(in); !bytes.Equal(got, want) {
			t.Fatalf("%d entries: linear\n%s\nlegacy\n%s", n, got, want)
		}
	}
}

// benchRestrictions returns entries distinct databases and resources (the
// worst case for the legacy merging) with actions actions each.
func benchRestrictions(entries, actions int) Restrictions {
	acts := make([]string, actions)
	for i := range acts {
		acts[i] = BuiltinActions()[i%21]
	}
	var r Restrictions
	for i := range entries {
		r.Databases = append(r.Databases, DatabaseActions{fmt.Sprintf("db%d", i), acts})
		r.Resources = append(r.Resources, ResourceActions{fmt.Sprintf("db%d", i%16), fmt.Sprintf("t%d", i), acts})
	}
	return r
}

// BenchmarkMergeRestrictions writes the restrictions' "d" and "r" objects
// with the legacy and the linear merging, side by side, at 10, 1000 and the
// planned schema maximum (1024 databases and 1024 resources of 64 actions),
// and reports the legacy time as a multiple of the linear one ("x-faster").
func BenchmarkMergeRestrictions(b *testing.B) {
	for _, size := range []struct {
		name             string
		entries, actions int
	}{{"entries=10", 10, 2}, {"entries=1000", 1000, 2}, {"entries=1024x64", 1024, 64}} {
		r := benchRestrictions(size.entries, size.actions)
		var legacyNs float64
		b.Run(size.name+"/legacy", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				legacyJSON(r)
			}
			legacyNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(size.name+"/linear", func(b *testing.B) {
			s := new(mergeScratch)
			b.ReportAllocs()
			for b.Loop() {
				linearJSON(r, s)
			}
			if ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N); ns > 0 && legacyNs > 0 {
				b.ReportMetric(legacyNs/ns, "x-faster")
			}
		})
	}
}

// BenchmarkMintChecked mints at the same sizes through the API the operator
// calls (the schema maximum is refused as too large, after building its
// payload).
func BenchmarkMintChecked(b *testing.B) {
	m := NewMinter([]byte("secret"))
	for _, size := range []struct {
		name             string
		entries, actions int
	}{{"entries=10", 10, 2}, {"entries=1000", 1000, 2}, {"entries=1024x64", 1024, 64}} {
		c := Claims{Actor: "root", IssuedAt: 1700000000, ExpiresAfter: 3600, Restrictions: benchRestrictions(size.entries, size.actions)}
		b.Run(size.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = m.MintChecked(c)
			}
		})
	}
}
