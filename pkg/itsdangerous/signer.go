package itsdangerous

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
)

// Sentinel errors. Errors returned by [Signer.Unsign] wrap one of them; test
// with errors.Is.
var (
	// ErrInvalidSignature reports a value that was not signed with any of the
	// Signer's secrets (itsdangerous' BadSignature): no "." separator, a
	// signature that is not valid base64, or a MAC mismatch.
	ErrInvalidSignature = errors.New("itsdangerous: invalid signature")

	// ErrBadPayload reports a correctly signed value whose body cannot be
	// base64-decoded or zlib-decompressed (itsdangerous' BadPayload).
	ErrBadPayload = errors.New("itsdangerous: bad payload")

	// ErrTooLarge reports a payload over the decoding limit (see
	// [DefaultMaxPayload]). Such errors wrap [ErrBadPayload] too: Python's
	// itsdangerous has no limit, so this is where the two part ways.
	ErrTooLarge = errors.New("too large")
)

// DefaultMaxPayload is the largest payload, in bytes after base64 decoding
// and decompression, that [Signer.Unsign] and [DecodeUnverified] return.
// Decompression stops one byte past the limit, so a small compressed value
// (a "zlib bomb") costs at most about twice the limit in memory and time.
// Use [Signer.UnsignLimit] and [DecodeUnverifiedLimit] for another limit.
const DefaultMaxPayload = 1 << 20

// Signer signs and verifies values for one salt. The first secret signs; every
// secret verifies, so secrets can be rotated. A Signer is safe for concurrent
// use.
type Signer struct {
	macs []*sync.Pool // one pool of keyed HMAC-SHA1 states per secret
}

// NewSigner returns a Signer for salt (Datasette's namespace, "token" for API
// tokens) and secrets. The keys are derived once, here. It panics if no secret
// is given.
func NewSigner(salt string, secrets ...[]byte) *Signer {
	if len(secrets) == 0 {
		panic("itsdangerous: NewSigner needs at least one secret")
	}
	s := &Signer{macs: make([]*sync.Pool, len(secrets))}
	for i, secret := range secrets {
		key := DeriveKey(salt, secret)
		s.macs[i] = &sync.Pool{New: func() any { return hmac.New(sha1.New, key) }}
	}
	return s
}

// DeriveKey returns itsdangerous' "django-concat" key:
// SHA1(salt + "signer" + secret).
func DeriveKey(salt string, secret []byte) []byte {
	h := sha1.New()
	_, _ = io.WriteString(h, salt) // writing to a hash cannot fail
	_, _ = io.WriteString(h, "signer")
	_, _ = h.Write(secret)
	return h.Sum(nil)
}

// mac appends HMAC-SHA1(key i, body) to dst.
func (s *Signer) mac(dst []byte, i int, body []byte) []byte {
	h := s.macs[i].Get().(hash.Hash)
	h.Reset()
	h.Write(body)
	dst = h.Sum(dst)
	s.macs[i].Put(h)
	return dst
}

// signScratch is pooled scratch space for AppendSign.
type signScratch struct {
	zlib []byte
	sum  [sha1.Size]byte
}

var scratchPool = sync.Pool{New: func() any { return new(signScratch) }}

// Sign returns the signed form of payload: body + "." + signature.
//
// The payload is zlib-compressed when the compressed form is at least two
// bytes shorter, as itsdangerous does; the body is then "." + base64 of the
// compressed bytes. The compressor reproduces CPython's zlib.compress byte
// for byte (see [ZlibCompress]), so a signed value is identical to what
// itsdangerous produces with the same secret and salt (payloads over 16000
// bytes excepted: they are compressed by compress/zlib and still verify
// everywhere).
func (s *Signer) Sign(payload []byte) string {
	return string(s.AppendSign(nil, payload))
}

// AppendSign appends the signed form of payload (see [Signer.Sign]) to dst and
// returns the extended buffer. It allocates nothing when dst has room (the
// compressor state and scratch buffers are pooled).
func (s *Signer) AppendSign(dst, payload []byte) []byte {
	scratch := scratchPool.Get().(*signScratch)
	scratch.zlib = zlibCompress(scratch.zlib[:0], payload)
	data := payload
	compressed := len(scratch.zlib) < len(payload)-1
	if compressed {
		data = scratch.zlib
	}
	start := len(dst)
	if compressed {
		dst = append(dst, '.')
	}
	dst = base64.RawURLEncoding.AppendEncode(dst, data)
	mac := s.mac(scratch.sum[:0], 0, dst[start:])
	dst = append(dst, '.')
	dst = base64.RawURLEncoding.AppendEncode(dst, mac)
	scratchPool.Put(scratch)
	return dst
}

// Unsign verifies signed and returns its payload, decompressed when the body
// starts with ".". It is [Signer.UnsignLimit] with [DefaultMaxPayload].
func (s *Signer) Unsign(signed string) ([]byte, error) {
	payload, _, err := s.UnsignLimit(signed, DefaultMaxPayload)
	return payload, err
}

