package dstoken

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

func TestPyStringEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x0b\x1f", `"\u0000\u0001\u000b\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"<>&'/", `"<>&'/"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"\u0085\u00a0é", "\"\u0085\u00a0é\""},
		{"😀", `"😀"`},
		{"\ufeff\uffff\U0010ffff", "\"\ufeff\uffff\U0010ffff\""},
		{"\ufffd", "\"\ufffd\""}, // a real U+FFFD is kept
		{"a\xffb", "\"a\ufffdb\""},
		{"\xe2\x82", "\"\ufffd\ufffd\""},           // one U+FFFD per invalid byte
		{"\xed\xa0\x80", "\"\ufffd\ufffd\ufffd\""}, // encoded surrogate from a user: invalid
	}
	for _, tt := range tests {
		if got := string(appendPyString(nil, tt.in, userText)); got != tt.want {
			t.Errorf("appendPyString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	// Decoded payload text keeps lone surrogates as escapes.
	if got := string(appendPyString(nil, "x\xed\xa0\x80\xed\xbf\xbf", decodedText)); got != `"x\ud800\udfff"` {
		t.Errorf("surrogates: got %s", got)
	}
}

func TestPyFloat(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{0, "0.0"}, {math.Copysign(0, -1), "-0.0"}, {1, "1.0"}, {-2.5, "-2.5"}, {100, "100.0"},
		{1e15, "1000000000000000.0"}, {1e16, "1e+16"}, {1.5e16, "1.5e+16"}, {0.0001, "0.0001"},
		{0.00001, "1e-05"}, {1.2345e-7, "1.2345e-07"}, {123456789.123456789, "123456789.12345679"},
		{5e-324, "5e-324"}, {math.MaxFloat64, "1.7976931348623157e+308"}, {0.1, "0.1"},
		{math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
	}
	for _, tt := range tests {
		if got := string(appendPyFloat(nil, tt.f)); got != tt.want {
			t.Errorf("appendPyFloat(%v) = %s, want %s", tt.f, got, tt.want)
		}
	}
}

func TestAbbreviations(t *testing.T) {
	want := map[string]string{
		"view-instance": "vi", "permissions-debug": "pd", "debug-menu": "dm", "view-database": "vd",
		"view-database-download": "vdd", "execute-sql": "es", "execute-write-sql": "ews",
		"create-table": "ct", "create-view": "cv", "store-query": "sq", "view-table": "vt",
		"insert-row": "ir", "delete-row": "dr", "update-row": "ur", "alter-table": "at",
		"set-column-type": "sct", "drop-table": "dt", "drop-view": "dv", "view-query": "vq",
		"update-query": "uq", "delete-query": "dq",
	}
	if n := len(BuiltinActions()); n != 21 || len(want) != 21 {
		t.Fatalf("%d built-in actions, want 21", n)
	}
	for _, name := range BuiltinActions() {
		abbr, ok := Abbreviate(name)
		if !ok || abbr != want[name] {
			t.Errorf("Abbreviate(%q) = %q, %v; want %q", name, abbr, ok, want[name])
		}
		if back, ok := ActionName(abbr); !ok || back != name {
			t.Errorf("ActionName(%q) = %q, %v; want %q", abbr, back, ok, name)
		}
	}
	for _, s := range []string{"vi", "VIEW-TABLE", "view-table ", "", "foo", "view_table"} {
		if abbr, ok := Abbreviate(s); ok || abbr != s {
			t.Errorf("Abbreviate(%q) = %q, %v; want it unchanged", s, abbr, ok)
		}
	}
	if name, ok := ActionName("view-table"); ok || name != "view-table" {
		t.Errorf("ActionName(full name) = %q, %v", name, ok)
	}
}

func TestRestrictionsJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Restrictions
		want string
	}{
		{"all", Restrictions{All: []string{"view-instance", "foo", "vt"}}, `{"a":["vi","foo","vt"]}`},
		{"merge databases in first-appearance order",
			Restrictions{Databases: []DatabaseActions{
				{"zeta", []string{"view-database"}}, {"alpha", []string{"execute-sql"}}, {"zeta", []string{"insert-row", "x"}},
			}},
			`{"d":{"zeta":["vd","ir","x"],"alpha":["es"]}}`},
		{"merge resources per database",
			Restrictions{Resources: []ResourceActions{
				{"db1", "t1", []string{"view-table"}}, {"db2", "t1", []string{"view-table"}},
				{"db1", "t2", []string{"insert-row"}}, {"db1", "t1", []string{"delete-row"}},
			}},
			`{"r":{"db1":{"t1":["vt","dr"],"t2":["ir"]},"db2":{"t1":["vt"]}}}`},
		{"all three, duplicates kept",
			Restrictions{
				Resources: []ResourceActions{{"d", "t", []string{"view-table"}}},
				Databases: []DatabaseActions{{"d", []string{"execute-sql", "execute-sql"}}},
				All:       []string{"view-instance", "view-instance"},
			},
			`{"a":["vi","vi"],"d":{"d":["es","es"]},"r":{"d":{"t":["vt"]}}}`},
		{"entry without actions stays restrictive",
			Restrictions{Databases: []DatabaseActions{{Database: "db"}}}, `{"d":{"db":[]}}`},
		{"special names", Restrictions{Resources: []ResourceActions{{"<db>&", "t\u2028", []string{"view-table"}}}},
			"{\"r\":{\"<db>&\":{\"t\u2028\":[\"vt\"]}}}"},
		{"names equal after U+FFFD replacement merge",
			Restrictions{Databases: []DatabaseActions{{"\xff", []string{"a"}}, {"\xfe", []string{"b"}}}},
			"{\"d\":{\"\ufffd\":[\"a\",\"b\"]}}"},
	}
	for _, tt := range tests {
		if got := string(tt.r.appendJSON(nil, new(mergeScratch), nil)); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
	many := Restrictions{}
	for i := range 40 {
		many.Databases = append(many.Databases, DatabaseActions{string(rune('a' + i%20)), []string{"vd"}})
	}
	if got := string(many.appendJSON(nil, new(mergeScratch), nil)); strings.Count(got, `["vd","vd"]`) != 20 {
		t.Errorf("40 entries over 20 databases: got %s", got)
	}
}

func TestPayloadJSON(t *testing.T) {
	tests := []struct {
		c    Claims
		want string
	}{
		{Claims{Actor: "root", IssuedAt: 1700000000}, `{"a":"root","t":1700000000}`},
		{Claims{Actor: "", IssuedAt: 0}, `{"a":"","t":0}`},
		{Claims{Actor: "a", IssuedAt: 1, ExpiresAfter: -3600}, `{"a":"a","t":1,"d":-3600}`},
		{Claims{Actor: "a", IssuedAt: math.MaxInt64, ExpiresAfter: math.MinInt64},
			`{"a":"a","t":9223372036854775807,"d":-9223372036854775808}`},
		{Claims{Actor: "x", IssuedAt: 5, ExpiresAfter: 60, Restrictions: Restrictions{All: []string{"view-instance"}}},
			`{"a":"x","t":5,"d":60,"_r":{"a":["vi"]}}`},
	}
	for _, tt := range tests {
		if got := string(tt.c.PayloadJSON()); got != tt.want {
			t.Errorf("PayloadJSON(%+v) = %s, want %s", tt.c, got, tt.want)
		}
	}
}

func TestUnknownActions(t *testing.T) {
	r := Restrictions{
		All:       []string{"view-instance", "foo", "vi"},
		Databases: []DatabaseActions{{"db", []string{"bar", "foo", "execute-sql"}}},
		Resources: []ResourceActions{{"db", "t", []string{"", "VIEW-TABLE", "bar"}}},
	}
	want := []string{"foo", "vi", "bar", "", "VIEW-TABLE"}
	if got := UnknownActions(r); !slices.Equal(got, want) {
		t.Errorf("UnknownActions = %q, want %q", got, want)
	}
	if got := UnknownActions(Restrictions{}); got != nil {
		t.Errorf("UnknownActions(zero) = %q", got)
	}
}

func TestValidate(t *testing.T) {
	ok := Claims{Actor: "ok 😀", Restrictions: Restrictions{All: []string{"vi"}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
	for _, c := range []Claims{
		{Actor: "bad\xff"},
		{Actor: "ok", Restrictions: Restrictions{Resources: []ResourceActions{{"db", "t\xed\xa0\x80", nil}}}},
		{Actor: "ok", Restrictions: Restrictions{Databases: []DatabaseActions{{"db", []string{"\xc0"}}}}},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidUTF8", c, err)
		}
	}
}

func TestMintZeroIssuedAt(t *testing.T) {
	d, err := Decode(NewMinter([]byte("s")).Mint(Claims{Actor: "root"}))
	if err != nil || string(d.Payload) != `{"a":"root","t":0}` {
		t.Errorf("Mint with zero IssuedAt: %+v, %v; want it signed as 0", d, err)
	}
}

func TestVerifyErrors(t *testing.T) {
	minter, verifier := NewMinter([]byte("k")), NewVerifier([]byte("k"))
	tok := minter.Mint(Claims{Actor: "root", IssuedAt: 1700000000, ExpiresAfter: 10})
	now := time.Unix(1700000005, 0)

	_, err := verifier.Verify(tok[:len(tok)-2]+"xx", VerifyOptions{Now: now})
	var inv *InvalidTokenError
	if !errors.As(err, &inv) || inv.Message != MessageInvalidSignature || !errors.Is(err, itsdangerous.ErrInvalidSignature) {
		t.Errorf("tampered: %v", err)
	}
	if _, err := verifier.Verify(tok, VerifyOptions{Now: now.Add(5500 * time.Millisecond)}); !errors.As(err, &inv) || inv.Message != MessageExpired {
		t.Errorf("expired: %v", err)
	}
	if _, err := verifier.Verify("Bearer "+tok, VerifyOptions{}); !errors.Is(err, ErrNotDatasetteToken) {
		t.Errorf("no prefix: %v", err)
	}
	var srv *ServerError
	bad := Prefix + itsdangerous.NewSigner(Salt, []byte("k")).Sign([]byte(`{"a":1,"t":1.5`))
	if _, err := verifier.Verify(bad, VerifyOptions{}); !errors.As(err, &srv) || srv.Exception != "BadPayload" || !errors.Is(err, itsdangerous.ErrBadPayload) {
		t.Errorf("bad payload: %v", err)
	}

	// Rotation: an old secret still verifies.
	v2 := NewVerifier([]byte("new"), []byte("k"))
	got, err := v2.Verify(tok, VerifyOptions{Now: now, MaxTTL: 5})
	if err != nil || got.Duration != 5 || *got.Actor.ExpiresAt != 1700000005 || got.IssuedAt != 1700000000 {
		t.Errorf("rotation with max TTL: %+v, %v", got, err)
	}
}

func TestVerifyHugeNumbers(t *testing.T) {
	signer := itsdangerous.NewSigner(Salt, []byte("k"))
	tok := Prefix + signer.Sign([]byte(`{"a":"x","t":9223372036854775807,"d":9223372036854775807}`))
	got, err := NewVerifier([]byte("k")).Verify(tok, VerifyOptions{Now: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := got.Actor.MarshalJSON()
	if *got.Actor.ExpiresAt != math.MaxInt64 || !strings.Contains(string(b), `"token_expires":18446744073709551614`) {
		t.Errorf("saturated ExpiresAt %d, JSON %s", *got.Actor.ExpiresAt, b)
	}
}

func TestDecode(t *testing.T) {
	c := Claims{Actor: "bob", IssuedAt: 1700000000, ExpiresAfter: 60, Restrictions: Restrictions{
		All:       []string{"view-instance", "foo"},
		Databases: []DatabaseActions{{"db", []string{"execute-sql"}}},
		Resources: []ResourceActions{{"db", "t", []string{"view-table", "insert-row"}}},
	}}
	d, err := Decode(NewMinter([]byte("k")).Mint(c))
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Payload) != string(c.PayloadJSON()) || string(d.Claims.PayloadJSON()) != string(c.PayloadJSON()) || !d.Restricted() {
		t.Errorf("Decode = %+v", d)
	}
	if d.Claims.Restrictions.Resources[0].Actions[1] != "insert-row" {
		t.Errorf("actions not expanded: %+v", d.Claims.Restrictions)
	}
	if _, err := Decode("nope"); !errors.Is(err, ErrNotDatasetteToken) {
		t.Errorf("Decode(no prefix) = %v", err)
	}
	if _, err := Decode("dstok_abc"); !errors.Is(err, itsdangerous.ErrInvalidSignature) {
		t.Errorf("Decode(no dot) = %v", err)
	}
	d, err = Decode(Prefix + itsdangerous.NewSigner(Salt, []byte("x")).Sign([]byte("[1]")))
	if !errors.Is(err, itsdangerous.ErrBadPayload) || d == nil || string(d.Payload) != "[1]" {
		t.Errorf("Decode(list) = %+v, %v", d, err)
	}
	empty, err := Decode(Prefix + itsdangerous.NewSigner(Salt, []byte("x")).Sign([]byte(`{"a":"x","t":1,"_r":{}}`)))
	if err != nil || !empty.Restricted() || !empty.Claims.Restrictions.IsZero() {
		t.Errorf(`Decode("_r": {}) = %+v, %v`, empty, err)
	}
}

func TestMintAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	m := NewMinter([]byte("secret"))
	c := benchClaims()
	m.Mint(c)
	if allocs := testing.AllocsPerRun(100, func() { m.Mint(c) }); allocs > 1 {
		t.Errorf("Mint allocates %v times, want only the returned string", allocs)
	}
}

func TestConcurrentUse(t *testing.T) {
	m, v := NewMinter([]byte("k")), NewVerifier([]byte("k"))
	done := make(chan error)
	for g := range 8 {
		go func() {
			for i := range 200 {
				c := benchClaims()
				c.Actor = strings.Repeat("x", g*i%97)
				got, err := v.Verify(m.Mint(c), VerifyOptions{Now: time.Unix(c.IssuedAt, 0)})
				if err == nil && string(got.Payload) != string(c.PayloadJSON()) {
					err = errors.New("payload mismatch")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
