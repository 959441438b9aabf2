package dstoken

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// The peer test checks this package against a second, independent
// implementation: Python's itsdangerous and json, driven by
// testdata/peer.py. It needs python3 with itsdangerous 2.x and fails
// (rather than skips) without them, saying how to install them.

// peerInstall says how to get the peer's dependencies.
const peerInstall = "the peer test needs python3 with itsdangerous 2.x: " +
	"pip install 'itsdangerous>=2.2,<3' (or, on Debian and Ubuntu, apt-get install python3-itsdangerous)"

const peerSecret = "peer sécret 🔑"

type peerRequest struct {
	Secret   string       `json:"secret"`
	GoTokens []string     `json:"go_tokens"` // hex of UTF-8
	Mint     []peerMint   `json:"mint"`
	Verify   []peerVerify `json:"verify"`
	B64      []string     `json:"b64"`  // hex
	JSON     []string     `json:"json"` // hex
	Zlib     []string     `json:"zlib"` // hex
}

type peerMint struct {
	Actor string     `json:"actor"`
	T     int64      `json:"t"`
	D     int64      `json:"d"`
	R     [][]string `json:"r"`
}

type peerVerify struct {
	Token  string  `json:"token"` // hex
	Now    float64 `json:"now"`
	MaxTTL int64   `json:"max_ttl"`
	Allow  bool    `json:"allow"`

	opts VerifyOptions
}

type peerVerdict struct {
	Result    string `json:"result"`
	Message   string `json:"message,omitempty"`
	Exception string `json:"exception,omitempty"`
	Actor     string `json:"actor,omitempty"` // hex of the compact actor JSON
}

type peerResponse struct {
	Python       string `json:"python"`
	Itsdangerous string `json:"itsdangerous"`
	GoTokens     []struct {
		OK      bool   `json:"ok"`
		Payload string `json:"payload"`
		Error   string `json:"error"`
	} `json:"go_tokens"`
	Mint   []string      `json:"mint"`
	Verify []peerVerdict `json:"verify"`
	B64    []struct {
		OK    bool   `json:"ok"`
		Data  string `json:"data"`
		Error string `json:"error"`
	} `json:"b64"`
	JSON []struct {
		OK        bool   `json:"ok"`
		Canonical string `json:"canonical"` // hex
		Indented  string `json:"indented"`  // json.dumps(indent=2), ASCII
		Error     string `json:"error"`
	} `json:"json"`
	ZlibVersion string   `json:"zlib_version"`
	Zlib        []string `json:"zlib"`
}

func runPeer(t *testing.T, req *peerRequest) *peerResponse {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found (%v): %s", err, peerInstall)
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/peer.py")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python peer failed (%v); %s:\n%s", err, peerInstall, stderr.String())
	}
	var resp peerResponse
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		t.Fatalf("decoding the peer's answer: %v", err)
	}
	if !strings.HasPrefix(resp.Itsdangerous, "2.") {
		t.Fatalf("found itsdangerous %s; %s", resp.Itsdangerous, peerInstall)
	}
	t.Logf("peer: Python %s, itsdangerous %s", resp.Python, resp.Itsdangerous)
	return &resp
}

func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }

func unhex(t *testing.T, h string) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("bad hex from peer: %v", err)
	}
	return string(b)
}

// corpus generation

var specialStrings = []string{
	"", "root", "\u2028", "a\u2028b\u2029c", "😀 emoji 🔑", `say "hi"`, `dom\user`, `\"`,
	"ctl\x00\x01\x1f\x7f", "\n\r\t\b\f\v", "<script>&amp;</script>", "Jürgen Müller", "שלום",
	"e\u0301", "\ufeffbom", "\uffff\ufffd", "\U0010FFFF", "org/team/user", "id=1:2", " spaces ",
	"\u0085\u00a0", "表", "données", "my db", "t\u2028", ".", "dstok_", "=", "{}", "null",
}

