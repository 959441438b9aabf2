package dstoken

import (
	"sync"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// Prefix starts every Datasette signed API token.
const Prefix = "dstok_"

// Salt is the itsdangerous salt (Datasette's signing namespace) of API tokens.
const Salt = "token"

// Minter mints Datasette API tokens, as `datasette create-token` does. It is
// safe for concurrent use.
type Minter struct {
	signer *itsdangerous.Signer
}

// NewMinter returns a Minter signing with secret (Datasette's --secret or
// DATASETTE_SECRET, as UTF-8 bytes).
//
// The secret is used as given, even when empty; note that Datasette replaces
// an empty secret with a random one, so a token signed with an empty secret
// is accepted by no Datasette instance.
func NewMinter(secret []byte) *Minter {
	return &Minter{signer: itsdangerous.NewSigner(Salt, secret)}
}

// mintBuffers holds scratch space for a payload and a token.
type mintBuffers struct{ payload, token []byte }

var mintPool = sync.Pool{New: func() any { return new(mintBuffers) }}

// Mint returns "dstok_" + the signed payload of c (see [Claims.PayloadJSON]).
// c.IssuedAt is signed as it is, zero included: to mint as Datasette does,
// set it to the current time in whole seconds (time.Now().Unix(), like
// Python's int(time.time())).
func (m *Minter) Mint(c Claims) string {
	buf := mintPool.Get().(*mintBuffers)
	buf.payload = c.appendPayload(buf.payload[:0])
	buf.token = append(buf.token[:0], Prefix...)
	buf.token = m.signer.AppendSign(buf.token, buf.payload)
	token := string(buf.token)
	mintPool.Put(buf)
	return token
}
