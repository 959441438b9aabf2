package itsdangerous

import (
	"encoding/base64"
	"errors"
)

// errIncorrectPadding and errOneMore mirror the two errors CPython's
// binascii.a2b_base64 raises in its default (non-strict) mode.
var (
	errIncorrectPadding = errors.New("incorrect padding")
	errOneMore          = errors.New("number of data characters cannot be 1 more than a multiple of 4")
)

// b64Values maps a byte to its 6-bit value, or 0xff for bytes that are not in
// the base64 alphabet. Both the standard ("+/") and the URL-safe ("-_")
// characters are accepted, because Python's urlsafe_b64decode translates
// "-_" to "+/" before decoding and leaves "+/" as they are.
var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = byte(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

// Base64Encode returns the unpadded URL-safe base64 encoding of b, as
// itsdangerous.encoding.base64_encode does.
func Base64Encode(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

// Base64Decode decodes s exactly as itsdangerous.encoding.base64_decode does
// (which calls Python's base64.urlsafe_b64decode):
//
//   - "=" padding is appended until len(s) is a multiple of 4; the length
//     counts every byte of s, including ignored ones;
//   - bytes outside the alphabet (including non-ASCII bytes) are skipped;
//   - "+" and "/" decode like "-" and "_";
//   - a pad sequence ("==" after two data characters of a quantum, "=" after
//     three) ends the input; "=" anywhere else is skipped;
//   - unused low bits of the last data character are ignored;
//   - it fails only when the data characters, up to the end or to the pad
//     sequence, do not form whole quanta.
func Base64Decode(s string) ([]byte, error) {
	return appendBase64Decode(make([]byte, 0, len(s)*3/4+3), s)
}

// appendBase64Decode appends the decoding of s (see Base64Decode) to dst.
func appendBase64Decode(dst []byte, s string) ([]byte, error) {
	pad := (4 - len(s)%4) % 4
	quad, pads := 0, 0
	var left byte
	for i, n := 0, len(s)+pad; i < n; i++ {
		c := byte('=')
		if i < len(s) {
			c = s[i]
		}
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					return dst, nil
				}
			}
			continue
		}
		v := b64Values[c]
		if v == 0xff {
			continue
		}
		pads = 0
		switch quad {
		case 0:
			left = v
			quad = 1
		case 1:
			dst = append(dst, left<<2|v>>4)
			left = v & 0x0f
			quad = 2
		case 2:
			dst = append(dst, left<<4|v>>2)
			left = v & 0x03
			quad = 3
		case 3:
			dst = append(dst, left<<6|v)
			quad = 0
		}
	}
	switch quad {
	case 0:
		return dst, nil
	case 1:
		return dst, errOneMore
	default:
		return dst, errIncorrectPadding
	}
}