var actionPool = append(BuiltinActions(),
	"vi", "vt", "es", "VIEW-TABLE", "view-table ", "foo", "my-plugin-action", "", "😀")

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return specialStrings[r.IntN(len(specialStrings))]
	}
	n := r.IntN(12)
	var b strings.Builder
	for range n {
		switch r.IntN(6) {
		case 0:
			b.WriteByte(byte(r.IntN(0x80))) // any ASCII, controls included
		case 1:
			b.WriteRune(rune(0x80 + r.IntN(0x780))) // 2-byte UTF-8
		case 2:
			c := rune(0x800 + r.IntN(0xF800-0x800))
			if c >= 0xD800 && c <= 0xDFFF {
				c = 0x2028
			}
			b.WriteRune(c)
		case 3:
			b.WriteRune(rune(0x10000 + r.IntN(0x100000))) // astral
		default:
			b.WriteByte("abcdefghijklmnopqrstuvwxyz"[r.IntN(26)])
		}
	}
	return b.String()
}

func randClaims(r *rand.Rand) (Claims, [][]string) {
	c := Claims{Actor: randString(r), IssuedAt: 1700000000}
	switch r.IntN(4) {
	case 0:
		c.IssuedAt = 1 + r.Int64N(1<<33)
	case 1:
		c.IssuedAt = []int64{1, -1, 1 << 53, 1<<53 + 1, 1<<62 + 7, -(1 << 40)}[r.IntN(6)]
	}
	c.ExpiresAfter = []int64{0, 0, 1, -1, 3600, 86400, 1<<53 + 1, 1 << 40, -3600}[r.IntN(9)]
	var flags [][]string
	dbs := []string{"db", "other", "my db", "données", "<db>&", "😀", "a\u2028"}
	n := []int{0, 0, 1, 2, 5, 40}[r.IntN(6)]
	for range n {
		action := actionPool[r.IntN(len(actionPool))]
		if r.IntN(5) == 0 {
			action = randString(r)
		}
		db := dbs[r.IntN(len(dbs))]
		if r.IntN(5) == 0 {
			db = randString(r)
		}
		switch r.IntN(3) {
		case 0:
			flags = append(flags, []string{"all", action})
			c.Restrictions.All = append(c.Restrictions.All, action)
		case 1:
			flags = append(flags, []string{"database", db, action})
			c.Restrictions.Databases = append(c.Restrictions.Databases, DatabaseActions{db, []string{action}})
		default:
			res := []string{"t", "table one", "表", randString(r)}[r.IntN(4)]
			flags = append(flags, []string{"resource", db, res, action})
			c.Restrictions.Resources = append(c.Restrictions.Resources, ResourceActions{db, res, []string{action}})
		}
	}
	return c, flags
}

