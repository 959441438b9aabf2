package dstoken

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// Datasette's TokenInvalid messages (HTTP 401), as [InvalidTokenError.Message].
const (
	MessageSignedTokensDisabled = "Signed tokens are not enabled for this Datasette instance"
	MessageInvalidSignature     = "Invalid token signature"
	MessageNoTimestamp          = "Invalid token: no timestamp"
	MessageInvalidTimestamp     = "Invalid token: invalid timestamp"
	MessageInvalidDuration      = "Invalid token: invalid duration"
	MessageExpired              = "Token has expired"
)

// ErrNotDatasetteToken is returned for a token without the "dstok_" prefix:
// Datasette's handler returns None and the request stays anonymous (or
// another token handler may claim it).
var ErrNotDatasetteToken = errors.New("dstoken: not a Datasette signed token (no dstok_ prefix)")

// InvalidTokenError is Datasette's TokenInvalid: the request is answered with
// HTTP 401 and Message.
type InvalidTokenError struct {
	Message string // Datasette's exact text, one of the Message* constants
	cause   error
}

func (e *InvalidTokenError) Error() string {
	if e.cause != nil {
		return "dstoken: " + e.Message + ": " + e.cause.Error()
	}
	return "dstoken: " + e.Message
}

// Unwrap returns the underlying cause, such as an error wrapping
// itsdangerous.ErrInvalidSignature.
func (e *InvalidTokenError) Unwrap() error { return e.cause }

// ServerError is a token on which Datasette's verify_token raises an
// uncaught exception, so Datasette answers HTTP 500. Only tokens signed with
// the secret can cause it, but Datasette never mints them.
type ServerError struct {
	// Exception is the Python exception class: "BadPayload" (the signed body
	// is not base64, zlib or JSON), "KeyError" (no "a" claim), "TypeError"
	// (the payload is not a JSON object) or "OverflowError" ("t" too large
	// to convert to a float).
	Exception string
	detail    string
	cause     error
}

func (e *ServerError) Error() string {
	return "dstoken: Datasette would fail with " + e.Exception + ": " + e.detail
}

// Unwrap returns the underlying cause, such as an error wrapping
// itsdangerous.ErrBadPayload.
func (e *ServerError) Unwrap() error { return e.cause }

// VerifyOptions are the Datasette settings and clock used by Verify.
type VerifyOptions struct {
	// Now is the verification time; fractions of a second count. Callers
	// pass it (usually time.Now()): the zero value is the year 1, not now.
	Now time.Time
	// MaxTTL is Datasette's max_signed_tokens_ttl setting in seconds; 0 means
	// no limit.
	MaxTTL int64
	// SignedTokensDisabled is the inverse of Datasette's allow_signed_tokens.
	SignedTokensDisabled bool
}

// Verifier verifies tokens as a Datasette instance would. It is safe for
// concurrent use.
type Verifier struct {
	signer *itsdangerous.Signer
}

// NewVerifier returns a Verifier that accepts tokens signed with any of
// secrets. It panics if no secret is given.
func NewVerifier(secrets ...[]byte) *Verifier {
	return &Verifier{signer: itsdangerous.NewSigner(Salt, secrets...)}
}

// Verified is an accepted token. IssuedAt and Duration saturate at the int64
// limits for values outside them, which Datasette never mints;
// Actor.MarshalJSON always writes the exact token_expires.
type Verified struct {
	// Actor is the actor Datasette builds for the request.
	Actor Actor
	// Payload is the signed JSON (decompressed).
	Payload []byte
	// IssuedAt is "t" (true counts as 1, false as 0, like Python).
	IssuedAt int64
	// Duration is the effective lifetime in seconds after MaxTTL capping;
	// 0 means the token never expires.
	Duration int64
}

