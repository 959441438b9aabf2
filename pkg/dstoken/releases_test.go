package dstoken

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRelease(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Release
		str  string
		err  bool
	}{
		{in: "1.0a0", want: Alpha(0), str: "1.0a0"},
		{in: "1.0a19", want: Alpha(19), str: "1.0a19"},
		{in: "1.0a37", want: Alpha(37), str: "1.0a37"},
		{in: "1.0b2", want: Release{Major: 1, Pre: "b", PreN: 2}, str: "1.0b2"},
		{in: "1.0rc1", want: Release{Major: 1, Pre: "rc", PreN: 1}, str: "1.0rc1"},
		{in: "1.0", want: Release{Major: 1}, str: "1.0"},
		{in: "1.0.1", want: Release{Major: 1, Micro: 1, micro: true}, str: "1.0.1"},
		{in: "0.64", want: Release{Minor: 64}, str: "0.64"},
		{in: "", err: true},
		{in: "1", err: true},
		{in: "v1.0a19", err: true},
		{in: "1.0a", err: true},
		{in: "1.0alpha19", err: true},
		{in: "1.0a19 ", err: true},
		{in: "1.0a19\n", err: true},
		{in: "1.0.dev1", err: true},
		{in: "12345.0", err: true},
		{in: "1.0a" + strings.Repeat("1", 40), err: true},
	} {
		got, err := ParseRelease(tt.in)
		if tt.err {
			if !errors.Is(err, ErrBadRelease) {
				t.Errorf("ParseRelease(%q) = %v, %v; want ErrBadRelease", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseRelease(%q) = %+v (%q), %v; want %+v (%q)", tt.in, got, got.String(), err, tt.want, tt.str)
		}
	}
}

func TestReleaseCompare(t *testing.T) {
	order := []string{"0.64", "1.0a0", "1.0a1", "1.0a9", "1.0a10", "1.0a37", "1.0b1", "1.0rc1", "1.0", "1.0.1", "1.1a1", "2.0"}
	for i, a := range order {
		ra, _ := ParseRelease(a)
		for j, b := range order {
			rb, _ := ParseRelease(b)
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ra.Compare(rb); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", a, b, got, want)
			}
		}
	}
	if r, _ := ParseRelease("1.0.0"); r.Compare(Release{Major: 1}) != 0 {
		t.Errorf("1.0.0 and 1.0 differ")
	}
}

// TestProfileFor checks each row of the table (and Datasette's code, see the tables'
// sources) at both ends of every range.
func TestProfileFor(t *testing.T) {
	type want struct {
		actions                          int
		restrictOpts, pluginsDir, tokKey bool
		enforces, unknownBreaks          bool
		matching                         Matching
		invalid                          Outcome
	}
	a0 := want{11, false, false, true, false, false, MatchIgnored, OutcomeAnonymous}
	a2 := want{13, true, true, false, true, false, MatchOwnLevel, OutcomeAnonymous}
	a5 := want{13, true, true, false, true, true, MatchCascade, OutcomeAnonymous}
	a20 := want{14, true, true, false, true, false, MatchSQL, OutcomeAnonymous}
	with := func(w want, n int) want { w.actions = n; return w }
	a36 := want{21, true, true, false, true, false, MatchSQL, OutcomeUnauthorized}
	for _, tt := range []struct {
		version string
		want    want
	}{
		{"1.0a0", a0}, {"1.0a1", a0},
		{"1.0a2", a2}, {"1.0a4", a2},
		{"1.0a5", a5}, {"1.0a8", a5}, {"1.0a9", with(a5, 14)}, {"1.0a19", with(a5, 14)},
		{"1.0a20", a20}, {"1.0a25", a20}, {"1.0a26", with(a20, 15)}, {"1.0a30", with(a20, 15)},
		{"1.0a31", with(a20, 19)}, {"1.0a35", with(a20, 19)},
		{"1.0a36", a36}, {"1.0a37", a36},
		// Beyond the newest known release: the newest rules.
		{"1.0a38", a36}, {"1.0b1", a36}, {"1.0rc3", a36}, {"1.0", a36}, {"1.2.3", a36}, {"2.0a1", a36},
	} {
		p, err := ProfileForVersion(tt.version)
		if err != nil {
			t.Fatalf("%s: %v", tt.version, err)
		}
		got := want{len(p.Actions()), p.RestrictOptions, p.PluginsDirOption, p.TokenKeyInPayload,
			p.EnforcesRestrictions, p.UnknownActionsBreak, p.Matching, p.InvalidTokens}
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.version, got, tt.want)
		}
		if p.Source == "" || !strings.HasPrefix(p.Source, "1.0a") {
			t.Errorf("%s: no source for the rules: %q", tt.version, p.Source)
		}
	}
	for _, v := range []string{"0.64", "0.1", "0.99.9"} {
		if _, err := ProfileForVersion(v); !errors.Is(err, ErrNoSignedTokens) {
			t.Errorf("%s: %v, want ErrNoSignedTokens", v, err)
		}
	}
}

