package cli

import (
	"sort"
)

// closeMatches returns what Python's difflib.get_close_matches(word,
// possibilities) returns with its defaults (n=3, cutoff=0.6): the best
// possibilities whose SequenceMatcher ratio against word is at least 0.6,
// best first (ties: the greater string first). click uses it to suggest
// option and command names.
func closeMatches(word string, possibilities []string) []string {
	const n, cutoff = 3, 0.6
	b := []rune(word)
	m := newSeqMatcher(b)
	type scored struct {
		score float64
		s     string
	}
	var found []scored
	for _, p := range possibilities {
		a := []rune(p)
		if r := m.ratio(a); r >= cutoff {
			found = append(found, scored{r, p})
		}
	}
	sort.SliceStable(found, func(i, j int) bool {
		if found[i].score != found[j].score {
			return found[i].score > found[j].score
		}
		return found[i].s > found[j].s
	})
	if len(found) > n {
		found = found[:n]
	}
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.s
	}
	return out
}

// seqMatcher is the part of difflib.SequenceMatcher (isjunk=None,
// autojunk=True) that ratio() needs, with b fixed ("seq2") and a varying.
type seqMatcher struct {
	b   []rune
	b2j map[rune][]int
}

func newSeqMatcher(b []rune) *seqMatcher {
	b2j := make(map[rune][]int)
	for j, c := range b {
		b2j[c] = append(b2j[c], j)
	}
	// autojunk: with 200 or more elements, elements occurring more than
	// 1% of the time (plus one) are "popular" and dropped from b2j.
	if n := len(b); n >= 200 {
		ntest := n/100 + 1
		for c, idxs := range b2j {
			if len(idxs) > ntest {
				delete(b2j, c)
			}
		}
	}
	return &seqMatcher{b: b, b2j: b2j}
}

// findLongestMatch is SequenceMatcher.find_longest_match without junk
// (popular elements are absent from b2j but, not being junk, can still be
// matched by the extension loops).
func (m *seqMatcher) findLongestMatch(a []rune, alo, ahi, blo, bhi int) (int, int, int) {
	besti, bestj, bestsize := alo, blo, 0
	j2len := map[int]int{}
	for i := alo; i < ahi; i++ {
		newj2len := map[int]int{}
		for _, j := range m.b2j[a[i]] {
			if j < blo {
				continue
			}
			if j >= bhi {
				break
			}
			k := j2len[j-1] + 1
			newj2len[j] = k
			if k > bestsize {
				besti, bestj, bestsize = i-k+1, j-k+1, k
			}
		}
		j2len = newj2len
	}
	for besti > alo && bestj > blo && a[besti-1] == m.b[bestj-1] {
		besti, bestj, bestsize = besti-1, bestj-1, bestsize+1
	}
	for besti+bestsize < ahi && bestj+bestsize < bhi && a[besti+bestsize] == m.b[bestj+bestsize] {
		bestsize++
	}
	return besti, bestj, bestsize
}

// ratio is SequenceMatcher(None, a, b).ratio(): 2*M/T.
func (m *seqMatcher) ratio(a []rune) float64 {
	type span struct{ alo, ahi, blo, bhi int }
	matches := 0
	queue := []span{{0, len(a), 0, len(m.b)}}
	for len(queue) > 0 {
		q := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		i, j, k := m.findLongestMatch(a, q.alo, q.ahi, q.blo, q.bhi)
		if k == 0 {
			continue
		}
		matches += k
		if q.alo < i && q.blo < j {
			queue = append(queue, span{q.alo, i, q.blo, j})
		}
		if i+k < q.ahi && j+k < q.bhi {
			queue = append(queue, span{i + k, q.ahi, j + k, q.bhi})
		}
	}
	t := len(a) + len(m.b)
	if t == 0 {
		return 1.0
	}
	return 2.0 * float64(matches) / float64(t)
}