// Actor is the actor dictionary Datasette builds from a token.
//
// Callers that need Datasette's exact bytes call [Actor.MarshalJSON]
// directly: json.Marshal(actor) calls it too but then re-escapes '<', '>',
// '&', U+2028 and U+2029 (as \u003c and so on: the same JSON value in other
// bytes).
type Actor struct {
	// ID is "id": the JSON value of the "a" claim, usually a string but any
	// JSON value is passed through.
	ID json.RawMessage
	// Restrictions is "_r": the value of the "_r" claim, whatever it is
	// (even null); nil when the payload has no "_r" key.
	Restrictions json.RawMessage
	// ExpiresAt is "token_expires" (t + effective duration), or nil when the
	// token never expires. It saturates at math.MaxInt64/MinInt64.
	ExpiresAt *int64

	expires string // exact token_expires when it does not fit in an int64
}

// MarshalJSON writes the actor as Datasette's dict, in its key order: "id",
// "token": "dstok", "_r" when present, "token_expires" when the token
// expires. Values are written as Python's json.dumps(separators=(",", ":"),
// ensure_ascii=False) re-serialises them (for the payloads Datasette mints
// this is byte-identical to the signed text), except that a lone surrogate
// is written as a \uXXXX escape. A payload containing NaN or Infinity yields
// those Python-specific tokens, which encoding/json rejects.
func (a Actor) MarshalJSON() ([]byte, error) {
	b := []byte(`{"id":`)
	if a.ID == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, a.ID...)
	}
	b = append(b, `,"token":"dstok"`...)
	if a.Restrictions != nil {
		b = append(b, `,"_r":`...)
		b = append(b, a.Restrictions...)
	}
	switch {
	case a.expires != "":
		b = append(b, `,"token_expires":`...)
		b = append(b, a.expires...)
	case a.ExpiresAt != nil:
		b = append(b, `,"token_expires":`...)
		b = strconv.AppendInt(b, *a.ExpiresAt, 10)
	}
	return append(b, '}'), nil
}

// Verify checks token exactly as Datasette 1.0's
// SignedTokenHandler.verify_token does, in the same order:
//
//  1. no "dstok_" prefix: [ErrNotDatasetteToken];
//  2. opts.SignedTokensDisabled: InvalidTokenError "Signed tokens are not
//     enabled for this Datasette instance";
//  3. signature (lenient base64, split at the last "."): "Invalid token
//     signature"; a signed body that is not base64/zlib/UTF-8 JSON (Python's
//     json, which accepts NaN and Infinity): ServerError "BadPayload";
//  4. no "t" key: "Invalid token: no timestamp" (a payload that is not an
//     object gives ServerError "TypeError" unless Python's `"t" in payload`
//     is false for it, as for [] or a string without "t");
//  5. "t" not an int (floats like 1.0 are not; true and false are):
//     "Invalid token: invalid timestamp";
//  6. "d" present, not null and not an int: "Invalid token: invalid duration";
//  7. with opts.MaxTTL = M != 0, a missing or null "d", or one greater than
//     M, becomes M (so "d": 0 still means no expiry, and a negative "d" is
//     kept);
//  8. a non-zero duration with now - t > duration (floating point now,
//     strict >): "Token has expired";
//  9. no "a" key: ServerError "KeyError".
//
// Sizes are bounded where Datasette has no bound: a token over [MaxTokenSize]
// is refused before its signature is checked, with an error wrapping
// [ErrTooLarge] that is none of the above types; a correctly signed payload
// beyond [MaxPayloadSize], [MaxJSONValues] or [MaxJSONDepth] is a
// ServerError "BadPayload" (wrapping ErrTooLarge for the first two). Only a
// holder of the secret can produce the latter.
//
// On success the actor is {"id": a, "token": "dstok"}, plus "_r" copied when
// the key is present and "token_expires" = t + duration when the duration is
// non-zero.
func (v *Verifier) Verify(token string, opts VerifyOptions) (*Verified, error) {
	if !strings.HasPrefix(token, Prefix) {
		return nil, ErrNotDatasetteToken
	}
	if opts.SignedTokensDisabled {
		return nil, &InvalidTokenError{Message: MessageSignedTokensDisabled}
	}
	if err := checkTokenSize("verify", token); err != nil {
		return nil, err
	}
	payload, _, err := v.signer.UnsignLimit(token[len(Prefix):], MaxPayloadSize)
	if err != nil {
		if errors.Is(err, itsdangerous.ErrInvalidSignature) {
			return nil, &InvalidTokenError{Message: MessageInvalidSignature, cause: err}
		}
		return nil, &ServerError{Exception: "BadPayload", detail: err.Error(), cause: err}
	}
	decoded, err := parsePyJSON(payload)
	if err != nil {
		err = fmt.Errorf("%w: could not load the payload: %w", itsdangerous.ErrBadPayload, err)
		return nil, &ServerError{Exception: "BadPayload", detail: err.Error(), cause: err}
	}
	return checkClaims(&decoded, payload, opts)
}

