// Package dsprobe asks a live Datasette instance whether it accepts a signing key, which
// release it runs and which token settings it enforces. It mints its own short-lived token
// with the key, and asks three read-only endpoints: /-/actor.json, /-/versions.json and
// /-/settings.json.
//
// Every probe is bounded: GET only, one deadline for the whole probe (5 s by default), each
// response read up to 64 KiB, redirects never followed, no proxy (HTTP_PROXY and the like are
// ignored, so that every connection is one the address policy saw). Every connection is checked
// against an AddressPolicy when it is dialled, and all of a probe's requests go to the address
// its first connection reached. Nothing from a response reaches the result but the parsed,
// validated fields; the probe token appears in no error.
package dsprobe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// Defaults and bounds of a probe.
const (
	// DefaultActor is the actor id of the probe token unless Config.Actor says otherwise.
	DefaultActor = "datasette-token-operator"
	// DefaultTimeout bounds a whole probe: the three requests together.
	DefaultTimeout = 5 * time.Second
	// TokenLifetime is the probe token's "d": it expires a minute after it was minted.
	TokenLifetime = 60 * time.Second
	// MaxBody is the most of a response body the probe reads; a longer one is an error.
	MaxBody = 64 << 10
	// MaxVersionLength bounds the release string kept from /-/versions.json.
	MaxVersionLength = 64
	// MaxTTL bounds max_signed_tokens_ttl as read (ten years); a larger value is clamped.
	MaxTTL = 10 * 365 * 24 * time.Hour
	// maxDetail bounds Result.Detail.
	maxDetail = 256
)

// Verdict is what the instance said about the key.
type Verdict string

// Verdicts.
const (
	// KeyAccepted: the instance read the probe token as its actor.
	KeyAccepted Verdict = "KeyAccepted"
	// KeyRejected: the instance answered, and did not accept the probe token.
	KeyRejected Verdict = "KeyRejected"
	// SignedTokensDisabled: the instance answered, and its allow_signed_tokens setting is off.
	SignedTokensDisabled Verdict = "SignedTokensDisabled"
	// Unreachable: the instance did not answer as a Datasette instance does (connection,
	// TLS, timeout, an unexpected status, an oversized or malformed response).
	Unreachable Verdict = "Unreachable"
)

// Config says which instance to probe, and how.
type Config struct {
	// URL is the instance's base URL, http or https; the endpoints are joined to its path.
	URL string
	// CABundle, when not empty, holds the PEM certificates an https instance's chain must end
	// in (instead of the system's roots).
	CABundle []byte
	// Actor is the probe token's actor id; DefaultActor when empty.
	Actor string
	// Unrestricted leaves "_r" out of the probe token (for releases that ignore it). By default
	// the token is restricted to view-instance.
	Unrestricted bool
	// Timeout bounds the whole probe; DefaultTimeout when zero.
	Timeout time.Duration
	// Addresses is the policy every connection is checked against; nil refuses only what every
	// policy refuses (see AddressPolicy).
	Addresses *AddressPolicy
	// Tenant marks a tenant's probe (a DatasetteSigner's): Addresses' tenant refusals apply, and
	// an instance that does not accept the key is asked nothing more, so that a tenant reads
	// nothing of an instance that is not its own.
	Tenant bool
}

// Result is a probe's parsed, bounded verdict.
type Result struct {
	// Verdict is what the instance said about the key.
	Verdict Verdict
	// Version is the release /-/versions.json reported ("1.0a37"), "" when unknown.
	Version string
	// SettingsKnown says whether /-/settings.json was read; the two fields below are
	// meaningful only then.
	SettingsKnown bool
	// MaxSignedTokensTTL is the instance's max_signed_tokens_ttl, zero when it sets none.
	MaxSignedTokensTTL time.Duration
	// AllowSignedTokens is the instance's allow_signed_tokens.
	AllowSignedTokens bool
	// Detail says, for a person, why the verdict is not KeyAccepted or why a field is unknown:
	// built from the request and Go's error, never from a response body, at most 256 bytes.
	Detail string
}

