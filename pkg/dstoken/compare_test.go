package dstoken

import (
	"strings"
	"testing"

	"github.com/datasette-token-operator/datasette-token-operator/internal/vectors"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

func TestCompare(t *testing.T) {
	const issued = 1700000000
	want := Claims{Actor: "ci-bot", ExpiresAfter: 3600, Restrictions: Restrictions{
		All:       []string{"view-instance"},
		Databases: []DatabaseActions{{"analytics", []string{"view-database", "execute-sql"}}},
	}}
	at := want
	at.IssuedAt = issued
	cur, old := NewMinter([]byte("new")), NewMinter([]byte("old"))
	m := NewMinter([]byte("new"), []byte("old"))
	canonical := cur.Mint(at)
	body, sig := canonical[len(Prefix):strings.LastIndexByte(canonical, '.')], canonical[strings.LastIndexByte(canonical, '.')+1:]
	payload := at.PayloadJSON()
	// The same payload, signed uncompressed: Datasette accepts it, but it is
	// not what the Minter writes.
	if !strings.HasPrefix(body, ".") {
		t.Fatalf("the test needs a compressed token, got %s", canonical)
	}
	uncompressed := signedToken("new", itsdangerous.Base64Encode(payload))
	other := at
	other.Actor = "someone-else"
	otherRestrictions := at
	otherRestrictions.Restrictions.All = nil
	// A signature with '-' or '_' to swap for '+' or '/'.
	swapped := ""
	for c := at; swapped == ""; c.IssuedAt++ {
		tok := cur.Mint(c)
		dot := strings.LastIndexByte(tok, '.')
		if s := tok[dot+1:]; strings.ContainsAny(s, "-_") {
			swapped = tok[:dot+1] + strings.NewReplacer("-", "+", "_", "/").Replace(s)
			defer func(c Claims, tok string) {
				if got := m.Compare(swapped, c); got != (Comparison{Verified: true, IssuedAt: c.IssuedAt, SameClaims: true}) {
					t.Errorf("'-_' swapped for '+/' in the signature: %+v", got)
				}
				if got := m.Compare(tok, c); !got.Canonical {
					t.Errorf("the unswapped token is not canonical: %+v", got)
				}
			}(c, tok)
		}
	}

	verifiedSame := Comparison{Verified: true, IssuedAt: issued, SameClaims: true}
	for _, tt := range []struct {
		name  string
		token string
		want  Comparison
	}{
		{"the minted token", canonical, Comparison{Verified: true, IssuedAt: issued, SameClaims: true, Canonical: true}},
		{"signed with the previous secret", old.Mint(at), Comparison{Verified: true, KeyIndex: 1, IssuedAt: issued, SameClaims: true}},
		{"other actor", cur.Mint(other), Comparison{Verified: true, IssuedAt: issued}},
		{"other restrictions", cur.Mint(otherRestrictions), Comparison{Verified: true, IssuedAt: issued}},
		{"other actor, previous secret", old.Mint(other), Comparison{Verified: true, KeyIndex: 1, IssuedAt: issued}},
		{"unrelated secret", NewMinter([]byte("x")).Mint(at), Comparison{KeyIndex: -1}},
		{"no prefix", canonical[len(Prefix):], Comparison{KeyIndex: -1}},
		{"Bearer prefix", "Bearer " + canonical, Comparison{KeyIndex: -1}},
		{"empty", "", Comparison{KeyIndex: -1}},
		{"tampered signature", canonical[:len(canonical)-2] + "xx", Comparison{KeyIndex: -1}},
		{"tampered body", Prefix + body + "A." + sig, Comparison{KeyIndex: -1}},
		{"too large", canonical + strings.Repeat("=", MaxTokenSize), Comparison{KeyIndex: -1}},
		// Leniency: itsdangerous (so Datasette) accepts these, but the bytes
		// are not the minted token and consumers send them as they are.
		{`"\n\n" appended`, canonical + "\n\n", verifiedSame},
		{`"=" appended`, canonical + "=", verifiedSame},
		{`"==" appended`, canonical + "==", verifiedSame},
		{`"===" appended`, canonical + "===", verifiedSame},
		{"junk inside the signature", Prefix + body + "." + sig[:5] + "!!" + sig[5:], verifiedSame},
		{"uncompressed encoding", uncompressed, verifiedSame},
		{"previous secret and lenient", old.Mint(at) + "\n\n", Comparison{Verified: true, KeyIndex: 1, IssuedAt: issued, SameClaims: true}},
		// Signed by the key, but not what was asked for.
		{`"t" a string`, signedToken("new", itsdangerous.Base64Encode([]byte(`{"a":"ci-bot","t":"1700000000"}`))), Comparison{Verified: true}},
		{`"t" true`, signedToken("new", itsdangerous.Base64Encode([]byte(`{"a":"ci-bot","t":true,"d":3600}`))), Comparison{Verified: true, IssuedAt: 1}},
		{`"t" beyond int64`, signedToken("new", itsdangerous.Base64Encode([]byte(`{"a":"ci-bot","t":99999999999999999999}`))), Comparison{Verified: true, IssuedAt: 1<<63 - 1}},
		{"payload not JSON", signedToken("new", itsdangerous.Base64Encode([]byte(`{"a"`))), Comparison{Verified: true}},
		{"payload a list", signedToken("new", itsdangerous.Base64Encode([]byte(`["t"]`))), Comparison{Verified: true}},
		{"body not zlib", signedToken("new", ".eJzz"), Comparison{Verified: true}},
		{"zlib bomb", signedToken("new", "."+itsdangerous.Base64Encode(zlibOf(t, "[", "0,", 1_000_000, "0]"))), Comparison{Verified: true}},
	} {
		if got := m.Compare(tt.token, want); got != tt.want {
			t.Errorf("%s: Compare = %+v, want %+v", tt.name, got, tt.want)
		}
		// Whatever IssuedAt want carries is ignored.
		if got := m.Compare(tt.token, at); got != tt.want {
			t.Errorf("%s: Compare with IssuedAt set = %+v, want %+v", tt.name, got, tt.want)
		}
	}

	// After a rotation the Minter signing with the old secret sees the new
	// one's token as unverified, and a single-secret Minter never reports a
	// previous key.
	if got := old.Compare(canonical, want); got.Verified {
		t.Errorf("old secret verifies the new token: %+v", got)
	}
	if got := cur.Compare(old.Mint(at), want); got.Verified {
		t.Errorf("the new secret alone verifies an old token: %+v", got)
	}
}

// TestCompareLenientVectors checks Compare on the tokens Datasette accepted
// only through itsdangerous' leniency: verified, the same claims, never
// canonical.
func TestCompareLenientVectors(t *testing.T) {
	n := 0
	for _, v := range vectors.Verify(t) {
		if !strings.Contains(v.Quirk, "leniently") || v.Expected.Result != "actor" {
			continue
		}
		n++
		d, err := Decode(v.Token)
		if err != nil || string(d.Claims.PayloadJSON()) != string(d.Payload) {
			t.Fatalf("%s: the decoded claims do not reproduce the payload: %v", v.ID, err)
		}
		got := NewMinter([]byte(v.Secret)).Compare(v.Token, d.Claims)
		if want := (Comparison{Verified: true, IssuedAt: d.Claims.IssuedAt, SameClaims: true}); got != want {
			t.Errorf("%s (%s): Compare = %+v, want %+v", v.ID, v.Description, got, want)
		}
	}
	if n < 5 {
		t.Fatalf("only %d lenient vectors found", n)
	}
}

// FuzzCompare checks Compare's promises on arbitrary and mutated tokens:
// Canonical means exactly the minted token under the current key, SameClaims
// implies Verified, and a token is never verified under a secret that did
// not sign it.
func FuzzCompare(f *testing.F) {
	f.Add("dstok_eyJhIjoicm9vdCIsInQiOjE3MDAwMDAwMDB9.Gx9HDvoZQoviXk7Kgm9egGvAec4", "root", int64(1700000000), 0, byte('='))
	f.Add("", "ci", int64(1), 1000, byte('\n'))
	f.Add("dstok_.eJzz.x", "", int64(-1), 7, byte('+'))
	cur, old := NewMinter(fuzzSecret), NewMinter([]byte("old"))
	m := NewMinter(fuzzSecret, []byte("old"))
	f.Fuzz(func(t *testing.T, token, actor string, issued int64, pos int, b byte) {
		want := Claims{Actor: actor, IssuedAt: issued, ExpiresAfter: 60,
			Restrictions: Restrictions{Databases: []DatabaseActions{{"db", []string{"view-database"}}}}}
		check := func(token string, signer int) {
			got := m.Compare(token, want)
			switch {
			case got.Canonical && (!got.Verified || got.KeyIndex != 0 || !got.SameClaims):
				t.Fatalf("Compare(%q) = %+v: canonical without the rest", token, got)
			case got.SameClaims && !got.Verified, got.Verified != (got.KeyIndex >= 0):
				t.Fatalf("Compare(%q) = %+v: inconsistent", token, got)
			case signer >= 0 && got.Verified && got.KeyIndex != signer:
				t.Fatalf("Compare(%q) = %+v, signed with secret %d", token, got, signer)
			case signer < 0 && got.Verified:
				if NewMinter([]byte("unrelated")).Compare(token, want).Verified {
					t.Fatalf("%q verifies under unrelated secrets", token)
				}
			}
			if got.Canonical {
				c := want
				c.IssuedAt = got.IssuedAt
				if cur.Mint(c) != token {
					t.Fatalf("Compare(%q) canonical, but the minted token differs", token)
				}
			}
		}
		check(token, -1)
		for signer, minter := range []*Minter{cur, old} {
			minted := minter.Mint(want)
			got := m.Compare(minted, want)
			if got != (Comparison{Verified: true, KeyIndex: signer, IssuedAt: issued, SameClaims: true, Canonical: signer == 0}) {
				t.Fatalf("Compare(Mint(%+v)) with secret %d = %+v", want, signer, got)
			}
			if pos < 0 {
				pos = -(pos + 1)
			}
			mutated := []byte(minted)
			if i := pos % (len(mutated) + 1); i < len(mutated) {
				mutated[i] = b
			} else {
				mutated = append(mutated, b)
			}
			check(string(mutated), signer)
			if got := m.Compare(string(mutated), want); got.Canonical != (string(mutated) == minted && signer == 0) {
				t.Fatalf("mutated %q: %+v", mutated, got)
			}
		}
	})
}