// TestReleaseTables keeps the tables consistent with each other and with the newest
// release's list in actions.go.
func TestReleaseTables(t *testing.T) {
	for i := 1; i < len(rulesTable); i++ {
		if rulesTable[i-1].from.Compare(rulesTable[i].from) >= 0 {
			t.Errorf("rulesTable is not in release order at %s", rulesTable[i].from)
		}
	}
	if rulesTable[0].from != FirstSignedTokensRelease {
		t.Errorf("rulesTable starts at %s", rulesTable[0].from)
	}
	var names []string
	seen := map[string]bool{}
	for _, a := range actionTable {
		names = append(names, a.Name)
		for _, s := range []string{a.Name, a.Abbr} {
			if seen[s] {
				t.Errorf("%q is used twice", s)
			}
			seen[s] = true
		}
		if got, _ := Abbreviate(a.Name); got != a.Abbr {
			t.Errorf("%s: abbreviation %q here, %q in actions.go", a.Name, a.Abbr, got)
		}
	}
	if !slices.Equal(names, BuiltinActions()) {
		t.Errorf("actionTable names %v, want the newest release's %v", names, BuiltinActions())
	}
	if NewestProfile().Release != NewestKnownRelease || !NewestProfile().IsNewest() || !(*Profile)(nil).IsNewest() {
		t.Errorf("NewestProfile is not the newest")
	}
}

func TestProfileAbbreviate(t *testing.T) {
	for _, tt := range []struct {
		version, action, want string
		known                 bool
	}{
		{"1.0a2", "view-instance", "vi", true},
		{"1.0a2", "vi", "vi", false}, // abbreviations are not names: kept, and warned about
		{"1.0a2", "alter-table", "alter-table", false},
		{"1.0a8", "alter-table", "alter-table", false},
		{"1.0a9", "alter-table", "at", true},
		{"1.0a19", "set-column-type", "set-column-type", false},
		{"1.0a25", "set-column-type", "set-column-type", false},
		{"1.0a26", "set-column-type", "sct", true},
		{"1.0a30", "execute-write-sql", "execute-write-sql", false},
		{"1.0a31", "execute-write-sql", "ews", true},
		{"1.0a31", "store-query", "sq", true},
		{"1.0a35", "create-view", "create-view", false},
		{"1.0a36", "create-view", "cv", true},
		{"1.0a36", "drop-view", "dv", true},
		{"1.0a37", "View-Instance", "View-Instance", false},
		{"1.0a37", "upload-csvs", "upload-csvs", false},
	} {
		p, err := ProfileForVersion(tt.version)
		if err != nil {
			t.Fatal(err)
		}
		got, known := p.Abbreviate(tt.action)
		if got != tt.want || known != tt.known || p.KnowsName(tt.action) != tt.known {
			t.Errorf("%s Abbreviate(%q) = %q, %v; want %q, %v", tt.version, tt.action, got, known, tt.want, tt.known)
		}
	}
}

