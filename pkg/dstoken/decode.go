package dstoken

import (
	"fmt"
	"strings"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// Decoded is the content of a token read without its key.
type Decoded struct {
	// Payload is the signed JSON text (decompressed).
	Payload []byte
	// Claims is a best-effort reading of Payload: fields whose JSON value has
	// an unexpected type are left zero, actions are expanded to full names
	// (see [ActionName]), and list entries that are not strings are skipped.
	// It cannot tell "_r": {} (restricted to nothing) from no "_r" at all;
	// use [Decoded.Restricted] for that.
	Claims Claims
}

// Restricted reports whether the payload has an "_r" key, whatever its value:
// Datasette then applies restrictions, and "_r": {} allows nothing.
func (d *Decoded) Restricted() bool {
	v, err := parsePyJSON(d.Payload)
	if err != nil || v.kind != pyDict {
		return false
	}
	_, ok := v.get("_r")
	return ok
}

// Decode reads a token's payload WITHOUT verifying its signature, for
// inspection: anyone can forge what it returns. Use [Verifier.Verify] to
// authenticate a token.
//
// It returns [ErrNotDatasetteToken] without the "dstok_" prefix, an error
// wrapping [ErrTooLarge] for a token over [MaxTokenSize] (refused unread), an
// error wrapping itsdangerous.ErrInvalidSignature when there is no "."
// separator, and one wrapping itsdangerous.ErrBadPayload when the body is not
// base64, zlib or a JSON object, or is beyond [MaxPayloadSize] or
// [MaxJSONValues] (those wrap ErrTooLarge too). When only the JSON is at
// fault, the returned Decoded still holds the Payload.
func Decode(token string) (*Decoded, error) {
	if !strings.HasPrefix(token, Prefix) {
		return nil, ErrNotDatasetteToken
	}
	if err := checkTokenSize("decode", token); err != nil {
		return nil, err
	}
	payload, err := itsdangerous.DecodeUnverifiedLimit(token[len(Prefix):], MaxPayloadSize)
	if err != nil {
		return nil, fmt.Errorf("dstoken: decode: %w", err)
	}
	d := &Decoded{Payload: payload}
	v, err := parsePyJSON(payload)
	if err != nil {
		return d, fmt.Errorf("dstoken: decode: %w: %w", itsdangerous.ErrBadPayload, err)
	}
	if v.kind != pyDict {
		return d, fmt.Errorf("dstoken: decode: %w: payload is a JSON %s, not an object", itsdangerous.ErrBadPayload, v.typeName())
	}
	d.Claims = claimsOf(&v)
	return d, nil
}

// claimsOf reads Claims from a decoded payload object, best effort.
func claimsOf(v *pyValue) Claims {
	var c Claims
	if a, ok := v.get("a"); ok && a.kind == pyString {
		c.Actor = sanitize(a.str)
	}
	if t, ok := v.get("t"); ok && t.isInt() {
		c.IssuedAt = saturate(t.bigInt())
	}
	if d, ok := v.get("d"); ok && d.isInt() {
		c.ExpiresAfter = saturate(d.bigInt())
	}
	r, ok := v.get("_r")
	if !ok || r.kind != pyDict {
		return c
	}
	if all, ok := r.get("a"); ok {
		c.Restrictions.All = actionsOf(all)
	}
	if dbs, ok := r.get("d"); ok && dbs.kind == pyDict {
		for i, db := range dbs.keys {
			c.Restrictions.Databases = append(c.Restrictions.Databases,
				DatabaseActions{Database: sanitize(db), Actions: actionsOf(&dbs.list[i])})
		}
	}
	if dbs, ok := r.get("r"); ok && dbs.kind == pyDict {
		for i, db := range dbs.keys {
			resources := &dbs.list[i]
			if resources.kind != pyDict {
				continue
			}
			for j, res := range resources.keys {
				c.Restrictions.Resources = append(c.Restrictions.Resources,
					ResourceActions{Database: sanitize(db), Resource: sanitize(res), Actions: actionsOf(&resources.list[j])})
			}
		}
	}
	return c
}

// actionsOf returns the full names of the string entries of a JSON list.
func actionsOf(v *pyValue) []string {
	if v.kind != pyList {
		return nil
	}
	var out []string
	for _, e := range v.list {
		if e.kind == pyString {
			name, _ := ActionName(e.str)
			out = append(out, sanitize(name))
		}
	}
	return out
}
