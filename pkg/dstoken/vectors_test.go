package dstoken

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/internal/vectors"
)

// vectorClaims builds the Claims the CLI would build from a mint vector's
// arguments.
func vectorClaims(t *testing.T, v vectors.MintVector) Claims {
	t.Helper()
	c := Claims{Actor: v.ActorID, IssuedAt: v.IssuedAt(t)}
	if v.ExpiresAfter != nil {
		d, err := v.ExpiresAfter.Int64()
		if err != nil {
			t.Fatalf("expires_after: %v", err)
		}
		c.ExpiresAfter = d
	}
	r := &c.Restrictions
	for _, f := range v.Restrictions {
		switch {
		case f[0] == "all" && len(f) == 2:
			r.All = append(r.All, f[1])
		case f[0] == "database" && len(f) == 3:
			r.Databases = append(r.Databases, DatabaseActions{Database: f[1], Actions: []string{f[2]}})
		case f[0] == "resource" && len(f) == 4:
			r.Resources = append(r.Resources, ResourceActions{Database: f[1], Resource: f[2], Actions: []string{f[3]}})
		default:
			t.Fatalf("unknown restriction %q", f)
		}
	}
	return c
}

// timeFromPython returns a time.Time for which pyTime gives exactly the
// float64 value of n, i.e. what time.time() returned to Datasette.
func timeFromPython(t testing.TB, n json.Number) time.Time {
	t.Helper()
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		t.Fatalf("now %q: %v", n, err)
	}
	ns, _ := new(big.Float).Mul(new(big.Float).SetFloat64(f), big.NewFloat(1e9)).Int64()
	for d := int64(0); d < 64; d++ {
		for _, c := range []int64{ns + d, ns - d} {
			if tm := time.Unix(0, c); pyTime(tm) == f {
				return tm
			}
		}
	}
	t.Fatalf("no time.Time gives time.time() == %v", f)
	return time.Time{}
}

func TestMintVectors(t *testing.T) {
	for _, v := range vectors.Mint(t) {
		t.Run(v.ID, func(t *testing.T) {
			c := vectorClaims(t, v)
			if got := c.PayloadJSON(); string(got) != v.PayloadJSON {
				t.Fatalf("%s\nPayloadJSON = %s\nwant          %s", v.Description, got, v.PayloadJSON)
			}
			// The compressor reproduces CPython's zlib, so even compressed
			// tokens are byte-identical (the README only promises the payload).
			token := NewMinter([]byte(v.Secret)).Mint(c)
			if token != v.Token {
				t.Errorf("%s\nMint = %s\nwant   %s", v.Description, token, v.Token)
			}
			d, err := Decode(token)
			if err != nil || string(d.Payload) != v.PayloadJSON {
				t.Errorf("Decode(our token) = %v, %v; want payload %s", d, err, v.PayloadJSON)
			}
			// Both tokens verify with the secret and carry the same payload.
			verifier := NewVerifier([]byte(v.Secret))
			opts := VerifyOptions{Now: time.Unix(c.IssuedAt, 0)}
			for _, tok := range []string{token, v.Token} {
				got, err := verifier.Verify(tok, opts)
				if c.ExpiresAfter < 0 {
					var inv *InvalidTokenError
					if !errors.As(err, &inv) || inv.Message != MessageExpired {
						t.Errorf("Verify(%s) = %v, want expired", tok, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Verify(%s): %v", tok, err)
					continue
				}
				if string(got.Payload) != v.PayloadJSON {
					t.Errorf("Verify(%s).Payload = %s, want %s", tok, got.Payload, v.PayloadJSON)
				}
			}
			unknown := UnknownActions(c.Restrictions)
			slices.Sort(unknown)
			want := slices.Clone(v.UnknownActions)
			slices.Sort(want)
			if !slices.Equal(unknown, want) {
				t.Errorf("UnknownActions = %q, want %q", unknown, want)
			}
		})
	}
}

func TestVerifyVectors(t *testing.T) {
	for _, v := range vectors.Verify(t) {
		t.Run(v.ID, func(t *testing.T) {
			maxTTL, err := v.Settings.MaxSignedTokensTTL.Int64()
			if err != nil {
				t.Fatalf("max_signed_tokens_ttl: %v", err)
			}
			opts := VerifyOptions{
				Now:                  timeFromPython(t, v.Now),
				MaxTTL:               maxTTL,
				SignedTokensDisabled: !v.Settings.AllowSignedTokens,
			}
			got, err := NewVerifier([]byte(v.Secret)).Verify(v.Token, opts)
			checkVerdict(t, v.Description, got, err, v.Expected.Result, v.Expected.Message, v.Expected.Exception, v.Expected.Actor)
			if err == nil && v.PayloadJSON != nil && string(got.Payload) != *v.PayloadJSON {
				t.Errorf("Payload = %s, want %s", got.Payload, *v.PayloadJSON)
			}
		})
	}
}

// checkVerdict compares a Verify result with Datasette's verdict.
func checkVerdict(t *testing.T, desc string, got *Verified, err error, result, message, exception string, actor json.RawMessage) {
	t.Helper()
	var inv *InvalidTokenError
	var srv *ServerError
	switch result {
	case "actor":
		if err != nil {
			t.Fatalf("%s: Verify error %v, want actor %s", desc, err, actor)
		}
		gotJSON, err := got.Actor.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: MarshalJSON: %v", desc, err)
		}
		if want := canonicalJSON(t, actor); string(gotJSON) != want {
			t.Fatalf("%s: actor %s, want %s", desc, gotJSON, want)
		}
		// encoding/json re-escapes <, >, & and U+2028/9 but must see the
		// same value.
		viaJSON, err := json.Marshal(got.Actor)
		if err != nil || !sameJSON(viaJSON, actor) {
			t.Fatalf("%s: json.Marshal(actor) = %s, %v; differs from %s", desc, viaJSON, err, actor)
		}
	case "invalid":
		if !errors.As(err, &inv) || inv.Message != message {
			t.Fatalf("%s: Verify = %v, %v; want TokenInvalid %q", desc, got, err, message)
		}
	case "not_ours":
		if !errors.Is(err, ErrNotDatasetteToken) {
			t.Fatalf("%s: Verify = %v, %v; want not ours", desc, got, err)
		}
	case "error":
		if !errors.As(err, &srv) || srv.Exception != exception {
			t.Fatalf("%s: Verify = %v, %v; want %s", desc, got, err, exception)
		}
	default:
		t.Fatalf("unknown expected result %q", result)
	}
}

// canonicalJSON re-serialises JSON text as Python's compact json.dumps would.
func canonicalJSON(t testing.TB, data []byte) string {
	t.Helper()
	v, err := parsePyJSON(data)
	if err != nil {
		t.Fatalf("parsing %s: %v", data, err)
	}
	return string(v.compact())
}

// sameJSON compares two JSON texts with encoding/json (numbers as text).
func sameJSON(a, b []byte) bool {
	decode := func(data []byte) (any, bool) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil
	}
	va, oka := decode(a)
	vb, okb := decode(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}
