package dstoken

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"strings"
	"testing"
)

// This file uses only Decode and Prefix, so that it also runs against older
// versions of the package: copy it there to measure the same bombs before
// and after.

// benchZerosBomb returns a token whose payload is "[0,0,...]" with n zeros,
// zlib-compressed when compressed. The signature is made up: Decode does not
// check it.
func benchZerosBomb(b *testing.B, n int, compressed bool) string {
	b.Helper()
	var text bytes.Buffer
	w := &text
	var zw *zlib.Writer
	var out bytes.Buffer
	if compressed {
		zw, _ = zlib.NewWriterLevel(&out, zlib.BestCompression)
	}
	write := func(s []byte) {
		if zw != nil {
			_, _ = zw.Write(s)
		} else {
			w.Write(s)
		}
	}
	chunk := []byte(strings.Repeat("0,", 4096))
	write([]byte("["))
	for left := n - 1; left > 0; left -= 4096 {
		write(chunk[:2*min(left, 4096)])
	}
	write([]byte("0]"))
	body := base64.RawURLEncoding.EncodeToString(text.Bytes())
	if zw != nil {
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		body = "." + base64.RawURLEncoding.EncodeToString(out.Bytes())
	}
	return Prefix + body + ".Gx9HDvoZQoviXk7Kgm9egGvAec4"
}

// BenchmarkDecodeBomb decodes hostile tokens: run it with -benchmem and
// compare B/op with the same file run against an older checkout.
func BenchmarkDecodeBomb(b *testing.B) {
	for _, bomb := range []struct {
		name       string
		zeros      int
		compressed bool
	}{
		{"1.4KB", 530_000, true},  // 1 MB of JSON
		{"21KB", 8_000_000, true}, // 16 MB of JSON
		{"1MiB", 393_000, false},  // a 1 MiB token: 786 KB of JSON, uncompressed
	} {
		token := benchZerosBomb(b, bomb.zeros, bomb.compressed)
		b.Run(bomb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ReportMetric(float64(len(token)), "token-bytes")
			for b.Loop() {
				_, _ = Decode(token)
			}
		})
	}
}
