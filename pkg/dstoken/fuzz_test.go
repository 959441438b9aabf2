package dstoken

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

var fuzzSecret = []byte("fuzz secret")

// FuzzVerify checks that Verify and Decode never panic, that any accepted
// token was signed by the key, and that a mutated token is either rejected
// or carries exactly the payload that was signed.
func FuzzVerify(f *testing.F) {
	minted := NewMinter(fuzzSecret).Mint(benchClaims())
	f.Add(minted, `{"a":"root","t":1700000000}`, 0, byte('x'), int64(0), int64(0))
	f.Add("dstok_eyJhIjoicm9vdCIsInQiOjE3MDAwMDAwMDB9.Gx9HDvoZQoviXk7Kgm9egGvAec4", `["t"]`, 70, byte('5'), int64(3600), int64(10))
	f.Add("dstok_.eJyrVkpUslIqys8vUdJRKlGyMjQ3gAIdpfgiJatqkHy0UlkmUHqQEbG1tQBgoDIG.OTsliE95KAV58YdXYUPTRw87NmE", `{"t":true,"d":1.5}`, 7, byte('='), int64(-5), int64(-100))
	f.Add("dstok_", `{"a":NaN,"t":`+strings.Repeat("9", 400)+`,"d":1}`, 3, byte('.'), int64(60), int64(1e12))
	f.Add("", `"t"`, 1, byte(0xff), int64(1), int64(math.MaxInt64))
	other := NewVerifier([]byte("another secret"))
	verifier := NewVerifier(fuzzSecret)
	signer := itsdangerous.NewSigner(Salt, fuzzSecret)
	f.Fuzz(func(t *testing.T, token, payload string, pos int, b byte, maxTTL, nowOffset int64) {
		opts := VerifyOptions{Now: time.Unix(1700000000, 0).Add(time.Duration(nowOffset) * time.Millisecond), MaxTTL: maxTTL}

		// Arbitrary tokens.
		got, err := verifier.Verify(token, opts)
		checkOutcome(t, got, err)
		if err == nil {
			if _, err := other.Verify(token, opts); err == nil {
				t.Fatalf("%q verifies under two unrelated secrets", token)
			}
		}
		_, _ = Decode(token) // must not panic; any result is fine

		// A signed arbitrary payload, then mutated.
		signed := Prefix + signer.Sign([]byte(payload))
		got, err = verifier.Verify(signed, opts)
		checkOutcome(t, got, err)
		if err == nil && string(got.Payload) != payload {
			t.Fatalf("payload %q verified as %q", payload, got.Payload)
		}
		if pos < 0 {
			pos = -(pos + 1)
		}
		mutated := []byte(signed)
		if i := pos % (len(mutated) + 1); i < len(mutated) {
			mutated[i] = b
		} else {
			mutated = append(mutated, b)
		}
		got, err = verifier.Verify(string(mutated), opts)
		checkOutcome(t, got, err)
		if err == nil && string(got.Payload) != payload {
			t.Fatalf("mutated token %q verified with payload %q; signed %q", mutated, got.Payload, payload)
		}
		_, _ = Decode(string(mutated)) // must not panic; any result is fine
	})
}

// checkOutcome checks that a Verify result is one of the documented ones
// and that an accepted actor marshals to JSON our parser reads back.
func checkOutcome(t *testing.T, got *Verified, err error) {
	t.Helper()
	switch v := goVerdict(t, got, err); v.Result {
	case "actor":
		b := unhexSafe(v.Actor)
		parsed, err := parsePyJSON([]byte(b))
		if err != nil || string(parsed.compact()) != b {
			t.Fatalf("actor JSON %s is not canonical: %v", b, err)
		}
	case "invalid":
		switch v.Message {
		case MessageInvalidSignature, MessageNoTimestamp, MessageInvalidTimestamp, MessageInvalidDuration, MessageExpired, MessageSignedTokensDisabled:
		default:
			t.Fatalf("unknown message %q", v.Message)
		}
	case "error":
		switch v.Exception {
		case "BadPayload", "KeyError", "TypeError", "OverflowError":
		default:
			t.Fatalf("unknown exception %q", v.Exception)
		}
	}
}

