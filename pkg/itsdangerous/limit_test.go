package itsdangerous

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// zerosBomb returns zlib.compress of a JSON array of n zeros ("[0,0,...]"),
// about 2n bytes that compress a thousand-fold.
func zerosBomb(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("0,", 4096))
	_, _ = w.Write([]byte("["))
	for left := n - 1; left > 0; left -= 4096 {
		_, _ = w.Write(chunk[:2*min(left, 4096)])
	}
	_, _ = w.Write([]byte("0]"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

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

// signBody signs a raw body (already base64, "." first when compressed)
// with secret, whatever it holds.
func signBody(secret, body string) string {
	s := NewSigner("token", []byte(secret))
	return body + "." + Base64Encode(s.mac(nil, 0, []byte(body)))
}

func TestUnsignChecksTheSignatureBeforeTheBody(t *testing.T) {
	s := NewSigner("token", []byte("k"))
	bomb := "." + Base64Encode(zerosBomb(t, 1_000_000))
	for name, signed := range map[string]string{
		"bomb, forged signature":          bomb + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"bomb signed with another secret": signBody("other", bomb),
		"body not base64, forged":         ".!!!!.AAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"body not zlib, forged":           ".eJzz.AAAAAAAAAAAAAAAAAAAAAAAAAAA",
	} {
		_, key, err := s.UnsignLimit(signed, 1<<30)
		if !errors.Is(err, ErrInvalidSignature) || errors.Is(err, ErrBadPayload) || key != -1 {
			t.Errorf("%s: UnsignLimit = key %d, %v; want only ErrInvalidSignature", name, key, err)
		}
		if raceEnabled {
			continue
		}
		// No decompression happened: what is allocated is the copy of the
		// body for the HMAC and the error (decompressing would cost MBs).
		if n := bytesAllocated(5, func() { _, _ = s.Unsign(signed) }); n > uint64(len(signed))+4096 {
			t.Errorf("%s: a rejected %d-byte value allocated %d bytes", name, len(signed), n)
		}
	}
}

func TestUnsignLimit(t *testing.T) {
	const limit = 1000
	old, cur := NewSigner("token", []byte("old")), NewSigner("token", []byte("new"), []byte("old"))
	compressible := strings.Repeat("a", limit)
	random := make([]byte, limit+1) // incompressible: stays uncompressed
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(random)
	for _, tt := range []struct {
		name       string
		payload    string
		compressed bool
		tooLarge   bool
	}{
		{"compressed, at the limit", compressible, true, false},
		{"compressed, one byte over", compressible + "a", true, true},
		{"uncompressed, at the limit", string(random[:limit]), false, false},
		{"uncompressed, one byte over", string(random), false, true},
		{"empty", "", false, false},
	} {
		signed := old.Sign([]byte(tt.payload))
		if got := strings.HasPrefix(signed, "."); got != tt.compressed && tt.payload != "" {
			t.Fatalf("%s: compressed = %v, the test wants %v", tt.name, got, tt.compressed)
		}
		payload, key, err := cur.UnsignLimit(signed, limit)
		decoded, derr := DecodeUnverifiedLimit(signed, limit)
		if key != 1 {
			t.Errorf("%s: key %d, want 1 (the previous secret)", tt.name, key)
		}
		if tt.tooLarge {
			for _, e := range []error{err, derr} {
				if !errors.Is(e, ErrBadPayload) || !errors.Is(e, ErrTooLarge) {
					t.Errorf("%s: error %v, want ErrBadPayload and ErrTooLarge", tt.name, e)
				}
			}
			continue
		}
		if err != nil || derr != nil || string(payload) != tt.payload || string(decoded) != tt.payload {
			t.Errorf("%s: UnsignLimit = %d bytes, %v; DecodeUnverifiedLimit = %d bytes, %v", tt.name, len(payload), err, len(decoded), derr)
		}
	}
	// The first matching secret wins, and the current one is 0.
	same := NewSigner("token", []byte("k"), []byte("k"))
	if _, key, err := same.UnsignLimit(same.Sign([]byte("x")), 10); key != 0 || err != nil {
		t.Errorf("two equal secrets: key %d, %v; want 0", key, err)
	}
}

// TestBombsStayBounded signs decompression bombs with the key (the worst
// case: the signature check passes) and checks that Unsign and
// DecodeUnverified refuse them with ErrBadPayload while allocating less than
// 3 MiB per call: the output buffer grows to DefaultMaxPayload (1 MiB) + 1
// by doubling (about 2 MiB in all), plus the zlib reader and the base64 copy. Unbounded, they decompress to 1 MB and
// 16 MB (and cost hundreds of MB or GB once parsed as JSON).
func TestBombsStayBounded(t *testing.T) {
	s := NewSigner("token", []byte("k"))
	for _, n := range []int{530_000, 8_000_000} { // tokens of about 1.4 KB and 21 KB
		raw := zerosBomb(t, n)
		signed := signBody("k", "."+Base64Encode(raw))
		t.Run(fmt.Sprintf("%d zeros in %d bytes", n, len(signed)), func(t *testing.T) {
			for name, call := range map[string]func() error{
				"Unsign":           func() error { _, err := s.Unsign(signed); return err },
				"DecodeUnverified": func() error { _, err := DecodeUnverified(signed); return err },
			} {
				if err := call(); !errors.Is(err, ErrBadPayload) || !errors.Is(err, ErrTooLarge) {
					t.Errorf("%s: %v, want ErrBadPayload and ErrTooLarge", name, err)
				}
				if raceEnabled {
					continue
				}
				const bound = 3 << 20
				if got := bytesAllocated(3, func() { _ = call() }); got > bound {
					t.Errorf("%s allocated %d bytes per call, want at most %d", name, got, bound)
				} else {
					t.Logf("%s: %d bytes allocated per call (bound %d)", name, got, bound)
				}
			}
		})
	}
}

// FuzzUnsignLimit checks that no signed value, however it decompresses,
// yields more than the limit, and that every failure is a documented one.
func FuzzUnsignLimit(f *testing.F) {
	f.Add([]byte("[0,0,0]"), 1000, 10)
	f.Add([]byte{0x78, 0x9c, 0x03, 0x00}, 0, 3)
	f.Add([]byte(strings.Repeat("x", 100)), 100, 99)
	s := NewSigner("token", []byte("k"))
	f.Fuzz(func(t *testing.T, data []byte, reps, limit int) {
		reps, limit = min(max(reps, 0), 4096), min(max(limit, 0), 1<<16)
		var buf bytes.Buffer
		w := zlib.NewWriter(&buf)
		for range reps {
			_, _ = w.Write(data)
		}
		_ = w.Close()
		for _, body := range []string{"." + Base64Encode(buf.Bytes()), "." + base64.StdEncoding.EncodeToString(data), Base64Encode(data)} {
			signed := signBody("k", body)
			payload, key, err := s.UnsignLimit(signed, limit)
			if key != 0 {
				t.Fatalf("key %d for a value signed with secret 0", key)
			}
			if len(payload) > limit {
				t.Fatalf("payload of %d bytes over the limit %d", len(payload), limit)
			}
			if err != nil && !errors.Is(err, ErrBadPayload) {
				t.Fatalf("UnsignLimit: %v", err)
			}
			decoded, derr := DecodeUnverifiedLimit(signed, limit)
			if (err == nil) != (derr == nil) || !bytes.Equal(payload, decoded) {
				t.Fatalf("UnsignLimit = %q, %v but DecodeUnverifiedLimit = %q, %v", payload, err, decoded, derr)
			}
		}
	})
}
