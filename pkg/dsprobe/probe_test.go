package dsprobe

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// fakeDatasette answers the three endpoints as a Datasette instance with key would.
type fakeDatasette struct {
	key       []byte
	version   string
	settings  string // the JSON of /-/settings.json
	status401 bool   // answer 401 for an invalid token, as 1.0a36+ does

	mu       sync.Mutex
	methods  []string
	tokens   []string
	restrict []string
}

func (f *fakeDatasette) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.methods = append(f.methods, r.Method)
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.tokens = append(f.tokens, token)
	f.mu.Unlock()
	actor := "null"
	if token != "" {
		v, err := dstoken.NewVerifier(f.key).Verify(token, dstoken.VerifyOptions{Now: time.Now()})
		switch {
		case err != nil && f.status401:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprint(w, `{"ok": false, "error": "Invalid token signature"}`)
			return
		case err == nil:
			b, _ := v.Actor.MarshalJSON()
			actor = string(b)
			f.mu.Lock()
			f.restrict = append(f.restrict, string(v.Actor.Restrictions))
			f.mu.Unlock()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/-/actor.json":
		_, _ = fmt.Fprintf(w, `{"actor": %s}`, actor)
	case "/-/versions.json":
		_, _ = fmt.Fprintf(w, `{"python": {"version": "3.11"}, "datasette": {"version": %q}}`, f.version)
	case "/-/settings.json":
		_, _ = fmt.Fprint(w, f.settings)
	default:
		http.NotFound(w, r)
	}
}

const defaultSettings = `{"allow_signed_tokens": true, "max_signed_tokens_ttl": 3600, "default_page_size": 100}`