// weirdPayloads are signed payloads Datasette never mints, to compare the
// Python semantics of verify_token.
func weirdPayloads() []string {
	big400 := "1" + strings.Repeat("0", 400)
	big300 := "1" + strings.Repeat("0", 300)
	deep := strings.Repeat("[", 990) + strings.Repeat("]", 990)   // both reject
	nested := strings.Repeat("[", 500) + strings.Repeat("]", 500) // both accept
	return []string{
		`{"a":"root","t":1700000000}`,
		`{"a":"root","t":true}`, `{"a":"root","t":false,"d":5}`, `{"a":1,"t":1700000000,"d":true}`,
		`{"a":"x","t":1700000000,"d":false}`, `{"a":"x","t":1700000000,"d":null}`,
		`{"a":"x","t":1700000000,"d":1.5}`, `{"a":"x","t":1700000000.0}`, `{"a":"x","t":1e9}`,
		`{"a":"x","t":-0,"d":1}`, `{"a":"x","t":` + big400 + `,"d":1}`, `{"a":"x","t":-` + big400 + `,"d":1}`,
		`{"a":"x","t":` + big300 + `,"d":1}`, `{"a":"x","t":-` + big300 + `,"d":` + big400 + `}`,
		`{"a":"x","t":1700000000,"d":9223372036854775808}`, `{"a":"x","t":9223372036854775807,"d":9223372036854775807}`,
		`{"a":"x","t":` + strings.Repeat("7", 4301) + `}`, `{"a":"x","t":-` + strings.Repeat("7", 4300) + `}`,
		`{"a":NaN,"t":1700000000}`, `{"a":Infinity,"t":1700000000}`, `{"a":-Infinity,"t":1700000000}`,
		`{"a":1e400,"t":1700000000}`, `{"a":1E2,"t":1700000000}`, `{"a":-0.0,"t":1700000000}`,
		`{"a":0.00001,"t":1700000000}`, `{"a":0.0001,"t":1700000000}`, `{"a":1e16,"t":1700000000}`,
		`{"a":1e15,"t":1700000000}`, `{"a":123456789.123456789,"t":1700000000}`, `{"a":5e-324,"t":1700000000}`,
		`{"a":"\ud800","t":1700000000}`, `{"a":"\ud83d\ude00\udc00\uD83D","t":1700000000}`,
		`{"a":"x","a":"y","t":1,"t":1700000000}`, `{"_r":{"a":[],"a":["vi"]},"a":"x","t":1700000000}`,
		`["t"]`, `[]`, `["x",["t"]]`, `"t"`, `"abc"`, `"\u0074"`, `5`, `5.5`, `null`, `true`, `NaN`, `{}`,
		` {"a":"x","t":1700000000} `, "{\"a\":\"x\",\"t\":1700000000}\n\t\r", `{"a" : "x" , "t" : 1700000000}`,
		`{"t":1700000000}`, `{"t":1700000000,"d":1}`, `{"a":"x","t":[]}`, `{"a":"x","t":{}}`, `{"a":"x","t":"1"}`,
		`{"a":"x","t":1700000000,"_r":` + deep + `}`, `{"a":"x","t":1700000000,"_r":` + nested + `}`, `{"a":"x","t":1700000000,"_r":null}`,
		`{"a":"x","t":1700000000,"_r":{"z":1,"a":["vi"],"d":{"db":[1,null,"vd"]}}}`,
		"{\"a\":\"\xff\",\"t\":1700000000}", "\ufeff{\"a\":\"x\",\"t\":1700000000}", "{\"a\":\"\x01\",\"t\":1700000000}",
		"{\"a\":\"\x7f\",\"t\":1700000000}", `{"a":"x","t":01}`, `{"a":"x","t":1700000000,}`, `{"a":"\u00zz","t":1}`,
		`{"a":"x\/y\b\f","t":1700000000}`, `{"a":"x","t":1700000000}x`, `not json`, ``, `{"a":[1,2.50,{"k":[]}],"t":1700000000}`,
	}
}

// signBody signs an arbitrary (possibly non-canonical) body, to build tokens
// that rely on lenient base64 in the payload.
func signBody(body string) string {
	mac := hmac.New(sha1.New, itsdangerous.DeriveKey(Salt, []byte(peerSecret)))
	mac.Write([]byte(body))
	return Prefix + body + "." + itsdangerous.Base64Encode(mac.Sum(nil))
}

func tamper(r *rand.Rand, tok string) string {
	const chars = "AQgw-_+/=.!~é"
	pick := func() string {
		c := []rune(chars)[r.IntN(len([]rune(chars)))]
		return string(c)
	}
	if len(tok) <= len(Prefix) {
		return tok + pick()
	}
	i := len(Prefix) + r.IntN(len(tok)-len(Prefix))
	switch r.IntN(7) {
	case 0:
		return tok[:i] + pick() + tok[i+1:]
	case 1:
		return tok[:i] + tok[i+1:]
	case 2:
		return tok[:i] + pick() + tok[i:]
	case 3:
		return tok + []string{"=", "==", "A", ".", "!!"}[r.IntN(5)]
	case 4:
		return tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[r.IntN(64)])
	case 5:
		return tok[:i]
	default:
		return strings.ToUpper(tok[:1]) + tok[1:]
	}
}

// goVerdict expresses a Verify result like the peer does.
func goVerdict(t *testing.T, got *Verified, err error) peerVerdict {
	t.Helper()
	var inv *InvalidTokenError
	var srv *ServerError
	switch {
	case err == nil:
		b, err := got.Actor.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		return peerVerdict{Result: "actor", Actor: hex.EncodeToString(b)}
	case errors.Is(err, ErrNotDatasetteToken):
		return peerVerdict{Result: "not_ours"}
	case errors.As(err, &inv):
		return peerVerdict{Result: "invalid", Message: inv.Message}
	case errors.As(err, &srv):
		return peerVerdict{Result: "error", Exception: srv.Exception}
	case errors.Is(err, ErrTooLarge):
		return peerVerdict{Result: "too_large"} // refused unread: no Datasette verdict
	}
	t.Fatalf("unexpected error type %T: %v", err, err)
	return peerVerdict{}
}