func TestProfilePayload(t *testing.T) {
	p := func(v string) *Profile {
		p, err := ProfileForVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	r := Restrictions{
		All:       []string{"view-instance", "alter-table"},
		Databases: []DatabaseActions{{"db", []string{"set-column-type", "execute-write-sql"}}},
		Resources: []ResourceActions{{"db", "t", []string{"drop-view", "insert-row", "plugin-x"}}},
	}
	for _, tt := range []struct {
		profile *Profile
		claims  Claims
		want    string
	}{
		{p("1.0a0"), Claims{Actor: "bot", IssuedAt: 5, ExpiresAfter: 60}, `{"a":"bot","token":"dstok","t":5,"d":60}`},
		{p("1.0a1"), Claims{Actor: "bot", IssuedAt: 5}, `{"a":"bot","token":"dstok","t":5}`},
		{p("1.0a2"), Claims{Actor: "bot", IssuedAt: 5}, `{"a":"bot","t":5}`},
		{p("1.0a2"), Claims{Actor: "bot", IssuedAt: 5, Restrictions: r},
			`{"a":"bot","t":5,"_r":{"a":["vi","alter-table"],"d":{"db":["set-column-type","execute-write-sql"]},"r":{"db":{"t":["drop-view","ir","plugin-x"]}}}}`},
		{p("1.0a19"), Claims{Actor: "bot", IssuedAt: 5, Restrictions: r},
			`{"a":"bot","t":5,"_r":{"a":["vi","at"],"d":{"db":["set-column-type","execute-write-sql"]},"r":{"db":{"t":["drop-view","ir","plugin-x"]}}}}`},
		{p("1.0a31"), Claims{Actor: "bot", IssuedAt: 5, Restrictions: r},
			`{"a":"bot","t":5,"_r":{"a":["vi","at"],"d":{"db":["sct","ews"]},"r":{"db":{"t":["drop-view","ir","plugin-x"]}}}}`},
		{p("1.0a37"), Claims{Actor: "bot", IssuedAt: 5, Restrictions: r},
			`{"a":"bot","t":5,"_r":{"a":["vi","at"],"d":{"db":["sct","ews"]},"r":{"db":{"t":["dv","ir","plugin-x"]}}}}`},
	} {
		c := tt.claims
		c.Profile = tt.profile
		if got := string(c.PayloadJSON()); got != tt.want {
			t.Errorf("%s: %s\nwant %s", tt.profile, got, tt.want)
		}
		// Signed, verified and compared under the same profile.
		m := NewMinter([]byte("s"))
		tok := m.Mint(c)
		if cmp := m.Compare(tok, c); !cmp.Canonical {
			t.Errorf("%s: Compare of its own token: %+v", tt.profile, cmp)
		}
		v, err := NewVerifier([]byte("s")).Verify(tok, VerifyOptions{Now: time.Unix(6, 0)})
		if err != nil || string(v.Payload) != tt.want {
			t.Errorf("%s: Verify: %v", tt.profile, err)
		}
	}
	// The newest profile mints what no profile mints, for every built-in action.
	all := Claims{Actor: "x", IssuedAt: 1, Restrictions: Restrictions{All: BuiltinActions(),
		Databases: []DatabaseActions{{"d", BuiltinActions()}}, Resources: []ResourceActions{{"d", "r", BuiltinActions()}}}}
	withNewest := all
	withNewest.Profile = NewestProfile()
	if a, b := string(all.PayloadJSON()), string(withNewest.PayloadJSON()); a != b {
		t.Errorf("the newest profile differs from none:\n%s\n%s", b, a)
	}
}

func TestProfileCheck(t *testing.T) {
	restricted := func(actions ...string) Restrictions {
		return Restrictions{Databases: []DatabaseActions{{"db", actions}}}
	}
	for _, tt := range []struct {
		version string
		plugins []PluginAction
		r       Restrictions
		action  string // the action refused; "-" for the restrictions as a whole; "" for none
		since   string
	}{
		{"1.0a0", nil, Restrictions{}, "", ""},
		{"1.0a0", nil, restricted("view-instance"), "-", ""},
		{"1.0a1", nil, Restrictions{All: []string{}}, "", ""},
		{"1.0a1", nil, Restrictions{Resources: []ResourceActions{{"d", "t", nil}}}, "-", ""},
		{"1.0a2", nil, restricted("set-column-type", "whatever"), "", ""},
		{"1.0a4", nil, restricted("alter-table"), "", ""},
		{"1.0a5", nil, restricted("alter-table"), "alter-table", "1.0a9"},
		{"1.0a8", nil, restricted("at"), "at", "1.0a9"},
		{"1.0a9", nil, restricted("at", "alter-table", "vi"), "", ""},
		{"1.0a19", nil, restricted("vi", "set-column-type"), "set-column-type", "1.0a26"},
		{"1.0a19", nil, restricted("sct"), "sct", "1.0a26"},
		{"1.0a19", nil, Restrictions{All: []string{"execute-write-sql"}}, "execute-write-sql", "1.0a31"},
		{"1.0a19", nil, restricted("upload-csvs"), "upload-csvs", ""},
		{"1.0a19", []PluginAction{{"upload-csvs", "uc"}}, restricted("upload-csvs", "uc"), "", ""},
		{"1.0a19", []PluginAction{{"upload-csvs", ""}}, restricted("upload-csvs", "uc"), "uc", ""},
		{"1.0a20", nil, restricted("set-column-type", "upload-csvs"), "", ""},
		{"1.0a37", nil, restricted("upload-csvs"), "", ""},
		{"1.0b1", nil, restricted("upload-csvs"), "", ""},
	} {
		p, err := ProfileForVersion(tt.version)
		if err != nil {
			t.Fatal(err)
		}
		if p, err = p.WithPluginActions(tt.plugins); err != nil {
			t.Fatal(err)
		}
		err = p.Check(tt.r)
		var u *UnsupportedError
		switch {
		case tt.action == "":
			if err != nil {
				t.Errorf("%s %+v: %v, want none", tt.version, tt.r, err)
			}
		case !errors.As(err, &u) || !errors.Is(err, ErrUnsupported):
			t.Errorf("%s %+v: %v, want an UnsupportedError", tt.version, tt.r, err)
		case tt.action == "-" && u.Action != "", tt.action != "-" && u.Action != tt.action:
			t.Errorf("%s %+v: action %q, want %q", tt.version, tt.r, u.Action, tt.action)
		case tt.since != "" && u.Since.String() != tt.since, tt.since == "" && u.Since != (Release{}):
			t.Errorf("%s %+v: since %s, want %q", tt.version, tt.r, u.Since, tt.since)
		default:
			msg := err.Error()
			if !strings.Contains(msg, "Datasette "+tt.version) || (u.Action != "" && !strings.Contains(msg, `"`+u.Action+`"`)) {
				t.Errorf("%s: message does not name the release and the action: %s", tt.version, msg)
			}
			// MintChecked refuses the same.
			if _, err := NewMinter([]byte("s")).MintChecked(Claims{Actor: "a", Restrictions: tt.r, Profile: p}); !errors.Is(err, ErrUnsupported) {
				t.Errorf("%s: MintChecked: %v", tt.version, err)
			}
		}
	}
}

func TestWithPluginActions(t *testing.T) {
	p, _ := ProfileForVersion("1.0a19")
	for _, tt := range []struct {
		plugins []PluginAction
		err     bool
	}{
		{[]PluginAction{{"upload-csvs", "uc"}, {"enrich", ""}}, false},
		{[]PluginAction{{"view-instance", "vix"}}, true},
		{[]PluginAction{{"x", "vi"}}, true},
		{[]PluginAction{{"vi", ""}}, true},
		{[]PluginAction{{"a", "b"}, {"c", "b"}}, true},
		{[]PluginAction{{"a", "b"}, {"b", ""}}, true},
		{[]PluginAction{{"a", "a"}}, true},
		{[]PluginAction{{"", "a"}}, true},
		{[]PluginAction{{strings.Repeat("x", 257), ""}}, true},
		{make([]PluginAction, MaxPluginActions+1), true},
		// set-column-type is not built into 1.0a19, so a plugin may register it.
		{[]PluginAction{{"set-column-type", "sct"}}, false},
	} {
		q, err := p.WithPluginActions(tt.plugins)
		if (err != nil) != tt.err {
			t.Errorf("%v: %v", tt.plugins, err)
			continue
		}
		if err != nil {
			continue
		}
		for _, a := range tt.plugins {
			want := a.Abbr
			if want == "" {
				want = a.Name
			}
			if got, known := q.Abbreviate(a.Name); got != want || !known {
				t.Errorf("%v: Abbreviate(%q) = %q, %v", tt.plugins, a.Name, got, known)
			}
		}
		if q.IsNewest() || len(p.Actions()) != 14 {
			t.Errorf("WithPluginActions changed its receiver or looks newest")
		}
	}
}

func TestProfileOutcome(t *testing.T) {
	m := NewMinter([]byte("s"))
	good := m.Mint(Claims{Actor: "a", IssuedAt: 100, Restrictions: Restrictions{All: []string{"vi"}}})
	expired := m.Mint(Claims{Actor: "a", IssuedAt: 100, ExpiresAfter: 1})
	noActor := "dstok_" + NewMinter([]byte("s")).signer.Sign([]byte(`{"t":1}`))
	wrongKey := NewMinter([]byte("other")).Mint(Claims{Actor: "a", IssuedAt: 100})
	v := NewVerifier([]byte("s"))
	at := VerifyOptions{Now: time.Unix(200, 0)}
	for _, tt := range []struct {
		token                 string
		a0, a2, a19, a35, a36 Outcome
	}{
		{good, OutcomeActor, OutcomeActor, OutcomeActor, OutcomeActor, OutcomeActor},
		{expired, OutcomeAnonymous, OutcomeAnonymous, OutcomeAnonymous, OutcomeAnonymous, OutcomeUnauthorized},
		{wrongKey, OutcomeAnonymous, OutcomeAnonymous, OutcomeAnonymous, OutcomeAnonymous, OutcomeUnauthorized},
		{"Bearer-ish", OutcomeAnonymous, OutcomeAnonymous, OutcomeAnonymous, OutcomeAnonymous, OutcomeAnonymous},
		{noActor, OutcomeServerError, OutcomeServerError, OutcomeServerError, OutcomeServerError, OutcomeServerError},
		{"dstok_" + strings.Repeat("x", MaxTokenSize), OutcomeUndetermined, OutcomeUndetermined, OutcomeUndetermined, OutcomeUndetermined, OutcomeUndetermined},
	} {
		_, err := v.Verify(tt.token, at)
		for i, want := range []Outcome{tt.a0, tt.a2, tt.a19, tt.a35, tt.a36} {
			version := []string{"1.0a0", "1.0a2", "1.0a19", "1.0a35", "1.0a36"}[i]
			p, _ := ProfileForVersion(version)
			if got := p.Outcome(err); got != want {
				t.Errorf("%s, token %.20s: %s, want %s", version, tt.token, got, want)
			}
		}
	}
	vr, err := v.Verify(good, at)
	if err != nil {
		t.Fatal(err)
	}
	for version, want := range map[string]string{
		"1.0a0":  `{"id":"a","token":"dstok"}`,
		"1.0a1":  `{"id":"a","token":"dstok"}`,
		"1.0a2":  `{"id":"a","token":"dstok","_r":{"a":["vi"]}}`,
		"1.0a37": `{"id":"a","token":"dstok","_r":{"a":["vi"]}}`,
	} {
		p, _ := ProfileForVersion(version)
		if got, _ := p.Actor(vr).MarshalJSON(); string(got) != want {
			t.Errorf("%s: actor %s, want %s", version, got, want)
		}
	}
}