// FuzzMintVerify checks that arbitrary claims round-trip through Mint,
// Verify and Decode.
func FuzzMintVerify(f *testing.F) {
	f.Add("root", int64(1700000000), int64(0), "db", "table", "view-table", 1)
	f.Add("😀 \"q\" \\ \u2028\x00\x7f", int64(1), int64(-1), "<db>&", "t\u2028", "vi", 7)
	f.Add("\xff\xfe", int64(math.MaxInt64), int64(math.MinInt64), "\xed\xa0\x80", "", "", 40)
	f.Add("", int64(-1), int64(1<<53+1), "données", "表", "my-plugin-action", 3)
	minter, verifier := NewMinter(fuzzSecret), NewVerifier(fuzzSecret)
	f.Fuzz(func(t *testing.T, actor string, issued, expires int64, db, res, action string, n int) {
		c := Claims{Actor: actor, IssuedAt: issued, ExpiresAfter: expires}
		if n < 0 {
			n = -(n + 1)
		}
		for i := range n % 50 {
			switch i % 3 {
			case 0:
				c.Restrictions.All = append(c.Restrictions.All, action)
			case 1:
				c.Restrictions.Databases = append(c.Restrictions.Databases, DatabaseActions{db, []string{action}})
			default:
				c.Restrictions.Resources = append(c.Restrictions.Resources, ResourceActions{db, res + string(rune('a'+i%5)), []string{action, "view-table"}})
			}
		}
		payload := c.PayloadJSON()
		if !utf8.Valid(payload) || !json.Valid(payload) {
			t.Fatalf("PayloadJSON is not valid UTF-8 JSON: %q", payload)
		}
		token := minter.Mint(c)
		got, err := verifier.Verify(token, VerifyOptions{Now: time.Unix(issued, 0)})
		if expires < 0 {
			var inv *InvalidTokenError
			if !errors.As(err, &inv) || inv.Message != MessageExpired {
				t.Fatalf("Verify(%+v) = %v, want expired", c, err)
			}
		} else if err != nil || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("Verify(Mint(%+v)) = %v, %v", c, got, err)
		} else {
			var id string
			if err := json.Unmarshal(got.Actor.ID, &id); err != nil || id != sanitize(actor) {
				t.Fatalf("actor id %s, want %q", got.Actor.ID, actor)
			}
			if (got.Actor.Restrictions != nil) != !c.Restrictions.IsZero() {
				t.Fatalf("restrictions %s for %+v", got.Actor.Restrictions, c.Restrictions)
			}
		}
		d, err := Decode(token)
		if err != nil || !bytes.Equal(d.Claims.PayloadJSON(), payload) {
			t.Fatalf("Decode(Mint(%+v)) = %+v, %v", c, d, err)
		}
	})
}

// FuzzParseJSON checks the Python-compatible JSON parser against
// encoding/json on the standard subset, and that its output (compact or
// indented) is canonical.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":"root","t":1700000000}`, `[1,2.5,-0,1e400,"\ud800",{"a":{}}]`, `NaN`, `-Infinity`,
		`{"a":1,"a":2}`, `"\u00e9\/\b"`, ` 1 `, `01`, `1.`, `"\x01"`, `[1,]`, "\ufeff1", `1e+`,
		strings.Repeat("[", 901) + strings.Repeat("]", 901), strings.Repeat("1", 4301),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parsePyJSON(data)
		if err != nil {
			if json.Valid(data) && utf8.Valid(data) && !deepOrLong(data) {
				t.Fatalf("rejected valid JSON %q: %v", data, err)
			}
			return
		}
		out := v.compact()
		again, err := parsePyJSON(out)
		if err != nil || !bytes.Equal(again.compact(), out) {
			t.Fatalf("canonical form %s of %q does not re-parse to itself: %v", out, data, err)
		}
		indented, err := IndentPayload(data, 2)
		if err == nil {
			again, err = parsePyJSON([]byte(indented))
		}
		if err != nil || !bytes.Equal(again.compact(), out) {
			t.Fatalf("IndentPayload(%q) = %s does not re-parse to %s: %v", data, indented, out, err)
		}
		if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) && !json.Valid(data) {
			t.Fatalf("accepted %q, which is not JSON", data)
		}
	})
}

// deepOrLong reports input beyond the parser's Python limits.
func deepOrLong(data []byte) bool {
	depth, maxD, digits, maxDigits := 0, 0, 0, 0
	for _, c := range data {
		switch c {
		case '[', '{':
			depth++
			maxD = max(maxD, depth)
		case ']', '}':
			depth--
		}
		if c >= '0' && c <= '9' {
			digits++
			maxDigits = max(maxDigits, digits)
		} else {
			digits = 0
		}
	}
	return maxD > MaxJSONDepth || maxDigits > maxIntDigits
}

// FuzzBombs signs (and forges) compressed payloads of repeated data, up to
// gigabytes decompressed, and checks that Decode, Verify and Compare never
// return a payload beyond MaxPayloadSize and fail only in documented ways.
func FuzzBombs(f *testing.F) {
	f.Add([]byte("0,"), 1_000_000, true)
	f.Add([]byte(`{"a":[`), 50_000, false)
	f.Add([]byte("["), 30_000, true)
	f.Add([]byte(`{"a":"x","t":1,"d":9}`), 1, true)
	m, v := NewMinter(fuzzSecret), NewVerifier(fuzzSecret)
	f.Fuzz(func(t *testing.T, unit []byte, reps int, signed bool) {
		if len(unit) == 0 {
			return
		}
		reps = min(max(reps, 0), 1<<24/len(unit)) // up to 16 MB decompressed
		body := "." + itsdangerous.Base64Encode(zlibOf(t, "", string(unit), reps, ""))
		token := forgedToken(body)
		if signed {
			token = signedToken(string(fuzzSecret), body)
		}
		if d, err := Decode(token); err == nil && len(d.Payload) > MaxPayloadSize {
			t.Fatalf("Decode returned a payload of %d bytes", len(d.Payload))
		} else if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, itsdangerous.ErrBadPayload) {
			t.Fatalf("Decode: undocumented error %v", err)
		}
		got, err := v.Verify(token, VerifyOptions{Now: time.Unix(1, 0)})
		checkOutcome(t, got, err)
		if err == nil && len(got.Payload) > MaxPayloadSize {
			t.Fatalf("Verify returned a payload of %d bytes", len(got.Payload))
		}
		if c := m.Compare(token, Claims{Actor: "x", IssuedAt: 1, ExpiresAfter: 9}); c.Verified != signed || c.Canonical {
			t.Fatalf("Compare = %+v for a token signed = %v", c, signed)
		}
	})
}
