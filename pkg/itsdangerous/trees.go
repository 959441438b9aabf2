package itsdangerous

// Huffman coding of one deflate block exactly as zlib's trees.c does it.

const (
	lCodes      = 286 // literal/length codes
	dCodes      = 30  // distance codes
	blCodes     = 19  // code-length codes
	literals    = 256
	endBlock    = 256
	maxBits     = 15
	maxBLBits   = 7
	heapSize    = 2*lCodes + 1
	rep3to6     = 16
	repz3to10   = 17
	repz11to138 = 18
)

// node is a Huffman tree node (zlib's ct_data, without its unions).
type node struct{ freq, code, dad, len int32 }

// treeDesc describes one tree being built (zlib's tree_desc).
type treeDesc struct {
	tree      []node
	stree     []node // the fixed code, to compute its cost; nil for none
	extra     []uint
	base      int
	elems     int
	maxLength int
	maxCode   int // largest code with a non-zero frequency
}

var (
	extraBLBits = [blCodes]uint{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7}
	blOrder     = [blCodes]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

	staticLTree [lCodes + 2]node
	staticDTree [dCodes]node
	lengthCode  [maxMatch + 1]uint8 // match length -> length code 0-28
	distCode    [maxFastDeflate + 1]uint8
)

func init() {
	var count [maxBits + 1]int
	for n := range staticLTree {
		l := 8
		switch {
		case n >= 144 && n < 256:
			l = 9
		case n >= 256 && n < 280:
			l = 7
		}
		staticLTree[n].len = int32(l)
		count[l]++
	}
	genCodes(staticLTree[:], lCodes+1, &count)
	for n := range staticDTree {
		staticDTree[n] = node{len: 5, code: int32(reverseBits(uint32(n), 5))}
	}
	for l := minMatch; l <= maxMatch; l++ {
		c := len(lengthBase) - 1
		for lengthBase[c] > l {
			c--
		}
		lengthCode[l] = uint8(c)
	}
	for dist := 1; dist < len(distCode); dist++ {
		c := len(distBase) - 1
		for distBase[c] > dist {
			c--
		}
		distCode[dist] = uint8(c)
	}
}

// flushBlock writes d.syms as the final block, fixed or dynamic, whichever
// zlib's _tr_flush_block would choose.
func (d *deflater) flushBlock() {
	// Only the leaves' frequencies need resetting (zlib's init_block);
	// internal nodes are written as they are made.
	for i := range lCodes {
		d.ltree[i].freq = 0
	}
	for i := range dCodes {
		d.dtree[i].freq = 0
	}
	for i := range blCodes {
		d.bltree[i].freq = 0
	}
	d.ltree[endBlock].freq = 1
	d.optLen, d.staticLen = 0, 0
	for _, s := range d.syms {
		if s&matchFlag == 0 {
			d.ltree[s].freq++
			continue
		}
		d.ltree[literals+1+int(lengthCode[s>>16&0x7fff])].freq++
		d.dtree[distCode[s&0xffff]].freq++
	}

	l := treeDesc{tree: d.ltree[:], stree: staticLTree[:], extra: lengthExtra[:], base: literals + 1, elems: lCodes, maxLength: maxBits}
	dist := treeDesc{tree: d.dtree[:], stree: staticDTree[:], extra: distExtra[:], elems: dCodes, maxLength: maxBits}
	d.buildTree(&l)
	d.buildTree(&dist)
	var bl treeDesc
	maxBLIndex := d.buildBLTree(&l, &dist, &bl)

	optLenb := (d.optLen + 3 + 7) >> 3
	staticLenb := (d.staticLen + 3 + 7) >> 3
	if staticLenb <= optLenb {
		d.writeBits(1<<1|1, 3) // fixed codes, last block
		d.compressBlock(staticLTree[:], staticDTree[:])
		return
	}
	d.dynamicCodes(&l, &dist, &bl)
	d.writeBits(2<<1|1, 3) // dynamic codes, last block
	d.sendAllTrees(l.maxCode+1, dist.maxCode+1, maxBLIndex+1)
	d.compressBlock(d.ltree[:], d.dtree[:])
}

// smaller is zlib's tie-breaking order: by frequency, then by depth.
func (d *deflater) smaller(tree []node, n, m int) bool {
	return tree[n].freq < tree[m].freq || tree[n].freq == tree[m].freq && d.depth[n] <= d.depth[m]
}

// pqdownheap restores the heap property from position k down.
func (d *deflater) pqdownheap(tree []node, k int) {
	v := d.heap[k]
	for j := k << 1; j <= d.heapLen; j <<= 1 {
		if j < d.heapLen && d.smaller(tree, d.heap[j+1], d.heap[j]) {
			j++
		}
		if d.smaller(tree, v, d.heap[j]) {
			break
		}
		d.heap[k] = d.heap[j]
		k = j
	}
	d.heap[k] = v
}

