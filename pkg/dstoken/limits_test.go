package dstoken

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// zlibOf returns zlib.compress (best compression) of n repetitions of unit
// between head and tail, written in chunks so that even gigabytes of output
// cost little to build.
func zlibOf(t testing.TB, head, unit string, n int, tail string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat(unit, 4096))
	_, _ = w.Write([]byte(head))
	for left := n; left > 0; left -= 4096 {
		_, _ = w.Write(chunk[:len(unit)*min(left, 4096)])
	}
	_, _ = w.Write([]byte(tail))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// signedToken returns "dstok_" + body + "." + its signature under secret,
// whatever body holds (compressed bodies start with ".").
func signedToken(secret, body string) string {
	mac := hmac.New(sha1.New, itsdangerous.DeriveKey(Salt, []byte(secret)))
	mac.Write([]byte(body))
	return Prefix + body + "." + itsdangerous.Base64Encode(mac.Sum(nil))
}

// forgedToken returns "dstok_" + body with a made-up signature.
func forgedToken(body string) string { return Prefix + body + ".Gx9HDvoZQoviXk7Kgm9egGvAec4" }

// bytesAllocated returns the bytes f allocates per call, averaged over runs
// calls after one warm-up call.
func bytesAllocated(runs int, f func()) uint64 {
	f()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// bomb is a hostile token body: "." + base64 of zlib data, or base64 of
// plain text.
type bomb struct {
	name string
	body string
	// oversized: the token is over MaxTokenSize, so nothing is read.
	oversized bool
}

func bombs(t testing.TB) []bomb {
	b64 := itsdangerous.Base64Encode
	compressed := func(head, unit string, n int, tail string) string {
		return "." + b64(zlibOf(t, head, unit, n, tail))
	}
	digits := strings.Repeat("9", maxIntDigits)
	return []bomb{
		// "[0,0,...]": 1 MB of JSON in a 1.4 KB token, 16 MB in a 21 KB one.
		{name: "530k zeros (1.4 KB)", body: compressed("[", "0,", 530_000, "0]")},
		{name: "8M zeros (21 KB)", body: compressed("[", "0,", 8_000_000, "0]")},
		// Gigabytes of zeros in just under MaxTokenSize.
		{name: "24M zeros (62 KB)", body: compressed("[", "0,", 24_000_000, "0]")},
		// A 1 MiB token (the Secret limit).
		{name: "1 MiB", body: b64([]byte("[" + strings.Repeat("0,", 393_000) + "0]")), oversized: true},
		// Within MaxPayloadSize: too many values, too deep, huge numbers.
		{name: "32k zeros (64 KB payload)", body: compressed("[", "0,", 32_000, "0]")},
		{name: "32k empty objects in a dict", body: compressed(`{"a":"x","t":1,"r":[`, "{},", 16_000, "{}]}")},
		{name: "30k-deep nesting", body: compressed("", "[", 30_000, strings.Repeat("]", 30_000))},
		{name: "15 numbers of 4300 digits", body: compressed(`{"a":"x","t":`+digits+`,"d":[`, digits+",", 14, "1]}")},
		{name: "a 60000-digit number", body: compressed(`{"a":"x","t":`, "9", 60_000, "}")},
		{name: "huge exponents", body: compressed("[", "1e999999999,", 5000, "1]")},
	}
}

// TestBombs feeds every bomb, forged and signed with the key, to every path
// that reads a token, and checks that each is refused (or read) within
// 4 MiB per call. Without the limits the first costs about 235 MB and the
// 21 KB one about 3.6 GB.
func TestBombs(t *testing.T) {
	const key = "k"
	const bound = 4 << 20
	minter, verifier := NewMinter([]byte(key)), NewVerifier([]byte(key))
	signer := itsdangerous.NewSigner(Salt, []byte(key))
	want := Claims{Actor: "x", IssuedAt: 1}
	opts := VerifyOptions{Now: time.Unix(1700000000, 0)}
	for _, b := range bombs(t) {
		forged, signed := forgedToken(b.body), signedToken(key, b.body)
		if oversized := len(signed) > MaxTokenSize; oversized != b.oversized {
			t.Fatalf("%s: token of %d bytes, oversized = %v; the test wants %v", b.name, len(signed), oversized, b.oversized)
		}
		t.Run(fmt.Sprintf("%s in %d bytes", b.name, len(signed)), func(t *testing.T) {
			paths := []struct {
				name  string
				call  func() error
				check func(err error) bool
			}{
				{"Decode", func() error { _, err := Decode(signed); return err }, func(err error) bool {
					return err == nil && !b.oversized || errors.Is(err, ErrTooLarge) || errors.Is(err, itsdangerous.ErrBadPayload)
				}},
				{"Verify forged", func() error { _, err := verifier.Verify(forged, opts); return err }, func(err error) bool {
					var inv *InvalidTokenError
					if b.oversized {
						return errors.Is(err, ErrTooLarge) && !errors.As(err, &inv)
					}
					return errors.As(err, &inv) && inv.Message == MessageInvalidSignature
				}},
				{"Verify signed", func() error { _, err := verifier.Verify(signed, opts); return err }, func(err error) bool {
					var srv *ServerError
					if b.oversized {
						return errors.Is(err, ErrTooLarge) && !errors.As(err, &srv)
					}
					return err != nil // a ServerError or a Datasette verdict, bounded
				}},
				{"Compare forged", func() error { return compareErr(minter.Compare(forged, want), false) }, nil},
				{"Compare signed", func() error { return compareErr(minter.Compare(signed, want), !b.oversized) }, nil},
				{"Unsign", func() error { _, err := signer.Unsign(signed[len(Prefix):]); return err }, func(err error) bool {
					return b.oversized || errors.Is(err, itsdangerous.ErrBadPayload) || err == nil
				}},
				{"DecodeUnverified", func() error { _, err := itsdangerous.DecodeUnverified(signed[len(Prefix):]); return err }, func(err error) bool {
					return b.oversized || errors.Is(err, itsdangerous.ErrBadPayload) || err == nil
				}},
			}
			for _, p := range paths {
				err := p.call()
				if p.check == nil && err != nil || p.check != nil && !p.check(err) {
					t.Errorf("%s: unexpected outcome %v", p.name, err)
				}
				if raceEnabled {
					continue
				}
				got := bytesAllocated(2, func() { _ = p.call() })
				if got > bound {
					t.Errorf("%s: %d bytes allocated per call, want at most %d", p.name, got, bound)
				}
				t.Logf("%-16s %8d bytes allocated per call: %v", p.name, got, err)
			}
		})
	}
}

// compareErr checks a Comparison of a bomb: never the same claims, and
// verified exactly when signed.
func compareErr(c Comparison, signed bool) error {
	if c.Verified != signed || c.SameClaims || c.Canonical || signed != (c.KeyIndex == 0) {
		return fmt.Errorf("comparison %+v, want verified = %v and nothing else", c, signed)
	}
	return nil
}

// TestOversizedTokensAreNotRead checks that a token over MaxTokenSize costs
// no base64, zlib or JSON work: a few hundred bytes (the error), where
// decoding one would cost at least its size again.
func TestOversizedTokensAreNotRead(t *testing.T) {
	m, v := NewMinter([]byte("k")), NewVerifier([]byte("k"))
	atLimit := Prefix + strings.Repeat("A", MaxTokenSize-len(Prefix)-1) + "."
	over := atLimit + "A"
	if _, err := Decode(atLimit); errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode of a token of exactly MaxTokenSize bytes: %v", err)
	}
	_, err := Decode(over)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(MaxTokenSize+1)) {
		t.Errorf("Decode(oversized) = %v, want ErrTooLarge with the size", err)
	}
	if _, err := v.Verify(over, VerifyOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Verify(oversized) = %v, want ErrTooLarge", err)
	}
	if c := m.Compare(over, Claims{}); c.Verified || c.KeyIndex != -1 {
		t.Errorf("Compare(oversized) = %+v", c)
	}
	if raceEnabled {
		return
	}
	for name, f := range map[string]func(){
		"Decode":  func() { _, _ = Decode(over) },
		"Verify":  func() { _, _ = v.Verify(over, VerifyOptions{}) },
		"Compare": func() { m.Compare(over, Claims{}) },
	} {
		if n := bytesAllocated(10, f); n > 1024 {
			t.Errorf("%s allocated %d bytes for an oversized token", name, n)
		}
	}
}