// ValidateURL checks a probe URL: absolute http or https, a host, no credentials, query or
// fragment. Its errors never repeat the URL's credentials: they become a signer's condition
// message and an event.
func ValidateURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		var escape url.EscapeError
		switch {
		case errors.As(err, &escape), !errors.As(err, &uerr):
			return nil, errors.New("the probe URL does not parse as a URL")
		default:
			return nil, fmt.Errorf("the probe URL does not parse as a URL: %w", uerr.Err) // uerr.URL may hold credentials
		}
	}
	shown := *u
	shown.User = nil
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("probe URL %q: the scheme must be http or https", shown.String())
	case u.Host == "":
		return nil, fmt.Errorf("probe URL %q has no host", shown.String())
	case u.User != nil:
		return nil, fmt.Errorf("probe URL %q must not carry credentials (user or password before the host)", shown.String())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("probe URL %q must not carry a query or fragment", shown.String())
	}
	return u, nil
}

// Probe asks the instance at cfg.URL whether it accepts tokens minted by minter, at now.
// It never returns an error: whatever goes wrong is the Unreachable verdict, with a Detail.
func Probe(ctx context.Context, minter *dstoken.Minter, cfg Config, now time.Time) Result {
	base, err := ValidateURL(cfg.URL)
	if err != nil {
		return Result{Verdict: Unreachable, Detail: bounded(err.Error())}
	}
	client, err := newClient(cfg.CABundle, cfg.Addresses, cfg.Tenant)
	if err != nil {
		return Result{Verdict: Unreachable, Detail: bounded(err.Error())}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	actor := cfg.Actor
	if actor == "" {
		actor = DefaultActor
	}
	claims := dstoken.Claims{Actor: actor, IssuedAt: now.Unix(), ExpiresAfter: int64(TokenLifetime / time.Second)}
	if !cfg.Unrestricted {
		claims.Restrictions.All = []string{"view-instance"}
	}
	token := minter.Mint(claims)
	p := prober{client: client, base: base, token: token}

	var res Result
	accepted, err := p.actor(ctx, actor)
	switch {
	case err != nil:
		return Result{Verdict: Unreachable, Detail: p.scrub(err)}
	case accepted:
		res.Verdict = KeyAccepted
	default:
		res.Verdict = KeyRejected
		res.Detail = fmt.Sprintf("the instance does not read a token signed with this key as actor %q", actor)
		if cfg.Tenant {
			return res // nothing shows that the instance is the tenant's: read no more of it
		}
		p.token = "" // an instance rejecting the token may answer the rest anonymously
	}
	var problems []string
	if v, err := p.version(ctx); err != nil {
		problems = append(problems, p.scrub(err))
	} else {
		res.Version = v
	}
	if ttl, allow, err := p.settings(ctx); err != nil {
		problems = append(problems, p.scrub(err))
	} else {
		res.SettingsKnown, res.MaxSignedTokensTTL, res.AllowSignedTokens = true, ttl, allow
		if !allow {
			res.Verdict = SignedTokensDisabled
			res.Detail = "the instance's allow_signed_tokens setting is off: it accepts no signed token"
		}
	}
	if res.Verdict == KeyAccepted && len(problems) > 0 {
		res.Detail = strings.Join(problems, "; ")
	}
	res.Detail = bounded(res.Detail)
	return res
}

// newClient returns an HTTP client that follows no redirect, uses no proxy, keeps no
// connection and connects only where addresses allows (tenant: for a tenant's probe), each
// time to the address of its first connection, trusting caBundle when given.
func newClient(caBundle []byte, addresses *AddressPolicy, tenant bool) (*http.Client, error) {
	dialer := &net.Dialer{Timeout: DefaultTimeout, Control: addresses.control(tenant)}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would make the connections the policy checks
		DialContext:            (&pinnedDialer{dial: dialer.DialContext}).DialContext,
		TLSHandshakeTimeout:    DefaultTimeout,
		ResponseHeaderTimeout:  DefaultTimeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if len(bytes.TrimSpace(caBundle)) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle) {
			return nil, errors.New("probe caBundle holds no PEM certificate")
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// prober makes the probe's requests.
type prober struct {
	client *http.Client
	base   *url.URL
	token  string // "" for an anonymous request
}

// scrub renders err for a person, without the token (which no error should hold anyway).
func (p *prober) scrub(err error) string {
	msg := err.Error()
	if p.token != "" {
		msg = strings.ReplaceAll(msg, p.token, "[token]")
	}
	return bounded(msg)
}

// errNotAccepted marks an answer that says the token was not accepted.
var errNotAccepted = errors.New("token not accepted")

// get GETs path below the base URL and decodes its JSON body into v. A 401 is errNotAccepted.
func (p *prober) get(ctx context.Context, path string, v any) error {
	u := *p.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its URL is the request's, which the caller knows
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("GET %s: no answer within the probe's timeout", path)
		}
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return fmt.Errorf("GET %s: the response was not read within the probe's timeout", path)
		}
		return fmt.Errorf("GET %s: reading the response: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("GET %s: %d: %w", path, resp.StatusCode, errNotAccepted)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("GET %s: answered %d, a redirect, which the probe does not follow: set the URL the instance serves", path, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: answered %d", path, resp.StatusCode)
	case len(body) > MaxBody:
		return fmt.Errorf("GET %s: the response is larger than %d bytes", path, MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("GET %s: the response is not the JSON a Datasette instance answers", path)
	}
	return nil
}