// buildTree is zlib's build_tree: it builds the Huffman tree of desc,
// limits code lengths, assigns codes and adds the block costs.
func (d *deflater) buildTree(desc *treeDesc) {
	tree := desc.tree
	maxCode := -1
	d.heapLen, d.heapMax = 0, heapSize
	for n := 0; n < desc.elems; n++ {
		if tree[n].freq != 0 {
			d.heapLen++
			d.heap[d.heapLen] = n
			maxCode = n
			d.depth[n] = 0
		} else {
			tree[n].len = 0
		}
	}
	// Deflate needs at least two codes of non-zero frequency.
	for d.heapLen < 2 {
		n := 0
		if maxCode < 2 {
			maxCode++
			n = maxCode
		}
		d.heapLen++
		d.heap[d.heapLen] = n
		tree[n].freq = 1
		d.depth[n] = 0
		d.optLen--
		if desc.stree != nil {
			d.staticLen -= int(desc.stree[n].len)
		}
	}
	desc.maxCode = maxCode
	for n := d.heapLen / 2; n >= 1; n-- {
		d.pqdownheap(tree, n)
	}
	next := desc.elems
	for {
		n := d.heap[1]
		d.heap[1] = d.heap[d.heapLen]
		d.heapLen--
		d.pqdownheap(tree, 1)
		m := d.heap[1]
		d.heapMax--
		d.heap[d.heapMax] = n
		d.heapMax--
		d.heap[d.heapMax] = m
		tree[next].freq = tree[n].freq + tree[m].freq
		d.depth[next] = max(d.depth[n], d.depth[m]) + 1
		tree[n].dad, tree[m].dad = int32(next), int32(next)
		d.heap[1] = next
		next++
		d.pqdownheap(tree, 1)
		if d.heapLen < 2 {
			break
		}
	}
	d.heapMax--
	d.heap[d.heapMax] = d.heap[1]
	d.genBitlen(desc)
	// zlib calls gen_codes here; the codes do not change the block's cost,
	// so they are made only for a dynamic block (see dynamicCodes).
}

// dynamicCodes assigns the codes of the three dynamic trees.
func (d *deflater) dynamicCodes(l, dist *treeDesc, bl *treeDesc) {
	for _, desc := range [...]*treeDesc{l, dist, bl} {
		var count [maxBits + 1]int
		for n := 0; n <= desc.maxCode; n++ {
			count[desc.tree[n].len]++
		}
		count[0] = 0
		genCodes(desc.tree, desc.maxCode, &count)
	}
}

// genBitlen is zlib's gen_bitlen: code lengths from the tree, limited to
// desc.maxLength, and the block cost with these and with the fixed codes.
func (d *deflater) genBitlen(desc *treeDesc) {
	tree, maxCode, maxLength := desc.tree, desc.maxCode, desc.maxLength
	for i := range d.blCount {
		d.blCount[i] = 0
	}
	tree[d.heap[d.heapMax]].len = 0 // the root
	overflow := 0
	for h := d.heapMax + 1; h < heapSize; h++ {
		n := d.heap[h]
		bits := int(tree[tree[n].dad].len) + 1
		if bits > maxLength {
			bits = maxLength
			overflow++
		}
		tree[n].len = int32(bits)
		if n > maxCode {
			continue // not a leaf
		}
		d.blCount[bits]++
		xbits := 0
		if n >= desc.base {
			xbits = int(desc.extra[n-desc.base])
		}
		f := int(tree[n].freq)
		d.optLen += f * (bits + xbits)
		if desc.stree != nil {
			d.staticLen += f * (int(desc.stree[n].len) + xbits)
		}
	}
	if overflow == 0 {
		return
	}
	for overflow > 0 {
		bits := maxLength - 1
		for d.blCount[bits] == 0 {
			bits--
		}
		d.blCount[bits]--
		d.blCount[bits+1] += 2
		d.blCount[maxLength]--
		overflow -= 2
	}
	h := heapSize
	for bits := maxLength; bits != 0; bits-- {
		for n := d.blCount[bits]; n != 0; {
			h--
			m := d.heap[h]
			if m > maxCode {
				continue
			}
			if int(tree[m].len) != bits {
				d.optLen += (bits - int(tree[m].len)) * int(tree[m].freq)
				tree[m].len = int32(bits)
			}
			n--
		}
	}
}

// genCodes is zlib's gen_codes: canonical codes from the lengths, stored
// bit-reversed for LSB-first output.
func genCodes(tree []node, maxCode int, blCount *[maxBits + 1]int) {
	var next [maxBits + 1]int
	code := 0
	for bits := 1; bits <= maxBits; bits++ {
		code = (code + blCount[bits-1]) << 1
		next[bits] = code
	}
	for n := 0; n <= maxCode; n++ {
		l := tree[n].len
		if l == 0 {
			continue
		}
		tree[n].code = int32(reverseBits(uint32(next[l]), uint(l)))
		next[l]++
	}
}

