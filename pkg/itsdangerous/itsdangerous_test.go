package itsdangerous

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Expected values from Python: itsdangerous.encoding.base64_decode(s.encode()).
var base64Tests = []struct {
	in, hex string
	ok      bool
}{
	{"", "", true},
	{"QQ", "41", true},
	{"QUI", "4142", true},
	{"QUJD", "414243", true},
	{"Q", "", false},
	{"QUJDR", "", false},
	{"QQ==", "41", true},
	{"QQ=", "41", true},
	{"QUI=", "4142", true},
	{"Q===", "", false},
	{"QQ=Q", "", false},
	{"QUI=D", "4142", true},
	{"Q!Q", "", false},
	{"Q!!Q", "", false},
	{"QU!I", "", false},
	{"+/8", "fbff", true},
	{"-_8", "fbff", true},
	{"+_-/", "fbffbf", true},
	{"QR", "41", true}, // unused low bits ignored
	{"QUJ", "4142", true},
	{"QUK", "4142", true},
	{"QQ==QUJD", "41", true}, // a pad sequence ends the input
	{"QUJD=QUJD", "414243414243", true},
	{"Q.Q", "", false},
	{"QQ\u00e9", "", false}, // non-ASCII bytes count for the padding
	{"====", "", true},
	{"=QQ", "", false},
	{"QQ==x", "41", true},
	{"Gx9HDvoZQoviXk7Kgm9egGvAec4", "1b1f470efa19428be25e4eca826f5e806bc079ce", true},
	{"Gx9HDvoZQoviXk7Kgm9egGvAec5", "1b1f470efa19428be25e4eca826f5e806bc079ce", true},
	{"Gx9HDvoZQoviXk7Kgm9egGvAec8", "1b1f470efa19428be25e4eca826f5e806bc079cf", true},
	{"Gx9HDvoZQoviXk7Kgm9egGvAec4==", "1b1f470efa19428be25e4eca826f5e806bc079ce", true},
	{"Gx9HD!!voZQoviXk7Kgm9egGvAec4", "1b1f470efa19428be25e4eca826f5e806bc079ce", true},
	{"Gx9HD!voZQoviXk7Kgm9egGvAec4", "", false},
}

func TestBase64Decode(t *testing.T) {
	for _, tt := range base64Tests {
		got, err := Base64Decode(tt.in)
		if (err == nil) != tt.ok || (tt.ok && hex.EncodeToString(got) != tt.hex) {
			t.Errorf("Base64Decode(%q) = %x, %v; want %s, ok=%v", tt.in, got, err, tt.hex, tt.ok)
		}
	}
}