// peerCase is TestPythonPeer's request, with the Go inputs behind it.
type peerCase struct {
	req        peerRequest
	claims     []Claims
	goTokens   []string
	b64Inputs  []string
	jsonInputs []string
	zlibInputs [][]byte
}

func TestPythonPeer(t *testing.T) {
	r := rand.New(rand.NewPCG(2024, 11))
	c := &peerCase{req: peerRequest{Secret: peerSecret}}
	c.addTokens(r)
	c.addVerifies(r)
	c.addB64(r)
	c.addJSON(r)
	c.addZlib(r)

	resp := runPeer(t, &c.req)
	c.checkTokens(t, resp)
	c.checkVerdicts(t, resp)
	c.checkB64(t, resp)
	c.checkZlib(t, resp)
	checkPeerJSON(t, c.jsonInputs, resp)
}

// addTokens mints random claims for Python to load and to mint itself.
func (c *peerCase) addTokens(r *rand.Rand) {
	minter := NewMinter([]byte(peerSecret))
	const n = 400
	c.claims, c.goTokens = make([]Claims, 0, n), make([]string, 0, n)
	for i := range n {
		claims, flags := randClaims(r)
		if i < len(specialStrings) {
			claims.Actor = specialStrings[i]
		}
		c.claims = append(c.claims, claims)
		tok := minter.Mint(claims)
		c.goTokens = append(c.goTokens, tok)
		c.req.GoTokens = append(c.req.GoTokens, hexOf(tok))
		c.req.Mint = append(c.req.Mint, peerMint{Actor: claims.Actor, T: claims.IssuedAt, D: claims.ExpiresAfter, R: flags})
	}
}

// addVerify asks for the verdict on tok at a random time near base.
func (c *peerCase) addVerify(r *rand.Rand, tok string, base int64) {
	offsets := []float64{0, 0.5, 1, 5, 59.999, 60, 60.5, 3600, 3601, 1e9, -10}
	ns := base*1e9 + int64(offsets[r.IntN(len(offsets))]*1e9)
	opts := VerifyOptions{
		Now:                  time.Unix(0, ns),
		MaxTTL:               []int64{0, 0, 0, 60, 3600, -5}[r.IntN(6)],
		SignedTokensDisabled: r.IntN(20) == 0,
	}
	c.req.Verify = append(c.req.Verify, peerVerify{
		Token: hexOf(tok), Now: pyTime(opts.Now), MaxTTL: opts.MaxTTL, Allow: !opts.SignedTokensDisabled, opts: opts,
	})
}

// addVerifies asks for verdicts on the minted tokens, tampered and
// wrong-key versions of them, odd payloads and odd bodies.
func (c *peerCase) addVerifies(r *rand.Rand) {
	wrongKey := NewMinter([]byte(peerSecret + "x"))
	for i, tok := range c.goTokens {
		base := c.claims[i].IssuedAt
		if base > 1<<40 || base < 0 {
			base = 1700000000
		}
		c.addVerify(r, tok, base)
		for range 3 {
			c.addVerify(r, tamper(r, tok), base)
		}
		if i%10 == 0 {
			c.addVerify(r, wrongKey.Mint(c.claims[i]), base)
		}
	}
	signer := itsdangerous.NewSigner(Salt, []byte(peerSecret))
	for _, p := range weirdPayloads() {
		tok := Prefix + signer.Sign([]byte(p))
		for range 4 {
			c.addVerify(r, tok, 1700000000)
		}
		c.addVerify(r, tamper(r, tok), 1700000000)
	}
	body := itsdangerous.Base64Encode([]byte(`{"a":"root","t":1700000000}`))
	for _, b := range []string{
		body[:4] + "!!" + body[4:], body + "=", body + "==", body[:8] + "=" + body[8:], body[:8] + "." + body[8:],
		strings.NewReplacer("-", "+", "_", "/").Replace(body), body[:len(body)-1], "." + body, "", ".", "..",
		body[:5] + "é" + body[5:], "é", "=" + body,
	} {
		c.addVerify(r, signBody(b), 1700000000)
	}
	for _, extra := range []string{"", "dstok", "Bearer dstok_x.y", "dstok_", "dstok_.", "dstok_a.b", " dstok_a.b"} {
		c.addVerify(r, extra, 1700000000)
	}
}