func newFake(t *testing.T, f *fakeDatasette) *httptest.Server {
	t.Helper()
	if f.settings == "" {
		f.settings = defaultSettings
	}
	if f.version == "" {
		f.version = "1.0a37"
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func TestProbeVerdicts(t *testing.T) {
	good := []byte("the-key")
	cases := []struct {
		name     string
		fake     *fakeDatasette
		minter   []byte
		want     Verdict
		version  string
		ttl      time.Duration
		settings bool
	}{
		{name: "matching key", fake: &fakeDatasette{key: good}, minter: good, want: KeyAccepted, version: "1.0a37", ttl: time.Hour, settings: true},
		{name: "wrong key, actor null", fake: &fakeDatasette{key: good, version: "1.0a19"}, minter: []byte("other"), want: KeyRejected, version: "1.0a19", ttl: time.Hour, settings: true},
		{name: "wrong key, 401 everywhere", fake: &fakeDatasette{key: good, status401: true}, minter: []byte("other"), want: KeyRejected, version: "1.0a37", ttl: time.Hour, settings: true},
		{name: "signed tokens disabled", fake: &fakeDatasette{key: good, settings: `{"allow_signed_tokens": false, "max_signed_tokens_ttl": 0}`},
			minter: good, want: SignedTokensDisabled, version: "1.0a37", settings: true},
		{name: "no ttl", fake: &fakeDatasette{key: good, settings: `{"allow_signed_tokens": true, "max_signed_tokens_ttl": 0}`}, minter: good, want: KeyAccepted, version: "1.0a37", settings: true},
		{name: "huge ttl clamped", fake: &fakeDatasette{key: good, settings: `{"allow_signed_tokens": true, "max_signed_tokens_ttl": 1e300}`}, minter: good, want: KeyAccepted, version: "1.0a37", ttl: MaxTTL, settings: true},
		{name: "settings without allow_signed_tokens", fake: &fakeDatasette{key: good, settings: `{"max_signed_tokens_ttl": 5}`}, minter: good, want: KeyAccepted, version: "1.0a37"},
		{name: "invalid version kept out", fake: &fakeDatasette{key: good, version: "1.0<script>"}, minter: good, want: KeyAccepted, ttl: time.Hour, settings: true},
		{name: "overlong version kept out", fake: &fakeDatasette{key: good, version: strings.Repeat("1", 65)}, minter: good, want: KeyAccepted, ttl: time.Hour, settings: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFake(t, tc.fake)
			got := Probe(context.Background(), dstoken.NewMinter(tc.minter), Config{URL: srv.URL}, time.Now())
			if got.Verdict != tc.want || got.Version != tc.version || got.MaxSignedTokensTTL != tc.ttl || got.SettingsKnown != tc.settings {
				t.Fatalf("got %+v, want verdict %s version %q ttl %s settings %v", got, tc.want, tc.version, tc.ttl, tc.settings)
			}
			if tc.want != KeyAccepted && got.Detail == "" {
				t.Errorf("no detail for verdict %s", got.Verdict)
			}
			for _, m := range tc.fake.methods {
				if m != http.MethodGet {
					t.Errorf("method %s used", m)
				}
			}
		})
	}
}

func TestProbeTokenIsShortLivedAndRestricted(t *testing.T) {
	key := []byte("k")
	f := &fakeDatasette{key: key}
	srv := newFake(t, f)
	now := time.Now()
	got := Probe(context.Background(), dstoken.NewMinter(key), Config{URL: srv.URL + "/", Actor: "probe-bot"}, now)
	if got.Verdict != KeyAccepted {
		t.Fatalf("verdict %+v", got)
	}
	d, err := dstoken.Decode(f.tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Claims.Actor != "probe-bot" || d.Claims.ExpiresAfter != 60 || d.Claims.IssuedAt != now.Unix() {
		t.Errorf("probe token claims %+v, want actor probe-bot, d=60, t=now", d.Claims)
	}
	if f.restrict[0] != `{"a":["vi"]}` {
		t.Errorf("probe token _r = %s, want view-instance only", f.restrict[0])
	}

	f2 := &fakeDatasette{key: key}
	srv2 := newFake(t, f2)
	Probe(context.Background(), dstoken.NewMinter(key), Config{URL: srv2.URL, Unrestricted: true}, now)
	d, _ = dstoken.Decode(f2.tokens[0])
	if d.Claims.Actor != DefaultActor || !d.Claims.Restrictions.IsZero() {
		t.Errorf("unrestricted probe token claims %+v", d.Claims)
	}
}

func TestProbeRejectedAsksTheRestAnonymously(t *testing.T) {
	f := &fakeDatasette{key: []byte("k"), status401: true}
	srv := newFake(t, f)
	Probe(context.Background(), dstoken.NewMinter([]byte("wrong")), Config{URL: srv.URL}, time.Now())
	if len(f.tokens) != 3 || f.tokens[0] == "" || f.tokens[1] != "" || f.tokens[2] != "" {
		t.Errorf("tokens sent %q: want the token on actor.json only", f.tokens)
	}
}

// secretEchoing answers every request with status, reflecting the Authorization header in the
// body and in a header, as a hostile or broken server might.
func secretEchoing(status int, extra func(w http.ResponseWriter)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if extra != nil {
			extra(w)
		}
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"actor": {"id": %q}, "error": %q}`, r.Header.Get("Authorization"), r.Header.Get("Authorization"))
	}
}

func TestProbeBounds(t *testing.T) {
	key := []byte("k")
	var redirectTargetHit atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirectTargetHit.Store(true) }))
	t.Cleanup(target.Close)

	cases := []struct {
		name    string
		handler http.Handler
		timeout time.Duration
		detail  string
	}{
		{name: "oversized body", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, `{"actor": null, "pad": "%s"}`, strings.Repeat("x", MaxBody))
		}), detail: "larger than 65536 bytes"},
		{name: "endless body", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat("x", 4096))
			for i := 0; i < 1<<14; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}), detail: "larger than 65536 bytes"},
		{name: "redirect not followed", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+r.URL.Path, http.StatusFound)
		}), detail: "redirect"},
		{name: "slow server", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
		}), timeout: 300 * time.Millisecond, detail: "timeout"},
		{name: "slow body", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprint(w, `{"actor": `)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
		}), timeout: 300 * time.Millisecond, detail: "timeout"},
		{name: "bad JSON", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprint(w, `<html>not datasette</html>`)
		}), detail: "not the JSON"},
		{name: "server error echoing the token", handler: secretEchoing(http.StatusInternalServerError, nil), detail: "answered 500"},
		{name: "forbidden", handler: secretEchoing(http.StatusForbidden, nil), detail: "answered 403"},
		{name: "redirect echoing the token", handler: secretEchoing(http.StatusFound, func(w http.ResponseWriter) {
			w.Header().Set("Location", "/elsewhere")
		}), detail: "redirect"},
		{name: "ok echoing the token as actor", handler: secretEchoing(http.StatusOK, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tokens []string
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				tokens = append(tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
				mu.Unlock()
				tc.handler.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			start := time.Now()
			got := Probe(context.Background(), dstoken.NewMinter(key), Config{URL: srv.URL, Timeout: tc.timeout}, time.Now())
			elapsed := time.Since(start)
			if tc.timeout > 0 && elapsed > tc.timeout+time.Second {
				t.Errorf("probe took %s with a %s timeout", elapsed, tc.timeout)
			}
			want := Unreachable
			if tc.detail == "" {
				want = KeyRejected // the echoed "actor" is not the probe's
			}
			if got.Verdict != want || !strings.Contains(got.Detail, tc.detail) {
				t.Errorf("got %+v, want %s with detail containing %q", got, want, tc.detail)
			}
			if len(got.Detail) > maxDetail {
				t.Errorf("detail is %d bytes", len(got.Detail))
			}
			for _, tok := range tokens {
				if tok != "" && strings.Contains(fmt.Sprintf("%+v", got), tok) {
					t.Errorf("the probe token appears in the result: %+v", got)
				}
				if tok != "" && strings.Contains(got.Detail, "dstok_") {
					t.Errorf("a token appears in the detail: %q", got.Detail)
				}
			}
		})
	}
	if redirectTargetHit.Load() {
		t.Error("a redirect was followed")
	}
}

func TestProbeUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	got := Probe(context.Background(), dstoken.NewMinter([]byte("k")), Config{URL: url}, time.Now())
	if got.Verdict != Unreachable || !strings.Contains(got.Detail, "GET /-/actor.json") {
		t.Errorf("got %+v", got)
	}
}

func TestProbeIgnoresProxyEnvironment(t *testing.T) {
	var proxied atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxied.Store(true) }))
	t.Cleanup(proxy.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	f := &fakeDatasette{key: []byte("k")}
	srv := newFake(t, f)
	// httptest serves on 127.0.0.1, which Go never proxies: name it by another loopback name.
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if got := Probe(context.Background(), dstoken.NewMinter([]byte("k")), Config{URL: url}, time.Now()); got.Verdict != KeyAccepted {
		t.Errorf("got %+v", got)
	}
	if proxied.Load() {
		t.Error("the probe went through HTTP_PROXY")
	}
}

func TestProbeHTTPSWithCABundle(t *testing.T) {
	key := []byte("k")
	f := &fakeDatasette{key: key, settings: defaultSettings, version: "1.0a37"}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	if got := Probe(context.Background(), dstoken.NewMinter(key), Config{URL: srv.URL, CABundle: bundle}, time.Now()); got.Verdict != KeyAccepted {
		t.Errorf("with the CA bundle: %+v", got)
	}
	got := Probe(context.Background(), dstoken.NewMinter(key), Config{URL: srv.URL}, time.Now())
	if got.Verdict != Unreachable || !strings.Contains(got.Detail, "certificate") {
		t.Errorf("without the CA bundle: %+v, want Unreachable for the certificate", got)
	}
	got = Probe(context.Background(), dstoken.NewMinter(key), Config{URL: srv.URL, CABundle: []byte("not pem")}, time.Now())
	if got.Verdict != Unreachable || !strings.Contains(got.Detail, "no PEM certificate") {
		t.Errorf("with a broken bundle: %+v", got)
	}
}

func TestValidateURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"http://datasette.prod.svc:8001":      true,
		"https://datasette.example.com/base/": true,
		"ftp://x":                             false,
		"datasette:8001":                      false,
		"http://user:pw@host":                 false,
		"http://host/?q=1":                    false,
		"http://host/#f":                      false,
		"http:///path":                        false,
		"http://host/%zz":                     false,
	} {
		if _, err := ValidateURL(raw); (err == nil) != ok {
			t.Errorf("ValidateURL(%q) = %v, want ok %v", raw, err, ok)
		}
	}
}

func TestProbeJoinsBasePath(t *testing.T) {
	key := []byte("k")
	f := &fakeDatasette{key: key}
	mux := http.NewServeMux()
	mux.Handle("/prefix/", http.StripPrefix("/prefix", f))
	f.settings, f.version = defaultSettings, "1.0a37"
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if got := Probe(context.Background(), dstoken.NewMinter(key), Config{URL: srv.URL + "/prefix/"}, time.Now()); got.Verdict != KeyAccepted || got.Version != "1.0a37" {
		t.Errorf("got %+v", got)
	}
}

func TestBounded(t *testing.T) {
	s := strings.Repeat("é", 300)
	b := bounded(s)
	if len(b) > maxDetail || !strings.HasSuffix(b, "…") || !strings.HasPrefix(s, strings.TrimSuffix(b, "…")) {
		t.Errorf("bounded cut badly: %d bytes", len(b))
	}
}
