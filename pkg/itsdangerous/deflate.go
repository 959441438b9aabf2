package itsdangerous

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/adler32"
	"math/bits"
	"sync"
)

// This file reproduces CPython's zlib.compress(data) (classic zlib
// 1.2.x/1.3.x at level 6, not zlib-ng) byte for byte: the same hash function, hash chains and lazy match
// evaluation (zlib's deflate_slow with good=8, lazy=16, nice=128, chain=128),
// the same Huffman tree construction (trees.c: heap order, depth
// tie-breaking, length limiting, code-length run encoding) and the same
// choice between a fixed and a dynamic block. It allocates nothing, where
// compress/zlib spends about 25µs per call resetting a level-6 compressor and
// writes different (often longer) output.
//
// Payloads too large for one zlib block (more than maxFastDeflate bytes) use
// compress/zlib instead. (zlib would choose a stored block for incompressible
// input; such output is never shorter than the input, so itsdangerous never
// uses it, and this encoder writes a fixed block instead.)

const (
	maxFastDeflate = 16000 // < zlib's 16383-symbol block buffer and 32K window

	minMatch  = 3
	maxMatch  = 258
	hashBits  = 15 // zlib memLevel 8
	hashMask  = 1<<hashBits - 1
	hashShift = (hashBits + minMatch - 1) / minMatch
	goodMatch = 8
	maxLazy   = 16
	niceMatch = 128
	maxChain  = 128
	tooFar    = 4096
)

type deflater struct {
	head    [1 << hashBits]uint16 // last position per hash; 0 is zlib's NIL
	prev    [1 << 15]uint16       // previous position with the same hash
	touched []uint16              // head entries to clear after use
	win     []byte                // input followed by maxMatch+8 zero bytes
	bits    uint64                // pending output bits, LSB first
	nbits   uint
	out     []byte
	syms    []uint32 // parsed symbols: a literal byte, or matchFlag|length<<16|distance

	ltree             [2*lCodes + 1]node
	dtree             [2*dCodes + 1]node
	bltree            [2*blCodes + 1]node
	heap              [2*lCodes + 1]int
	depth             [2*lCodes + 1]uint8
	heapLen, heapMax  int
	blCount           [maxBits + 1]int
	optLen, staticLen int // block cost in bits with dynamic / fixed codes
}

const matchFlag = 1 << 31

var deflaters = sync.Pool{New: func() any { return new(deflater) }}

var zeroPad [maxMatch + 8]byte

// ZlibCompress returns what CPython's zlib.compress(data) returns with classic
// zlib (checked against zlib 1.2.13), as used by [Signer.Sign]. The only
// differences: input zlib would store uncompressed gets a (longer than the
// input) Huffman block, and input over 16000 bytes is compressed by
// compress/zlib.
func ZlibCompress(data []byte) []byte {
	return zlibCompress(nil, data)
}

// zlibCompress appends zlib.compress(src) (see above) to dst.
func zlibCompress(dst, src []byte) []byte {
	if len(src) > maxFastDeflate {
		var buf bytes.Buffer
		w, _ := zlib.NewWriterLevel(&buf, zlib.DefaultCompression)
		_, _ = w.Write(src) // writing to a bytes.Buffer cannot fail
		_ = w.Close()
		return append(dst, buf.Bytes()...)
	}
	d := deflaters.Get().(*deflater)
	dst = d.compress(dst, src)
	deflaters.Put(d)
	return dst
}