// addB64 asks for lenient base64 decoding of random inputs.
func (c *peerCase) addB64(r *rand.Rand) {
	const b64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/"
	const n = 3000
	c.b64Inputs, c.req.B64 = make([]string, 0, n), make([]string, 0, n)
	for range n {
		var b []byte
		for range r.IntN(14) {
			switch r.IntN(10) {
			case 0:
				b = append(b, '=')
			case 1:
				b = append(b, "!. ~\x00\x80\xff"[r.IntN(7)])
			default:
				b = append(b, b64Chars[r.IntN(len(b64Chars))])
			}
		}
		c.b64Inputs = append(c.b64Inputs, string(b))
		c.req.B64 = append(c.req.B64, hexOf(string(b)))
	}
}

// addJSON asks for Python's json on the weird payloads, their mutations and
// random texts. (Nesting near Python's recursion limit is left out: its
// boundary depends on the Python stack, see MaxJSONDepth.)
func (c *peerCase) addJSON(r *rand.Rand) {
	for _, p := range weirdPayloads() {
		if !strings.Contains(p, strings.Repeat("[", 800)) {
			c.jsonInputs = append(c.jsonInputs, p)
		}
	}
	for _, p := range weirdPayloads() {
		for range 5 {
			if len(p) > 0 && len(p) < 200 {
				i := r.IntN(len(p))
				const mut = "{}[]\",:-0123456789.eE+tfnNI\\u \n"
				c.jsonInputs = append(c.jsonInputs, p[:i]+string(mut[r.IntN(len(mut))])+p[i+1:])
			}
		}
	}
	for range 1500 {
		c.jsonInputs = append(c.jsonInputs, randJSON(r, 0))
	}
	c.req.JSON = hexAll(c.jsonInputs)
}

// addZlib asks for zlib.compress of every payload Go mints, and random texts.
func (c *peerCase) addZlib(r *rand.Rand) {
	c.zlibInputs = make([][]byte, 0, len(c.claims)+300)
	for _, claims := range c.claims {
		c.zlibInputs = append(c.zlibInputs, claims.PayloadJSON())
	}
	for range 300 {
		n := []int{0, 1, 5, 50, 300, 2000, 16000}[r.IntN(7)]
		alphabet := []int{1, 3, 16, 64, 256}[r.IntN(5)]
		b := make([]byte, r.IntN(n+1))
		for i := range b {
			b[i] = byte(r.IntN(alphabet)) + 'a'
		}
		c.zlibInputs = append(c.zlibInputs, b)
	}
	for _, b := range c.zlibInputs {
		c.req.Zlib = append(c.req.Zlib, hex.EncodeToString(b))
	}
}

// checkTokens checks that Python loads every Go-minted token to the exact
// payload, and that Go verifies every Python-minted token and decodes it
// back. With classic zlib (not zlib-ng) the tokens are byte-identical.
func (c *peerCase) checkTokens(t *testing.T, resp *peerResponse) {
	for i, got := range resp.GoTokens {
		want := string(c.claims[i].PayloadJSON())
		if !got.OK || unhex(t, got.Payload) != want {
			t.Errorf("python could not load Go token %s: %+v; want payload %s", c.goTokens[i], got, want)
		}
	}
	classicZlib := !strings.Contains(strings.ToLower(resp.ZlibVersion), "ng")
	verifier := NewVerifier([]byte(peerSecret))
	compressedPy, compressedGo := 0, 0
	for i, tok := range resp.Mint {
		claims := c.claims[i]
		want := string(claims.PayloadJSON())
		if strings.HasPrefix(tok, Prefix+".") {
			compressedPy++
		}
		if strings.HasPrefix(c.goTokens[i], Prefix+".") {
			compressedGo++
		}
		if tok != c.goTokens[i] && (classicZlib || !strings.HasPrefix(tok, Prefix+".")) {
			t.Errorf("Python token %s != Go token %s", tok, c.goTokens[i])
		}
		got, err := verifier.Verify(tok, VerifyOptions{Now: time.Unix(claims.IssuedAt, 0)})
		if claims.ExpiresAfter < 0 {
			var inv *InvalidTokenError
			if !errors.As(err, &inv) || inv.Message != MessageExpired {
				t.Errorf("Verify(python %s) = %v, want expired", tok, err)
			}
		} else if err != nil || string(got.Payload) != want {
			t.Errorf("Verify(python %s) = %v, %v; want payload %s", tok, got, err, want)
		}
		d, err := Decode(tok)
		if err != nil || string(d.Claims.PayloadJSON()) != want {
			t.Errorf("Decode(python %s) = %+v, %v; want claims of %s", tok, d, err, want)
		}
	}
	t.Logf("%d tokens: Python compressed %d, Go compressed %d", len(resp.Mint), compressedPy, compressedGo)
}

