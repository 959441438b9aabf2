package dstoken

import (
	"crypto/subtle"
	"fmt"
	"sync"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// Prefix starts every Datasette signed API token.
const Prefix = "dstok_"

// Salt is the itsdangerous salt (Datasette's signing namespace) of API tokens.
const Salt = "token"

// Minter mints Datasette API tokens, as `datasette create-token` does, and
// checks tokens against the claims it would mint. It is safe for concurrent
// use.
type Minter struct {
	signer *itsdangerous.Signer
}

// NewMinter returns a Minter signing with secret (Datasette's --secret or
// DATASETTE_SECRET, as UTF-8 bytes). Tokens signed with any of the previous
// secrets still verify in [Minter.Compare] (key rotation); only secret signs.
//
// The secret is used as given, even when empty; note that Datasette replaces
// an empty secret with a random one, so a token signed with an empty secret
// is accepted by no Datasette instance.
func NewMinter(secret []byte, previous ...[]byte) *Minter {
	secrets := append([][]byte{secret}, previous...)
	return &Minter{signer: itsdangerous.NewSigner(Salt, secrets...)}
}

// mintBuffers holds scratch space for a payload, a token and merging.
type mintBuffers struct {
	payload, token []byte
	merge          mergeScratch
}

var mintPool = sync.Pool{New: func() any { return new(mintBuffers) }}

// Mint returns "dstok_" + the signed payload of c (see [Claims.PayloadJSON]).
// c.IssuedAt is signed as it is, zero included: to mint as Datasette does,
// set it to the current time in whole seconds (time.Now().Unix(), like
// Python's int(time.time())).
//
// Mint has no size limit, like Datasette; use [Minter.MintChecked] for claims
// that come from someone else.
func (m *Minter) Mint(c Claims) string {
	buf := mintPool.Get().(*mintBuffers)
	buf.payload = c.appendPayload(buf.payload[:0], &buf.merge)
	m.sign(buf)
	token := string(buf.token)
	mintPool.Put(buf)
	return token
}

// sign signs buf.payload into buf.token.
func (m *Minter) sign(buf *mintBuffers) {
	buf.token = append(buf.token[:0], Prefix...)
	buf.token = m.signer.AppendSign(buf.token, buf.payload)
}

// MintChecked is [Minter.Mint] for claims that must stay within the size
// limits: it returns an error wrapping [ErrTooLarge] when the payload is over
// [MaxPayloadSize] (checked before compressing, so the cost stays bounded) or
// over [MaxJSONValues] values, or when the token is over [MaxTokenSize]; and
// an error wrapping [ErrUnsupported] when c.Profile's release would misread
// the token (see [Profile.Check]).
// Every token it returns decodes with [Decode], verifies with
// [Verifier.Verify] (at a time it has not expired) and compares as
// Canonical with [Minter.Compare].
func (m *Minter) MintChecked(c Claims) (string, error) {
	if err := c.Profile.Check(c.Restrictions); err != nil {
		return "", fmt.Errorf("dstoken: mint: %w", err)
	}
	buf := mintPool.Get().(*mintBuffers)
	defer mintPool.Put(buf)
	buf.payload = c.appendPayload(buf.payload[:0], &buf.merge)
	if n := len(buf.payload); n > MaxPayloadSize {
		return "", fmt.Errorf("dstoken: mint: %w: the payload is %d bytes, over the limit of %d", ErrTooLarge, n, MaxPayloadSize)
	}
	// The very parser that decodes it, so that whatever is minted decodes.
	if _, err := parsePyJSON(buf.payload); err != nil {
		return "", fmt.Errorf("dstoken: mint: %w", err)
	}
	m.sign(buf)
	if n := len(buf.token); n > MaxTokenSize {
		return "", fmt.Errorf("dstoken: mint: %w: the token is %d bytes, over the limit of %d", ErrTooLarge, n, MaxTokenSize)
	}
	return string(buf.token), nil
}

// Comparison is what [Minter.Compare] found out about a token.
type Comparison struct {
	// Verified: the signature verified under one of the Minter's secrets.
	Verified bool
	// KeyIndex is which secret verified it: 0 = the current one, >0 = a
	// previous one (in NewMinter's order); -1 when not Verified.
	KeyIndex int
	// IssuedAt is the verified token's "t" (0 when not verified or "t" is
	// not an int; true and false count as 1 and 0, like Python).
	IssuedAt int64
	// SameClaims: the verified payload is byte for byte want's payload with
	// IssuedAt set to the token's "t".
	SameClaims bool
	// Canonical: the token is byte for byte the one the Minter would mint
	// for want at that "t" (this implies Verified, KeyIndex 0 and
	// SameClaims). A token Datasette accepts only thanks to itsdangerous'
	// base64 leniency ("=" padding, stray characters, "+/" for "-_") is
	// Verified and SameClaims but not Canonical.
	Canonical bool
}

// Compare checks token against the token m would mint for want, as an
// operator does before deciding whether to keep a stored token. It verifies
// the signature first and decodes only what verified, within the size limits
// (a token over [MaxTokenSize] is not read at all). The token is compared
// with the expected one in constant time. want.IssuedAt is ignored: the
// token's own "t" is used.
func (m *Minter) Compare(token string, want Claims) Comparison {
	res := Comparison{KeyIndex: -1}
	if len(token) > MaxTokenSize || len(token) < len(Prefix) || token[:len(Prefix)] != Prefix {
		return res
	}
	payload, key, err := m.signer.UnsignLimit(token[len(Prefix):], MaxPayloadSize)
	if key < 0 {
		return res
	}
	res.Verified, res.KeyIndex = true, key
	if err != nil {
		return res // signed, but not a payload we can read
	}
	decoded, err := parsePyJSON(payload)
	if err != nil || decoded.kind != pyDict {
		return res
	}
	t, ok := decoded.get("t")
	if !ok || !t.isInt() {
		return res
	}
	res.IssuedAt = saturate(t.bigInt())
	want.IssuedAt = res.IssuedAt
	buf := mintPool.Get().(*mintBuffers)
	defer mintPool.Put(buf)
	buf.payload = want.appendPayload(buf.payload[:0], &buf.merge)
	res.SameClaims = subtle.ConstantTimeCompare(payload, buf.payload) == 1
	if res.SameClaims && key == 0 {
		// The payload is at most MaxPayloadSize, so is this signing.
		m.sign(buf)
		res.Canonical = subtle.ConstantTimeCompare([]byte(token), buf.token) == 1
	}
	return res
}