// UnsignLimit verifies signed and returns its payload, decompressed when the
// body starts with ".", and the index of the secret that signed it (0 for the
// first secret given to [NewSigner]; the lowest index when several match).
//
// It splits at the last ".", decodes the signature leniently (see
// [Base64Decode]) and compares it in constant time with the HMAC of the body
// under each secret; only then is the body decoded. Errors wrap
// [ErrInvalidSignature] when no secret signed the value (key is then -1), and
// [ErrBadPayload] when a correctly signed body cannot be decoded or
// decompressed, or its payload is over limit bytes (these also wrap
// [ErrTooLarge]; key is then the signing secret's index).
func (s *Signer) UnsignLimit(signed string, limit int) (payload []byte, key int, err error) {
	body, key, err := s.verify(signed)
	if err != nil {
		return nil, -1, err
	}
	payload, err = loadPayload(body, limit)
	return payload, key, err
}

// verify checks the signature of signed and returns its body and the index
// of the secret that signed it.
func (s *Signer) verify(signed string) (string, int, error) {
	i := strings.LastIndexByte(signed, '.')
	if i < 0 {
		return "", -1, fmt.Errorf("%w: no \".\" found in value", ErrInvalidSignature)
	}
	body, sig := signed[:i], signed[i+1:]
	var sigBuf, macBuf [sha1.Size]byte
	got, err := appendBase64Decode(sigBuf[:0], sig)
	if err != nil {
		return "", -1, fmt.Errorf("%w: signature is not valid base64: %w", ErrInvalidSignature, err)
	}
	bodyBytes := []byte(body)
	key := -1
	for k := range s.macs {
		// Check every secret so that the time taken does not depend on
		// which one matched.
		if hmac.Equal(got, s.mac(macBuf[:0], k, bodyBytes)) && key < 0 {
			key = k
		}
	}
	if key < 0 {
		return "", -1, fmt.Errorf("%w: signature does not match", ErrInvalidSignature)
	}
	return body, key, nil
}

// DecodeUnverified returns the payload of signed WITHOUT checking its
// signature, for inspection only: anyone can forge what it returns. It is
// [DecodeUnverifiedLimit] with [DefaultMaxPayload].
func DecodeUnverified(signed string) ([]byte, error) {
	return DecodeUnverifiedLimit(signed, DefaultMaxPayload)
}

// DecodeUnverifiedLimit returns the payload of signed, of at most limit
// bytes, WITHOUT checking its signature. It requires the "." separator like
// [Signer.Unsign]; decoding errors wrap [ErrBadPayload], and those of a
// payload over limit bytes [ErrTooLarge] too.
func DecodeUnverifiedLimit(signed string, limit int) ([]byte, error) {
	i := strings.LastIndexByte(signed, '.')
	if i < 0 {
		return nil, fmt.Errorf("%w: no \".\" found in value", ErrInvalidSignature)
	}
	return loadPayload(signed[:i], limit)
}

// loadPayload decodes a body as itsdangerous' URLSafeSerializer does,
// refusing a payload over limit bytes.
func loadPayload(body string, limit int) ([]byte, error) {
	compressed := strings.HasPrefix(body, ".")
	if compressed {
		body = body[1:]
	}
	raw, err := Base64Decode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: could not base64-decode the payload: %w", ErrBadPayload, err)
	}
	if !compressed {
		if len(raw) > limit {
			return nil, fmt.Errorf("%w: %w: the payload is %d bytes, over the limit of %d", ErrBadPayload, ErrTooLarge, len(raw), limit)
		}
		return raw, nil
	}
	out, err := zlibDecompress(raw, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: could not zlib-decompress the payload: %w", ErrBadPayload, err)
	}
	return out, nil
}

// zlibReaders pools zlib readers (each holds a 32KB window and tables).
var zlibReaders sync.Pool

// zlibDecompress behaves like Python's zlib.decompress: it needs one complete
// zlib stream (header, deflate data, Adler-32) and ignores bytes after it.
// It stops reading one byte past limit and then fails with [ErrTooLarge].
func zlibDecompress(data []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(data)
	var zr io.ReadCloser
	if r, ok := zlibReaders.Get().(io.ReadCloser); ok {
		if err := r.(zlib.Resetter).Reset(br, nil); err != nil {
			return nil, err
		}
		zr = r
	} else {
		r, err := zlib.NewReader(br)
		if err != nil {
			return nil, err
		}
		zr = r
	}
	defer zlibReaders.Put(zr)
	out, err := readAtMost(zr, limit+1, 4*len(data))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: the decompressed payload is over the limit of %d bytes", ErrTooLarge, limit)
	}
	// Close reports a checksum or format error met at the end of the stream.
	if err := zr.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// readAtMost reads r to its end or to n bytes, whichever comes first, into a
// buffer that starts at about hint bytes and never grows beyond n, so that
// reading costs at most about 2n bytes however long r is.
func readAtMost(r io.Reader, n, hint int) ([]byte, error) {
	buf := make([]byte, 0, min(n, max(hint, 512)))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n, 2*cap(buf))-len(buf))
		}
		m, err := r.Read(buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}