// checkVerdicts checks that verdicts on valid, tampered, wrong-key and odd
// tokens agree.
func (c *peerCase) checkVerdicts(t *testing.T, resp *peerResponse) {
	verifier := NewVerifier([]byte(peerSecret))
	outcomes := map[string]int{}
	for i, want := range resp.Verify {
		v := c.req.Verify[i]
		tok := unhex(t, v.Token)
		got, err := verifier.Verify(tok, v.opts)
		gv := goVerdict(t, got, err)
		outcomes[want.Result+" "+want.Message+want.Exception]++
		if gv != want {
			t.Errorf("Verify(%q, now=%v, max_ttl=%d, allow=%v):\n got %+v\nwant %+v (actor %s / %s)",
				tok, v.Now, v.MaxTTL, v.Allow, gv, want, unhexSafe(gv.Actor), unhexSafe(want.Actor))
		}
	}
	t.Logf("verify outcomes: %v", outcomes)
}

// checkB64 checks that lenient base64 agrees with itsdangerous.
func (c *peerCase) checkB64(t *testing.T, resp *peerResponse) {
	for i, want := range resp.B64 {
		got, err := itsdangerous.Base64Decode(c.b64Inputs[i])
		if (err == nil) != want.OK || (err == nil && hex.EncodeToString(got) != want.Data) {
			t.Errorf("Base64Decode(%q) = %x, %v; python: %+v", c.b64Inputs[i], got, err, want)
		}
	}
}

// checkZlib checks that payloads compress to CPython's exact bytes (with
// classic zlib; a zlib-ng build of Python makes other, equally valid,
// streams), so tokens are byte-identical to Datasette's. The exception is
// input that zlib stores uncompressed: itsdangerous never uses that (it is
// longer than the input), and neither output is used then.
func (c *peerCase) checkZlib(t *testing.T, resp *peerResponse) {
	classicZlib := !strings.Contains(strings.ToLower(resp.ZlibVersion), "ng")
	identical, stored := 0, 0
	for i, want := range resp.Zlib {
		ours := itsdangerous.ZlibCompress(c.zlibInputs[i])
		got := hex.EncodeToString(ours)
		wantBytes, _ := hex.DecodeString(want)
		switch {
		case got == want:
			identical++
		case len(wantBytes) > 2 && wantBytes[2]&6 == 0 && len(ours) >= len(c.zlibInputs[i])-1:
			stored++
		case classicZlib:
			t.Errorf("zlib.compress(%.60q):\n got %s\nwant %s", c.zlibInputs[i], got, want)
		}
	}
	t.Logf("zlib %s: %d/%d streams byte-identical, %d stored by zlib (never used)", resp.ZlibVersion, identical, len(resp.Zlib), stored)
}

// checkPeerJSON checks that the JSON parser agrees with Python's json.loads,
// and that the compact writer and IndentPayload agree with json.dumps.
func checkPeerJSON(t *testing.T, inputs []string, resp *peerResponse) {
	t.Helper()
	for i, want := range resp.JSON {
		v, err := parsePyJSON([]byte(inputs[i]))
		if (err == nil) != want.OK {
			t.Errorf("parse %q: err %v; python: %+v", inputs[i], err, want)
			continue
		}
		if err != nil {
			continue
		}
		if got := string(v.compact()); got != unhex(t, want.Canonical) {
			t.Errorf("parse %q = %s; python %s", inputs[i], got, unhex(t, want.Canonical))
		}
		if got, err := IndentPayload([]byte(inputs[i]), 2); err != nil || got != want.Indented {
			t.Errorf("IndentPayload(%q) =\n%s (%v)\npython:\n%s", inputs[i], got, err, want.Indented)
		}
	}
}