// checkRoundTrip checks the invariant the operator relies on: a token that
// MintChecked returned decodes, verifies and compares as Canonical.
func checkRoundTrip(t *testing.T, m *Minter, c Claims, token string) {
	t.Helper()
	payload := c.PayloadJSON()
	if d, err := Decode(token); err != nil || !bytes.Equal(d.Payload, payload) {
		t.Errorf("Decode of a MintChecked token (%d bytes): %v", len(token), err)
	}
	if got, err := NewVerifier([]byte("k")).Verify(token, VerifyOptions{Now: time.Unix(c.IssuedAt, 0)}); err != nil || !bytes.Equal(got.Payload, payload) {
		t.Errorf("Verify of a MintChecked token (%d bytes): %v", len(token), err)
	}
	if cmp := m.Compare(token, c); cmp != (Comparison{Verified: true, IssuedAt: c.IssuedAt, SameClaims: true, Canonical: true}) {
		t.Errorf("Compare of a MintChecked token (%d bytes) = %+v", len(token), cmp)
	}
}

// TestMintCheckedBoundaries mints at each limit and one step beyond it: the
// token at the limit must decode, verify and compare (else an operator would
// re-mint forever), the next one must be refused with ErrTooLarge, and the
// same claims minted without the check must be refused by Decode.
func TestMintCheckedBoundaries(t *testing.T) {
	m := NewMinter([]byte("k"))
	base := Claims{IssuedAt: 1700000000}

	// MaxPayloadSize: a compressible actor, so that the token stays small.
	pad := MaxPayloadSize - len(base.PayloadJSON())
	payloadAt := func(n int) Claims { c := base; c.Actor = strings.Repeat("a", n); return c }

	// MaxTokenSize: an incompressible actor (random printable ASCII, no
	// escapes), found by bisection.
	r := rand.New(rand.NewPCG(1, 2))
	const printable = "!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~"
	noise := make([]byte, MaxPayloadSize)
	for i := range noise {
		noise[i] = printable[r.IntN(len(printable))]
	}
	tokenAt := func(n int) Claims { c := base; c.Actor = string(noise[:n]); return c }
	lo, hi := 0, pad
	if _, err := m.MintChecked(tokenAt(hi)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("the noise does not reach MaxTokenSize before MaxPayloadSize: %v", err)
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if _, err := m.MintChecked(tokenAt(mid)); err == nil {
			lo = mid
		} else {
			hi = mid
		}
	}

	// MaxJSONValues: {"a":"","t":...,"_r":{"a":["",...]}} holds 5 values
	// besides the actions.
	valuesAt := func(n int) Claims { c := base; c.Restrictions.All = make([]string, n); return c }
	nValues := MaxJSONValues - 5

	for _, tt := range []struct {
		name       string
		at, beyond Claims
	}{
		{"MaxPayloadSize", payloadAt(pad), payloadAt(pad + 1)},
		{"MaxTokenSize", tokenAt(lo), tokenAt(hi)},
		{"MaxJSONValues", valuesAt(nValues), valuesAt(nValues + 1)},
	} {
		token, err := m.MintChecked(tt.at)
		if err != nil {
			t.Errorf("%s: MintChecked at the limit: %v", tt.name, err)
		} else {
			t.Logf("%s: at the limit, a %d-byte token of a %d-byte payload", tt.name, len(token), len(tt.at.PayloadJSON()))
			checkRoundTrip(t, m, tt.at, token)
		}
		if _, err := m.MintChecked(tt.beyond); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: MintChecked beyond the limit = %v, want ErrTooLarge", tt.name, err)
		}
		if _, err := Decode(m.Mint(tt.beyond)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: Decode of an unchecked token beyond the limit = %v, want ErrTooLarge", tt.name, err)
		}
	}
	if len(m.Mint(tokenAt(lo))) < MaxTokenSize-64 {
		t.Errorf("the MaxTokenSize case stops at %d bytes, well below the limit", len(m.Mint(tokenAt(lo))))
	}
}

// maxSpec returns restrictions at the planned schema maximum: 64 actions
// for all, 1024 databases and 1024 resources with 64 actions each.
func maxSpec() Restrictions {
	actions := make([]string, 64)
	for i := range actions {
		actions[i] = fmt.Sprintf("plugin-action-%d", i)
	}
	r := Restrictions{All: actions}
	for i := range 1024 {
		r.Databases = append(r.Databases, DatabaseActions{fmt.Sprintf("db%d", i), actions})
		r.Resources = append(r.Resources, ResourceActions{fmt.Sprintf("db%d", i%16), fmt.Sprintf("t%d", i), actions})
	}
	return r
}

func TestMintCheckedSchemaMaximum(t *testing.T) {
	c := Claims{Actor: "root", IssuedAt: 1700000000, Restrictions: maxSpec()}
	if _, err := NewMinter([]byte("k")).MintChecked(c); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MintChecked(schema maximum) = %v, want ErrTooLarge", err)
	}
}
