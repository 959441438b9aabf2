package dstoken

import (
	"fmt"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// Size limits. Every token that [Minter.MintChecked] accepts is within them,
// so it decodes, verifies and compares; anything beyond them is refused
// before the work it would cost. Datasette itself has no such limits, so a
// token beyond them (which only a holder of the secret could sign) is where
// this package and Datasette part ways.
const (
	// MaxTokenSize is the largest token, in bytes including "dstok_", that
	// [Decode], [Verifier.Verify] and [Minter.Compare] read: larger tokens
	// are refused before any base64, zlib or JSON work. A token travels in
	// an HTTP Authorization header, which servers limit to a few tens of KiB
	// at most; 64 KiB is far above any token people mint (a few hundred
	// bytes) and far below Kubernetes' 1 MiB Secret limit.
	MaxTokenSize = 64 << 10

	// MaxPayloadSize is the largest payload, in bytes after decompression,
	// that is decoded. A compressed token can inflate about a thousand-fold,
	// so this cap, not MaxTokenSize, bounds the memory a hostile token costs.
	// 64 KiB holds any uncompressed payload a MaxTokenSize token can carry
	// (3/4 of it) and thousands of restriction entries.
	MaxPayloadSize = 64 << 10

	// MaxJSONValues is the most JSON values (objects, arrays, strings,
	// numbers, literals; object keys not counted) a payload may hold. Each
	// parsed value costs about a hundred bytes, so this keeps decoding a
	// payload of MaxPayloadSize within a few MiB; a token with 8192
	// restriction actions is already far beyond any sensible use.
	MaxJSONValues = 8192

	// MaxJSONDepth is the deepest nesting of JSON arrays and objects
	// accepted. Python raises RecursionError at a depth that depends on its
	// version and its stack: CPython 3.11 (recursion limit 1000) fails at 996
	// levels from the top of a script, and earlier inside Datasette, whose
	// stack is deeper. The exact boundary cannot be reproduced; 900 is a
	// little below it. Minted payloads are at most 5 deep.
	MaxJSONDepth = 900
)

// ErrTooLarge is wrapped by errors for a token or payload beyond the size
// limits ([MaxTokenSize], [MaxPayloadSize], [MaxJSONValues]); the error text
// gives the actual size. It is the same value as itsdangerous.ErrTooLarge,
// so errors from either package match it.
var ErrTooLarge = itsdangerous.ErrTooLarge

// checkTokenSize refuses a token over MaxTokenSize.
func checkTokenSize(op, token string) error {
	if len(token) > MaxTokenSize {
		return fmt.Errorf("dstoken: %s: %w: the token is %d bytes, over the limit of %d", op, ErrTooLarge, len(token), MaxTokenSize)
	}
	return nil
}