// TestIndentPayloadMatchesPython checks IndentPayload against
// json.dumps(json.loads(doc), indent=2) on payload-like documents and on
// documents json.loads rejects.
func TestIndentPayloadMatchesPython(t *testing.T) {
	corpus := []string{
		`{"a":"root","t":1700000000}`,
		`{"a":"root","t":1700000000,"d":60,"_r":{"a":["vi"],"d":{"db":["ct"]},"r":{"db":{"t":["ir"]}}}}`,
		`{"a":"😀 Jürgen \"q\" \\ \u2028","t":1}`,
		`{"a":"\u0000\u001f\u007f\u0080\u00ff\uffff","t":-0}`,
		`{"a":"\ud83d\ude00 \ud800 \udc00 \ud800\ud800 \udbff\udfff","t":1}`,
		`{"a":"<>&/\/","b":"\b\f\n\r\t"}`,
		`{"a":[],"b":{},"c":[[]],"d":[{}],"e":null,"f":true,"g":false}`,
		`{"a":1.0,"b":1e16,"c":1e15,"d":0.0001,"e":0.00001,"f":-0.0,"g":1.5e300,"h":123456789012345678901234567890,"i":1E400,"j":-1e400,"k":5e-324,"l":0.1,"m":1e-7,"n":1.7e-05}`,
		`{"a":NaN,"b":Infinity,"c":-Infinity}`,
		`{"a":1,"b":2,"a":3}`,
		`  [1, 2 ,3 ]  `,
		`"just a string"`,
		`42`,
		`-0`,
		`[[[[["deep"]]]]]`,
		`{"":{"":[""]}}`,
		`{"a":"` + strings.Repeat("é", 50) + `"}`,
	}
	invalid := []string{``, `{`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `1e`, `+1`, `{"a":"x` + "\n" + `"}`,
		`{'a':1}`, `nan`, `"\x"`, `"\u12"`, `[1] [2]`, `tru`, `{"a" 1}`, `"\ud800\u12"`}
	all := append(slices.Clone(corpus), invalid...)
	resp := runPeer(t, &peerRequest{Secret: peerSecret, JSON: hexAll(all)})
	for i, doc := range all {
		got, err := IndentPayload([]byte(doc), 2)
		if want := resp.JSON[i]; (err == nil) != want.OK || err == nil && got != want.Indented {
			t.Errorf("IndentPayload(%q) =\n%s (error %v)\nPython (ok=%v):\n%s", doc, got, err, want.OK, want.Indented)
		}
	}
}

// hexAll returns the hex of each string.
func hexAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = hexOf(s)
	}
	return out
}

func unhexSafe(h string) string {
	b, _ := hex.DecodeString(h)
	return string(b)
}

// randJSON returns random JSON-like text, mostly valid, with Python's
// extensions and typical mistakes.
func randJSON(r *rand.Rand, depth int) string {
	atoms := []string{
		"0", "-0", "1", "-1", "12345678901234567890123", "1.5", "-2.5e-3", "1E400", "1e-400", "0.1", "1e22",
		"NaN", "Infinity", "-Infinity", "true", "false", "null", `""`, `"t"`, `"\u00e9\ud800"`,
		`"\ud83d\ude00"`, `"a\"b\\c"`, "1.", "01", ".5", "-", "+1", "nan", `"\x"`, "tru", "1e", "1e+",
	}
	if depth > 3 || r.IntN(3) == 0 {
		return atoms[r.IntN(len(atoms))]
	}
	ws := func() string { return []string{"", "", " ", "\n", "\t", "\r", "\x0c"}[r.IntN(7)] }
	n := r.IntN(4)
	var b strings.Builder
	if r.IntN(2) == 0 {
		b.WriteString("[" + ws())
		for i := range n {
			if i > 0 {
				b.WriteString(ws() + "," + ws())
			}
			b.WriteString(randJSON(r, depth+1))
		}
		if r.IntN(10) == 0 {
			b.WriteString(",")
		}
		b.WriteString(ws() + "]")
	} else {
		b.WriteString("{" + ws())
		keys := []string{`"a"`, `"t"`, `"a"`, `"_r"`, `"\u0061"`, `a`, `1`}
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(keys[r.IntN(len(keys))] + ws() + ":" + ws() + randJSON(r, depth+1))
		}
		b.WriteString("}")
	}
	if depth == 0 && r.IntN(10) == 0 {
		b.WriteString(ws() + fmt.Sprint(r.IntN(2)))
	}
	return b.String()
}
