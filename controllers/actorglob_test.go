package controllers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// hostilePattern is the finding's pattern: a distinct prefix, then "*a" up to 1 024 characters
// (the CRD's maxLength), which a regular expression compiles into a program of about 120 KiB.
func hostilePattern(n int) datasettev1alpha1.ActorPattern {
	p := fmt.Sprintf("%06d", n) + strings.Repeat("*a", 512)
	return datasettev1alpha1.ActorPattern(p[:1024])
}

// hostilePolicies are signers' policies of 64 allowed and 64 denied hostile patterns each.
func hostilePolicies(signers int) []*datasettev1alpha1.SigningPolicy {
	policies := make([]*datasettev1alpha1.SigningPolicy, signers)
	for s := range policies {
		actors := &datasettev1alpha1.ActorPolicy{}
		for i := range 64 {
			actors.Allowed = append(actors.Allowed, hostilePattern(s*128+i))
			actors.Denied = append(actors.Denied, hostilePattern(s*128+64+i))
		}
		policies[s] = &datasettev1alpha1.SigningPolicy{Actors: actors}
	}
	return policies
}

// heapAfterGC is the live heap and the bytes ever allocated, after a collection.
func heapAfterGC() (live, allocated uint64) {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.TotalAlloc
}

// TestActorPatternsHoldNoMemory is issue 26's finding 1: ten DatasetteSigners (the README's
// quota) of 64 allowed and 64 denied patterns of 1 024 characters each, checked as the
// manager checks them (every signer's policy is validated, every token's actor matched against
// every pattern), must leave nothing behind on the heap and allocate next to nothing. With
// regular expressions cached process-wide this kept about 150 MiB live, more than the
// manager's 128Mi limit, and compiled it all again after every restart.
func TestActorPatternsHoldNoMemory(t *testing.T) {
	policies := hostilePolicies(10)
	actor := "000001" + strings.Repeat("a", 1018)
	liveBefore, allocatedBefore := heapAfterGC()
	start := time.Now()
	for _, p := range policies {
		policyInvalid(p)
		policyViolation(p, "S", dstoken.Claims{Actor: actor}, 0)
		for _, list := range [][]datasettev1alpha1.ActorPattern{p.Actors.Allowed, p.Actors.Denied} {
			for _, pattern := range list {
				if _, err := actorMatch(string(pattern), actor); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	elapsed := time.Since(start)
	liveAfter, allocatedAfter := heapAfterGC()
	retained := int64(liveAfter) - int64(liveBefore)
	allocated := allocatedAfter - allocatedBefore
	t.Logf("10 signers x 128 patterns of 1 024 characters: %.1f KiB retained, %.1f KiB allocated, %s",
		float64(retained)/(1<<10), float64(allocated)/(1<<10), elapsed.Round(time.Millisecond))
	runtime.KeepAlive(policies)
	if retained > 1<<20 {
		t.Errorf("the patterns' checks kept %d bytes live; want no more than 1 MiB", retained)
	}
	if allocated > 1<<20 {
		t.Errorf("the patterns' checks allocated %d bytes; want no more than 1 MiB", allocated)
	}
}

// TestActorMatchAllocatesNothing: matching works on the pattern's text; it compiles nothing and
// keeps nothing, however long or starry the pattern.
func TestActorMatchAllocatesNothing(t *testing.T) {
	actor := "team/" + strings.Repeat("é", 500)
	for _, pattern := range []string{string(hostilePattern(1)), "team/*", "[a-z]*/[^\\-]*é", `*\**`, strings.Repeat("*[!x]", 200)} {
		if allocs := testing.AllocsPerRun(20, func() {
			if _, err := actorMatch(pattern, actor); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("matching %.40q… allocates %v times; want none", pattern, allocs)
		}
	}
}

// TestActorGlobMatcher: the matcher on patterns of every element, and on patterns that make a
// backtracking matcher take exponential time, at the CRD's length limits. Each must answer
// at once (a generous second, for a shared machine; exponential would be years).
func TestActorGlobMatcher(t *testing.T) {
	long := strings.Repeat("a", 1024)
	tests := []struct {
		pattern, actor string
		match          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"**", "x/y", true},
		{"a*", "a", true},
		{"*a", "ba", true},
		{"*a", "ab", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbYcZ", false},
		{"a*b*c", "abcbc", true},
		{"*ab*ab", "abab", true},
		{"*ab*ab", "aabab", true},
		{"*ab*ab", "aba", false},
		{"?", "é", true},
		{"??", "é", false},
		{"[é-ë]", "ê", true},
		{"[é-ë]", "e", false},
		{"[a-cx-z]", "y", true},
		{"[a-cx-z]", "m", false},
		{"[^a-cx-z]", "m", true},
		{"[!a-cx-z]", "y", false},
		{`[\^]`, "^", true},
		{"[^^]", "^", false},
		{"[!!]", "a", true},
		{"[[]", "[", true},
		{`[\\]`, `\`, true},
		{`[\a-\c]`, "b", true},
		{`*\*`, "x*", true},
		{`*\*`, "x", false},
		{`\?`, "x", false},
		{"[^a]", "\n", true},
		{"*[0-9]", "v10", true},
		{"*[0-9]?", "v1x", true},
		{"*[0-9]?", "v1", false},
		{strings.Repeat("*a", 511) + "b", long, false},
		{strings.Repeat("*a", 512), long, true},
		{"*" + strings.Repeat("a", 511) + "b", long, false},
		{"*" + strings.Repeat("a", 511) + "*b", long, false},
		{strings.Repeat("*?", 511) + "b", long, false},
		{strings.Repeat("*[a-z]", 170) + "[^a]", long, false},
		{strings.Repeat("a*", 511) + "a", long, true},
		{"000001" + strings.Repeat("*a", 509), "000001" + strings.Repeat("a", 1018), true},
		{string(hostilePattern(1)), long, false},
	}
	for _, tt := range tests {
		start := time.Now()
		got, err := actorMatch(tt.pattern, tt.actor)
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("actorMatch(%.40q…) took %s", tt.pattern, elapsed)
		}
		if err != nil || got != tt.match {
			t.Errorf("actorMatch(%.40q, %.40q) = %v, %v; want %v", tt.pattern, tt.actor, got, err, tt.match)
		}
	}
}

// TestActorPatternsAtTheCap: the slowest policies admission lets through, every pattern a *
// and then elements that match any start in the actor but the last, matched against the longest
// actor id, for each kind of element. The times (what one token's policy check can cost) are
// logged and must stay well under a second.
func TestActorPatternsAtTheCap(t *testing.T) {
	const patterns = 128 // 64 allowed and 64 denied, the CRD's maxItems
	claims := dstoken.Claims{Actor: strings.Repeat("a", 1024)}
	for _, element := range []string{"a", "?", "[a]", "[^0]", "[a-z]"} {
		actors := &datasettev1alpha1.ActorPolicy{}
		for i := range patterns {
			elements := strings.Repeat(element, (datasettev1alpha1.MaxActorPatternBytes/patterns-4)/len(element))
			p := datasettev1alpha1.ActorPattern("*" + elements + strings.Repeat("a", (datasettev1alpha1.MaxActorPatternBytes/patterns-4)%len(element)) + fmt.Sprintf("%03d", i))
			if i < 64 {
				actors.Allowed = append(actors.Allowed, p)
			} else {
				actors.Denied = append(actors.Denied, p)
			}
		}
		policy := &datasettev1alpha1.SigningPolicy{Actors: actors}
		if msg := policyInvalid(policy); msg != "" || actorPatternBytes(actors) != datasettev1alpha1.MaxActorPatternBytes {
			t.Fatalf("%d bytes of patterns: %q; want a valid policy at the cap", actorPatternBytes(actors), msg)
		}
		start := time.Now()
		msg := policyViolation(policy, "S", claims, 0)
		elapsed := time.Since(start)
		t.Logf("%d bytes of patterns like *%s%s…000, against an actor id of 1 024 characters: %s", datasettev1alpha1.MaxActorPatternBytes, element, element, elapsed)
		if !strings.Contains(msg, "is not allowed") {
			t.Errorf("policyViolation = %q; want the actor not allowed", msg)
		}
		if elapsed > time.Second {
			t.Errorf("one policy check took %s", elapsed)
		}
	}
}

// TestPolicyOverTheCapIsInvalid: a policy whose patterns are longer together than the CRD
// allows (admitted by an older CRD) fails closed: the signer is InvalidPolicy, saying so, and
// mints nothing; one byte less is a valid policy.
func TestPolicyOverTheCapIsInvalid(t *testing.T) {
	atTheCap := &datasettev1alpha1.ActorPolicy{}
	for i := range datasettev1alpha1.MaxActorPatternBytes / 1024 {
		atTheCap.Allowed = append(atTheCap.Allowed, datasettev1alpha1.ActorPattern(fmt.Sprintf("%02d", i)+strings.Repeat("?", 1022)))
	}
	if msg := policyInvalid(&datasettev1alpha1.SigningPolicy{Actors: atTheCap}); msg != "" {
		t.Errorf("patterns of %d bytes: %q; want a valid policy", actorPatternBytes(atTheCap), msg)
	}
	over := &datasettev1alpha1.SigningPolicy{Actors: &datasettev1alpha1.ActorPolicy{Allowed: atTheCap.Allowed, Denied: []datasettev1alpha1.ActorPattern{"é"}}}
	ready := signerReadyUnder(t, over)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != datasettev1alpha1.ReasonInvalidPolicy || !strings.Contains(ready.Message, "16386 bytes") {
		t.Errorf("Ready = %+v; want False, InvalidPolicy, naming the patterns' length", ready)
	}
	for _, policy := range hostilePolicies(1) {
		if msg := policyInvalid(policy); !strings.Contains(msg, "131072 bytes") {
			t.Errorf("the finding's policy: %q; want it invalid", msg)
		}
	}
}

// regexpOracle is the translation of an actor pattern into a regular expression that the
// operator used before issue 26: the reference the matcher is compared with.
func regexpOracle(pattern string) (*regexp.Regexp, error) {
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
			end, class, err := oracleClassAt(runes, i)
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
	return regexp.Compile(re.String())
}

// oracleClassAt is regexpOracle's reading of the class at runes[start] == '['.
func oracleClassAt(runes []rune, start int) (end int, class string, err error) {
	var out strings.Builder
	out.WriteString("[")
	i := start + 1
	if i < len(runes) && (runes[i] == '^' || runes[i] == '!') {
		out.WriteString("^")
		i++
	}
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
	for items := 0; ; items++ {
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
	}
}

// sameAsOracle fails t when the matcher and regexpOracle disagree on pattern and actor: on
// whether the pattern is malformed (and the message saying why), or on the match.
func sameAsOracle(t *testing.T, pattern, actor string) {
	t.Helper()
	re, oracleErr := regexpOracle(pattern)
	got, err := actorMatch(pattern, actor)
	switch {
	case (err == nil) != (oracleErr == nil):
		t.Fatalf("pattern %q: matcher error %v, regexp error %v", pattern, err, oracleErr)
	case err != nil:
		if err.Error() != oracleErr.Error() || !errors.Is(err, errBadPattern) {
			t.Fatalf("pattern %q: matcher error %q, regexp error %q", pattern, err, oracleErr)
		}
	case got != re.MatchString(actor):
		t.Fatalf("actorMatch(%q, %q) = %v; the regexp says %v", pattern, actor, got, !got)
	}
}

// TestActorMatchAgreesWithRegexp compares the matcher with the regular expressions it replaced
// on many random patterns and actors, written from the characters that mean something.
func TestActorMatchAgreesWithRegexp(t *testing.T) {
	patternChars := []rune(`ab/*?[]^!-\é`)
	actorChars := []rune("ab/-]^*\\\né")
	random := rand.New(rand.NewPCG(26, 1))
	text := func(chars []rune, maxLen int) string {
		out := make([]rune, random.IntN(maxLen+1))
		for i := range out {
			out[i] = chars[random.IntN(len(chars))]
		}
		return string(out)
	}
	for range 100_000 {
		sameAsOracle(t, text(patternChars, 10), text(actorChars, 8))
	}
}

// FuzzActorMatch compares the matcher with the regular expressions it replaced on any
// pattern and actor of at most the CRD's 1 024 characters:
// go test ./controllers -run '^$' -fuzz FuzzActorMatch -fuzztime 60s
func FuzzActorMatch(f *testing.F) {
	for _, seed := range [][2]string{{"*admin*", "team/admin"}, {"[^rb]oot", "boot"}, {`[\]\-]`, "-"}, {"é*", "équipe/x"},
		{"[z-a]", "a"}, {"a[b-]", "ab"}, {`*\**`, "x*y"}, {"[!a-c]?*", "d\n"}, {"*a*b", "\xff\xfeab"}, {"\ufffd", "\xff"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, actor string) {
		if utf8.RuneCountInString(pattern) > 1024 || utf8.RuneCountInString(actor) > 1024 {
			t.Skip("longer than the CRD admits")
		}
		sameAsOracle(t, pattern, actor)
	})
}

// TestManagerHeapUnderHostileSigners: the manager reconciling ten signers at the patterns' cap
// (16 of the finding's patterns each) and a token under each keeps no more live heap than the
// objects themselves cost in its caches (1.6 MiB of patterns): 1 MiB more here. With compiled
// patterns the same signers grew it by 20.6 MiB, and the finding's (64+64 patterns each, which
// the CRD now refuses) by 157 MiB.
func TestManagerHeapUnderHostileSigners(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	signingSecret(t, ns, "datasette", "tenant-key")
	startManager(t, ns)
	time.Sleep(2 * time.Second) // the manager's caches started
	liveBefore, _ := heapAfterGC()
	const signers = 10
	tokens := make([]client.ObjectKey, 0, signers)
	for s := range signers {
		actors := &datasettev1alpha1.ActorPolicy{}
		for i := range datasettev1alpha1.MaxActorPatternBytes / 1024 / 2 {
			actors.Allowed = append(actors.Allowed, hostilePattern(s*16+i))
			actors.Denied = append(actors.Denied, hostilePattern(s*16+8+i))
		}
		name := fmt.Sprint("hostile-", s)
		create(t, &datasettev1alpha1.DatasetteSigner{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{Policy: &datasettev1alpha1.SigningPolicy{Actors: actors}}}})
		tok := newToken(ns, name, fmt.Sprintf("%06d", s*16)+strings.Repeat("a", 1018))
		tok.Spec.SigningSecretRef, tok.Spec.SignerRef = nil, &datasettev1alpha1.SignerReference{Kind: "DatasetteSigner", Name: name}
		create(t, tok)
		tokens = append(tokens, client.ObjectKeyFromObject(tok))
	}
	for _, key := range tokens {
		waitReason(t, key, datasettev1alpha1.ReasonIssued)
	}
	liveAfter, _ := heapAfterGC()
	grown := (float64(liveAfter) - float64(liveBefore)) / (1 << 20)
	t.Logf("the manager's live heap: %.1f MiB before the signers, %.1f MiB after (%+.1f MiB)", float64(liveBefore)/(1<<20), float64(liveAfter)/(1<<20), grown)
	if grown > 8 {
		t.Errorf("the manager's live heap grew by %.1f MiB; want no more than 8 MiB", grown)
	}
}