func (d *deflater) compress(dst, src []byte) []byte {
	d.out = append(dst, 0x78, 0x9c) // deflate, 32K window, default level
	d.bits, d.nbits = 0, 0
	d.syms = d.syms[:0]
	d.win = append(append(d.win[:0], src...), zeroPad[:]...)

	win := d.win
	n := len(src)
	var insH int
	if n >= minMatch {
		insH = (int(win[0])<<hashShift ^ int(win[1])) & hashMask
	}

	strstart, lookahead := 0, n
	matchLen, matchStart := minMatch-1, 0
	matchAvailable := false
	for lookahead > 0 {
		hashHead := 0
		if lookahead >= minMatch {
			insH, hashHead = d.insert(insH, strstart)
		}
		prevLen, prevMatch := matchLen, matchStart
		matchLen = minMatch - 1
		if hashHead != 0 && prevLen < maxLazy {
			matchLen, matchStart = d.longestMatch(strstart, hashHead, prevLen, lookahead, matchStart)
			if matchLen == minMatch && strstart-matchStart > tooFar {
				matchLen = minMatch - 1
			}
		}
		switch {
		case prevLen >= minMatch && matchLen <= prevLen:
			maxInsert := strstart + lookahead - minMatch
			d.syms = append(d.syms, matchFlag|uint32(prevLen)<<16|uint32(strstart-1-prevMatch))
			lookahead -= prevLen - 1
			for k := prevLen - 2; k > 0; k-- {
				strstart++
				if strstart <= maxInsert {
					insH, _ = d.insert(insH, strstart)
				}
			}
			matchAvailable = false
			matchLen = minMatch - 1
			strstart++
		case matchAvailable:
			d.syms = append(d.syms, uint32(win[strstart-1]))
			strstart++
			lookahead--
		default:
			matchAvailable = true
			strstart++
			lookahead--
		}
	}
	if matchAvailable {
		d.syms = append(d.syms, uint32(win[strstart-1]))
	}
	d.flushBlock()
	if d.nbits > 0 { // pad the last byte with zero bits
		d.writeBits(0, 8-d.nbits)
	}
	out := binary.BigEndian.AppendUint32(d.out, adler32.Checksum(src))

	for _, h := range d.touched {
		d.head[h] = 0
	}
	d.touched = d.touched[:0]
	d.out = nil
	return out
}

// insert is zlib's INSERT_STRING: it adds the string at pos to its hash
// chain and returns the updated rolling hash and the previous chain head.
func (d *deflater) insert(insH, pos int) (int, int) {
	insH = (insH<<hashShift ^ int(d.win[pos+minMatch-1])) & hashMask
	h := d.head[insH]
	if h == 0 {
		d.touched = append(d.touched, uint16(insH))
	}
	d.prev[pos] = h
	d.head[insH] = uint16(pos)
	return insH, int(h)
}

// longestMatch is zlib's longest_match: it walks the hash chain from
// cur and returns the best match length (at least prevLen) and its start.
func (d *deflater) longestMatch(scan, cur, prevLen, lookahead, matchStart int) (int, int) {
	win := d.win
	chain := maxChain
	best := prevLen
	nice := niceMatch
	if prevLen >= goodMatch {
		chain >>= 2
	}
	if nice > lookahead {
		nice = lookahead
	}
	for {
		m := cur
		if win[m+best] == win[scan+best] && win[m+best-1] == win[scan+best-1] &&
			win[m] == win[scan] && win[m+1] == win[scan+1] {
			l := 2
			for l < maxMatch && win[scan+l] == win[m+l] {
				l++
			}
			if l > best {
				matchStart, best = m, l
				if l >= nice {
					break
				}
			}
		}
		cur = int(d.prev[cur])
		chain--
		if cur == 0 || chain == 0 {
			break
		}
	}
	return min(best, lookahead), matchStart
}

// writeBits appends the low n bits of v, least significant first.
func (d *deflater) writeBits(v uint64, n uint) {
	d.bits |= v << d.nbits
	d.nbits += n
	for d.nbits >= 8 {
		d.out = append(d.out, byte(d.bits))
		d.bits >>= 8
		d.nbits -= 8
	}
}

// reverseBits returns the n low bits of v in reverse order.
func reverseBits(v uint32, n uint) uint32 {
	return uint32(bits.Reverse16(uint16(v)) >> (16 - n))
}

// Base values of the length codes 257-285 and distance codes 0-29.
var (
	lengthBase = [...]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
		35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [...]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
		3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase = [...]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
		257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [...]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
		7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)
