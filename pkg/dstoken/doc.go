// Package dstoken mints, verifies and decodes Datasette signed API tokens
// ("dstok_..." bearer tokens, what `datasette create-token` prints), matching
// Datasette 1.0 byte for byte where that is possible and verdict for verdict
// everywhere.
//
// A token is "dstok_" followed by an itsdangerous URLSafeSerializer value
// (package itsdangerous) with the salt "token", whose payload is the compact
// JSON object {"a": actor, "t": issued, "d": duration, "_r": restrictions}.
//
// [Minter.Mint] writes the payload exactly as Python's json.dumps does (see
// [Claims.PayloadJSON]), so an uncompressed token is byte-identical to
// Datasette's. A compressed token can differ in its zlib bytes (Go's zlib is
// not CPython's) but carries the identical payload and is accepted by
// Datasette.
//
// [Verifier.Verify] reproduces SignedTokenHandler.verify_token, including its
// Python semantics: Python's json (NaN, big integers, duplicate keys), bool
// counted as int, float time comparison, and the order of its checks. Its
// errors tell the outcome Datasette would give: [ErrNotDatasetteToken]
// (handler returns None), [*InvalidTokenError] (HTTP 401) or [*ServerError]
// (an uncaught exception, HTTP 500).
//
// [Decode] reads a token without a key, for inspection only.
//
// For tokens that someone else may have written (an operator reading back the
// Secret it wrote), [Minter.MintChecked] and [Minter.Compare] keep every cost
// bounded: tokens over [MaxTokenSize] are not read, payloads are decompressed
// up to [MaxPayloadSize] and parsed up to [MaxJSONValues] values and
// [MaxJSONDepth] levels, the signature is checked before anything is decoded,
// and every token MintChecked returns is within those limits, so it always
// decodes, verifies and compares. [Decode] and [Verifier.Verify] apply the
// same limits; errors beyond them wrap [ErrTooLarge].
package dstoken
