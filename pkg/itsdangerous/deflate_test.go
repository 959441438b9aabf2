package itsdangerous

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// Expected outputs from CPython 3.11's zlib.compress (zlib 1.2.13).
var zlibTests = []struct{ in, hex string }{
	{"", "789c030000000001"},
	{"a", "789c4b040000620062"},
	{`{"a":"root","t":1700000000}`, "789cab564a54b2522acacf2f51d2512a51b232343780825a00668606e6"},
	{`{"a":"root","t":1700000000,"_r":{"a":["vi","vi","vi","vi","vi","vi","vi","vi","vi","vi","vi","vi"]}}`,
		"789cab564a54b2522acacf2f51d2512a51b232343780021da5f82225ab6a907cb4525926509a2c22b6b6160017721a78"},
	{strings.Repeat("abc", 160), "789c4b4c4a4e1c45c3170100aa94b7c1"},
	// A dynamic-Huffman block.
	{`{"a":"root","t":1700000000,"_r":{"r":{"db":{"table_0":["vt"],"table_1":["vt"],"table_2":["vt"],"table_3":["vt"],"table_4":["vt"],"table_5":["vt"],"table_6":["vt"],"table_7":["vt"],"table_8":["vt"],"table_9":["vt"],"table_10":["vt"],"table_11":["vt"],"table_12":["vt"],"table_13":["vt"],"table_14":["vt"],"table_15":["vt"],"table_16":["vt"],"table_17":["vt"],"table_18":["vt"],"table_19":["vt"]}}}}`,
		"789c65ce3b0a80401443d1bda49ec2f81b9dad8888a29d3020838db8773f88c54b8a14b73a0746046c3126382404faec9bc3b0211c786f9e9e4fe3b42e4386d0614fe8dd1768436e436143694365436d83b7a1b1a1159852c54ac152b4142ec54b0153c414327ff379ef02e19a76a1"},
}

func TestZlibCompressMatchesCPython(t *testing.T) {
	for _, tt := range zlibTests {
		if got := hex.EncodeToString(zlibCompress(nil, []byte(tt.in))); got != tt.hex {
			t.Errorf("zlibCompress(%.40q)\n got %s\nwant %s", tt.in, got, tt.hex)
		}
	}
}

func TestZlibCompressRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 4, 10, 100, 257, 258, 259, 1000, 5000, maxFastDeflate, maxFastDeflate + 1, 70000} {
		for _, alphabet := range []int{1, 2, 4, 26, 256} {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(r.IntN(alphabet))
			}
			c := zlibCompress([]byte("prefix"), src)
			if !bytes.HasPrefix(c, []byte("prefix")) {
				t.Fatal("zlibCompress did not append")
			}
			got, err := zlibDecompress(c[len("prefix"):], DefaultMaxPayload)
			if err != nil || !bytes.Equal(got, src) {
				t.Errorf("round trip of %d bytes over %d symbols: %v", n, alphabet, err)
			}
		}
	}
}