// checkClaims runs steps 4-9 of Verify on a decoded payload.
func checkClaims(decoded *pyValue, payload []byte, opts VerifyOptions) (*Verified, error) {
	invalid := func(msg string) error { return &InvalidTokenError{Message: msg} }
	pyErr := func(exc, detail string) error { return &ServerError{Exception: exc, detail: detail} }

	// `"t" not in decoded`, then `decoded["t"]`.
	var created *pyValue
	switch decoded.kind {
	case pyDict:
		t, ok := decoded.get("t")
		if !ok {
			return nil, invalid(MessageNoTimestamp)
		}
		created = t
	case pyList:
		for _, e := range decoded.list {
			if e.kind == pyString && e.str == "t" {
				return nil, pyErr("TypeError", "list indices must be integers or slices, not str")
			}
		}
		return nil, invalid(MessageNoTimestamp)
	case pyString:
		if strings.Contains(decoded.str, "t") {
			return nil, pyErr("TypeError", "string indices must be integers, not 'str'")
		}
		return nil, invalid(MessageNoTimestamp)
	default:
		return nil, pyErr("TypeError", fmt.Sprintf("argument of type '%s' is not iterable", decoded.typeName()))
	}
	if !created.isInt() {
		return nil, invalid(MessageInvalidTimestamp)
	}
	t := created.bigInt()

	var duration *big.Int // nil is Python's None
	if d, ok := decoded.get("d"); ok && d.kind != pyNull {
		if !d.isInt() {
			return nil, invalid(MessageInvalidDuration)
		}
		duration = d.bigInt()
	}
	if opts.MaxTTL != 0 {
		maxTTL := big.NewInt(opts.MaxTTL)
		if duration == nil || duration.Cmp(maxTTL) > 0 {
			duration = maxTTL
		}
	}
	expires := duration != nil && duration.Sign() != 0

	if expires {
		tf, _ := new(big.Float).SetInt(t).Float64()
		if math.IsInf(tf, 0) {
			return nil, pyErr("OverflowError", "int too large to convert to float")
		}
		elapsed := pyTime(opts.Now) - tf
		if new(big.Float).SetFloat64(elapsed).Cmp(new(big.Float).SetInt(duration)) > 0 {
			return nil, invalid(MessageExpired)
		}
	}

	a, ok := decoded.get("a")
	if !ok {
		return nil, pyErr("KeyError", "'a'")
	}
	v := &Verified{
		Actor:    Actor{ID: a.compact()},
		Payload:  payload,
		IssuedAt: saturate(t),
	}
	if r, ok := decoded.get("_r"); ok {
		v.Actor.Restrictions = r.compact()
	}
	if expires {
		v.Duration = saturate(duration)
		exp := new(big.Int).Add(t, duration)
		at := saturate(exp)
		v.Actor.ExpiresAt = &at
		if !exp.IsInt64() {
			v.Actor.expires = exp.String()
		}
	}
	return v, nil
}

// saturate converts n to an int64, clamping at the limits.
func saturate(n *big.Int) int64 {
	switch {
	case n.IsInt64():
		return n.Int64()
	case n.Sign() > 0:
		return math.MaxInt64
	default:
		return math.MinInt64
	}
}

// pyTime returns t as the float64 CPython's time.time() would return for it.
func pyTime(t time.Time) float64 {
	if sec := t.Unix(); sec > -9e9 && sec < 9e9 {
		// CPython's _PyTime_AsSecondsDouble on an int64 of nanoseconds.
		ns := t.UnixNano()
		if ns%1e9 == 0 {
			return float64(ns / 1e9)
		}
		return float64(ns) / 1e9
	}
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
