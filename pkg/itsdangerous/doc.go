// Package itsdangerous implements the signed-value format of the Python
// itsdangerous 2.x URLSafeSerializer, as Datasette uses it for its API
// tokens.
//
// A signed value is
//
//	body + "." + base64url(HMAC-SHA1(key, body))
//
// where body is the unpadded URL-safe base64 encoding of the payload, or "."
// followed by the base64 of zlib.compress(payload) when that is at least two
// bytes shorter. The HMAC key is derived once per [Signer] with itsdangerous'
// default "django-concat" scheme:
//
//	key = SHA1(salt + "signer" + secret)
//
// Like the crypto/hmac package, this package only authenticates: the payload
// is readable by anyone who holds a signed value. Receivers should use
// [Signer.Unsign], which compares MACs in constant time with [hmac.Equal], to
// avoid timing side-channels:
//
//	s := itsdangerous.NewSigner("token", []byte(secret))
//	signed := s.Sign([]byte(`{"a":"root","t":1700000000}`))
//	payload, err := s.Unsign(signed)
//	if errors.Is(err, itsdangerous.ErrInvalidSignature) {
//		// not signed with this secret
//	}
//
// Decoding follows itsdangerous and CPython's base64 module exactly, including
// their leniency (see [Base64Decode]): "=" padding is added according to the
// raw length, characters outside the alphabet are ignored, "+/" are accepted
// as well as "-_", and unused low bits of the last character are ignored.
// A value that Python accepts is accepted here, and one it rejects is rejected,
// with one exception: a payload is decoded up to a size limit
// ([DefaultMaxPayload], or the limit given to [Signer.UnsignLimit] and
// [DecodeUnverifiedLimit]), so that a small compressed value cannot inflate
// into gigabytes; beyond it the error wraps [ErrBadPayload] and
// [ErrTooLarge]. [Signer.Unsign] checks the signature before decoding
// anything.
//
// The package knows nothing about Datasette; see package dstoken for the
// token semantics.
package itsdangerous