// actor reports whether /-/actor.json reads the probe token as actor.
func (p *prober) actor(ctx context.Context, actor string) (bool, error) {
	var body struct {
		Actor *struct {
			ID    json.RawMessage `json:"id"`
			Token string          `json:"token"`
		} `json:"actor"`
	}
	err := p.get(ctx, "/-/actor.json", &body)
	switch {
	case errors.Is(err, errNotAccepted):
		return false, nil // 1.0a36 and later: 401 for an invalid token
	case err != nil:
		return false, err
	case body.Actor == nil:
		return false, nil // earlier releases: {"actor": null}
	}
	var id string
	if json.Unmarshal(body.Actor.ID, &id) != nil {
		return false, nil
	}
	return id == actor && body.Actor.Token == "dstok", nil
}

// versionPattern is what a Datasette release string looks like.
var versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+!-]*$`)

// version reads the release from /-/versions.json.
func (p *prober) version(ctx context.Context) (string, error) {
	var body struct {
		Datasette struct {
			Version string `json:"version"`
		} `json:"datasette"`
	}
	if err := p.get(ctx, "/-/versions.json", &body); err != nil {
		return "", err
	}
	v := body.Datasette.Version
	if len(v) > MaxVersionLength || !versionPattern.MatchString(v) {
		return "", errors.New("GET /-/versions.json: no valid datasette.version in the response")
	}
	return v, nil
}

// settings reads max_signed_tokens_ttl and allow_signed_tokens from /-/settings.json.
func (p *prober) settings(ctx context.Context) (ttl time.Duration, allow bool, err error) {
	var body struct {
		MaxSignedTokensTTL *json.Number `json:"max_signed_tokens_ttl"`
		AllowSignedTokens  *bool        `json:"allow_signed_tokens"`
	}
	if err := p.get(ctx, "/-/settings.json", &body); err != nil {
		return 0, false, err
	}
	if body.AllowSignedTokens == nil {
		return 0, false, errors.New("GET /-/settings.json: no allow_signed_tokens in the response")
	}
	if body.MaxSignedTokensTTL != nil {
		ttl, err = ttlOf(*body.MaxSignedTokensTTL)
		if err != nil {
			return 0, false, err
		}
	}
	return ttl, *body.AllowSignedTokens, nil
}

// ttlOf reads max_signed_tokens_ttl (whole seconds; 0 or less means none), clamped to MaxTTL.
func ttlOf(n json.Number) (time.Duration, error) {
	s := n.String()
	if len(s) > 32 {
		return MaxTTL, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, errors.New("GET /-/settings.json: max_signed_tokens_ttl is not a number")
	}
	switch {
	case f <= 0:
		return 0, nil
	case f >= MaxTTL.Seconds():
		return MaxTTL, nil
	}
	return time.Duration(int64(f)) * time.Second, nil
}

// bounded cuts s to maxDetail bytes, on a rune boundary.
func bounded(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