func TestBase64RoundTrip(t *testing.T) {
	for n := range 40 {
		b := bytes.Repeat([]byte{0xfb, 0xff, 0x00, 0x7f}, n)[:n]
		enc := Base64Encode(b)
		if strings.ContainsAny(enc, "=+/") {
			t.Errorf("Base64Encode(%x) = %q, want URL-safe without padding", b, enc)
		}
		got, err := Base64Decode(enc)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("Base64Decode(Base64Encode(%x)) = %x, %v", b, got, err)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	h := sha1.Sum([]byte("tokensignersecret"))
	if got := DeriveKey("token", []byte("secret")); !bytes.Equal(got, h[:]) {
		t.Errorf("DeriveKey = %x, want %x", got, h)
	}
}

func TestSignKnownAnswer(t *testing.T) {
	// From Datasette's test vectors (mint-001).
	s := NewSigner("token", []byte("s"))
	const want = "eyJhIjoicm9vdCIsInQiOjE3MDAwMDAwMDB9.Gx9HDvoZQoviXk7Kgm9egGvAec4"
	if got := s.Sign([]byte(`{"a":"root","t":1700000000}`)); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestSignUnsign(t *testing.T) {
	s := NewSigner("token", []byte("secret"))
	for _, payload := range []string{
		"", "x", `{"a":"root","t":1700000000}`,
		`{"a":"root","t":1700000000,"_r":{"a":["vi","vi","vi","vi","vi","vi","vi","vi","vi","vi","vi","vi"]}}`,
		strings.Repeat("abc", 1000), "\x00\xff binary",
	} {
		signed := s.Sign([]byte(payload))
		compressed := strings.HasPrefix(signed, ".")
		if len(payload) > 200 && !compressed {
			t.Errorf("Sign(%d repetitive bytes) was not compressed", len(payload))
		}
		got, err := s.Unsign(signed)
		if err != nil || string(got) != payload {
			t.Errorf("Unsign(Sign(%q)) = %q, %v", payload, got, err)
		}
	}
}

func TestSecretRotation(t *testing.T) {
	old, cur := []byte("old"), []byte("new")
	signer := NewSigner("token", cur, old)
	oldOnly := NewSigner("token", old)
	curOnly := NewSigner("token", cur)
	payload := []byte("hello")
	if _, err := curOnly.Unsign(signer.Sign(payload)); err != nil {
		t.Errorf("the first secret must sign: %v", err)
	}
	if _, err := signer.Unsign(oldOnly.Sign(payload)); err != nil {
		t.Errorf("every secret must verify: %v", err)
	}
	if _, err := curOnly.Unsign(oldOnly.Sign(payload)); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("wrong secret: got %v, want ErrInvalidSignature", err)
	}
	if _, err := NewSigner("other", cur).Unsign(signer.Sign(payload)); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("wrong salt: got %v, want ErrInvalidSignature", err)
	}
}

// signRaw signs an arbitrary body with salt "token" and secret "k", to test
// bodies that Sign never makes.
func signRaw(body string) string {
	m := hmac.New(sha1.New, DeriveKey("token", []byte("k")))
	_, _ = m.Write([]byte(body)) // writing to a hash cannot fail
	return body + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestUnsignErrors(t *testing.T) {
	s := NewSigner("token", []byte("k"))
	valid := s.Sign([]byte(`{"a":1}`))
	tests := []struct {
		name, in string
		want     error
	}{
		{"no separator", "abc", ErrInvalidSignature},
		{"empty", "", ErrInvalidSignature},
		{"bad signature base64", valid[:len(valid)-1] + "!", ErrInvalidSignature},
		{"tampered", "x" + valid, ErrInvalidSignature},
		{"extra segment", valid + ".abc", ErrInvalidSignature},
		{"bad body base64", signRaw("eyJhI"), ErrBadPayload},
		{"not zlib", signRaw(".eyJhIjoxfQ"), ErrBadPayload},
		{"empty compressed", signRaw("."), ErrBadPayload},
	}
	for _, tt := range tests {
		if _, err := s.Unsign(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("%s: Unsign(%q) error = %v, want %v", tt.name, tt.in, err, tt.want)
		}
	}
	// Leniency: junk and padding inside a signed body are ignored (when the
	// raw length still pads to whole quanta, as in Python).
	for _, body := range []string{"eyJh!!!!IjoxfQ", "eyJhIjoxfQ=", "eyJh..IjoxfQ=="} {
		got, err := s.Unsign(signRaw(body))
		if err != nil || string(got) != `{"a":1}` {
			t.Errorf("Unsign(signed %q) = %q, %v", body, got, err)
		}
	}
}

func TestDecodeUnverified(t *testing.T) {
	signed := NewSigner("token", []byte("k")).Sign([]byte(strings.Repeat("z", 100)))
	got, err := DecodeUnverified(signed)
	if err != nil || string(got) != strings.Repeat("z", 100) {
		t.Errorf("DecodeUnverified = %q, %v", got, err)
	}
	if _, err := DecodeUnverified("nodot"); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("DecodeUnverified(no dot) = %v", err)
	}
}

func TestNewSignerPanicsWithoutSecret(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewSigner() did not panic")
		}
	}()
	NewSigner("token")
}

func TestAppendSignAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	s := NewSigner("token", []byte("secret"))
	payload := []byte(`{"a":"root","t":1700000000,"_r":{"r":{"db":{"t1":["vt"],"t2":["vt"],"t3":["vt"]}}}}`)
	dst := make([]byte, 0, 512)
	s.AppendSign(dst, payload) // warm the pools
	allocs := testing.AllocsPerRun(100, func() { dst = s.AppendSign(dst[:0], payload) })
	if allocs != 0 {
		t.Errorf("AppendSign allocates %v times per call, want 0 (pooled zlib writer and buffers)", allocs)
	}
}

func FuzzBase64Decode(f *testing.F) {
	for _, tt := range base64Tests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Base64Decode(s)
		// "+/" and "-_" are interchangeable.
		swapped := strings.NewReplacer("-", "+", "_", "/", "+", "-", "/", "_").Replace(s)
		got2, err2 := Base64Decode(swapped)
		if (err == nil) != (err2 == nil) || !bytes.Equal(got, got2) {
			t.Fatalf("Base64Decode(%q) = %x, %v but Base64Decode(%q) = %x, %v", s, got, err, swapped, got2, err2)
		}
		// On strictly URL-safe input it agrees with encoding/base64 (which
		// also ignores unused low bits when not Strict).
		clean := true
		for i := 0; i < len(s); i++ {
			if b64Values[s[i]] == 0xff || s[i] == '+' || s[i] == '/' {
				clean = false
				break
			}
		}
		if clean && len(s)%4 != 1 {
			want, werr := base64.RawURLEncoding.DecodeString(s)
			if werr != nil || err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Base64Decode(%q) = %x, %v; encoding/base64: %x, %v", s, got, err, want, werr)
			}
		}
		if clean && len(s)%4 == 1 && err == nil {
			t.Fatalf("Base64Decode(%q) accepted a length of 4n+1", s)
		}
	})
}

func FuzzUnsign(f *testing.F) {
	f.Add([]byte(`{"a":"root","t":1700000000}`), "", 5, byte('x'))
	f.Add([]byte(strings.Repeat(`"vi",`, 30)), "", 0, byte('.'))
	f.Add([]byte{}, "abc.def", 40, byte('='))
	f.Add([]byte("x"), ".eJwDAAAAAAE.abc", 3, byte(0xff))
	signer := NewSigner("token", []byte("fuzz secret"), []byte("old secret"))
	other := NewSigner("token", []byte("another secret"))
	f.Fuzz(func(t *testing.T, payload []byte, raw string, pos int, b byte) {
		// Arbitrary input never panics and is never accepted by the wrong key.
		if got, err := signer.Unsign(raw); err == nil {
			if _, err := other.Unsign(raw); err == nil {
				t.Fatalf("%q verifies under two unrelated secrets (%q)", raw, got)
			}
		}
		_, _ = DecodeUnverified(raw) // must not panic; any result is fine

		// The compressor round-trips everything.
		if got, err := zlibDecompress(zlibCompress(nil, payload), DefaultMaxPayload); err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("zlib round trip of %q: %q, %v", payload, got, err)
		}

		// A mutated signed value either is rejected or yields exactly the
		// signed payload (only lenient-decoding no-ops may survive).
		signed := []byte(signer.Sign(payload))
		if got, err := signer.Unsign(string(signed)); err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("Unsign(Sign(%q)) = %q, %v", payload, got, err)
		}
		if _, err := other.Unsign(string(signed)); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("a value signed with another secret was not rejected: %v", err)
		}
		if pos < 0 {
			pos = -pos
		}
		mutated := bytes.Clone(signed)
		if i := pos % (len(signed) + 1); i < len(signed) {
			mutated[i] = b
		} else {
			mutated = append(mutated, b)
		}
		got, err := signer.Unsign(string(mutated))
		if err == nil && !bytes.Equal(got, payload) {
			t.Fatalf("mutated %q verified with payload %q, signed %q", mutated, got, payload)
		}
		if err != nil && !errors.Is(err, ErrInvalidSignature) && !errors.Is(err, ErrBadPayload) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