// runLimits returns zlib's run-length limits after a length of curlen
// followed by nextlen.
func runLimits(curlen, nextlen int32) (maxCount, minCount int) {
	switch {
	case nextlen == 0:
		return 138, 3
	case curlen == nextlen:
		return 6, 3
	default:
		return 7, 4
	}
}

// scanTree is zlib's scan_tree: it counts the code-length codes needed to
// send tree.
func (d *deflater) scanTree(tree []node, maxCode int) {
	prevlen, nextlen, count := int32(-1), tree[0].len, 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	tree[maxCode+1].len = 0xffff // guard
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = tree[n+1].len
		count++
		if count < maxCount && curlen == nextlen {
			continue
		}
		switch {
		case count < minCount:
			d.bltree[curlen].freq += int32(count)
		case curlen != 0:
			if curlen != prevlen {
				d.bltree[curlen].freq++
			}
			d.bltree[rep3to6].freq++
		case count <= 10:
			d.bltree[repz3to10].freq++
		default:
			d.bltree[repz11to138].freq++
		}
		count, prevlen = 0, curlen
		maxCount, minCount = runLimits(curlen, nextlen)
	}
}

// sendTree is zlib's send_tree: it writes tree's code lengths.
func (d *deflater) sendTree(tree []node, maxCode int) {
	prevlen, nextlen, count := int32(-1), tree[0].len, 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = tree[n+1].len
		count++
		if count < maxCount && curlen == nextlen {
			continue
		}
		switch {
		case count < minCount:
			for ; count != 0; count-- {
				d.sendCode(curlen, d.bltree[:])
			}
		case curlen != 0:
			if curlen != prevlen {
				d.sendCode(curlen, d.bltree[:])
				count--
			}
			d.sendCode(rep3to6, d.bltree[:])
			d.writeBits(uint64(count-3), 2)
		case count <= 10:
			d.sendCode(repz3to10, d.bltree[:])
			d.writeBits(uint64(count-3), 3)
		default:
			d.sendCode(repz11to138, d.bltree[:])
			d.writeBits(uint64(count-11), 7)
		}
		count, prevlen = 0, curlen
		maxCount, minCount = runLimits(curlen, nextlen)
	}
}

// buildBLTree is zlib's build_bl_tree; it returns the index in blOrder of
// the last code-length code to send.
func (d *deflater) buildBLTree(l, dist, bl *treeDesc) int {
	d.scanTree(d.ltree[:], l.maxCode)
	d.scanTree(d.dtree[:], dist.maxCode)
	*bl = treeDesc{tree: d.bltree[:], extra: extraBLBits[:], elems: blCodes, maxLength: maxBLBits}
	d.buildTree(bl)
	maxBLIndex := blCodes - 1
	for ; maxBLIndex >= 3; maxBLIndex-- {
		if d.bltree[blOrder[maxBLIndex]].len != 0 {
			break
		}
	}
	d.optLen += 3*(maxBLIndex+1) + 5 + 5 + 4
	return maxBLIndex
}

// sendAllTrees writes a dynamic block's header.
func (d *deflater) sendAllTrees(lcodes, dcodes, blcodes int) {
	d.writeBits(uint64(lcodes-257), 5)
	d.writeBits(uint64(dcodes-1), 5)
	d.writeBits(uint64(blcodes-4), 4)
	for rank := 0; rank < blcodes; rank++ {
		d.writeBits(uint64(d.bltree[blOrder[rank]].len), 3)
	}
	d.sendTree(d.ltree[:], lcodes-1)
	d.sendTree(d.dtree[:], dcodes-1)
}

func (d *deflater) sendCode(c int32, tree []node) {
	d.writeBits(uint64(tree[c].code), uint(tree[c].len))
}

// compressBlock writes the block's symbols and the end-of-block code.
func (d *deflater) compressBlock(ltree, dtree []node) {
	for _, s := range d.syms {
		if s&matchFlag == 0 {
			d.sendCode(int32(s), ltree)
			continue
		}
		length, dist := int(s>>16&0x7fff), int(s&0xffff)
		lc := int(lengthCode[length])
		d.sendCode(int32(literals+1+lc), ltree)
		d.writeBits(uint64(length-lengthBase[lc]), lengthExtra[lc])
		dc := int(distCode[dist])
		d.sendCode(int32(dc), dtree)
		d.writeBits(uint64(dist-distBase[dc]), distExtra[dc])
	}
	d.sendCode(endBlock, ltree)
}
