package cli

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/internal/testenv"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/itsdangerous"
)

// releaseForms are create-token argument lists (after the actor ID and --secret) that every
// release from 1.0a2 on takes.
var releaseForms = [][]string{
	{},
	{"-e", "3600"},
	{"-e", "0"},
	{"-e", "-5"},
	{"--debug"},
	{"-a", "view-instance"},
	{"-a", "vi"},
	{"-a", "view-instance", "-a", "view-instance"},
	{"-d", "db", "view-database", "-d", "db", "execute-sql", "-d", "other", "create-table", "-d", "db", "view-database-download"},
	{"-r", "db", "t", "insert-row", "-r", "db", "t", "update-row", "-r", "db", "q", "view-query", "-r", "other", "t", "delete-row", "-r", "db", "t", "drop-table"},
	{"-a", "permissions-debug", "-a", "debug-menu", "-d", "db", "view-table"},
	{"-d", "db", "set-column-type"},
	{"-r", "db", "t", "alter-table"},
	{"-d", "db", "execute-write-sql", "-d", "db", "store-query", "-r", "db", "q", "update-query", "-r", "db", "q", "delete-query"},
	{"-d", "db", "create-view", "-r", "db", "v", "drop-view"},
	{"-a", "upload-csvs", "-d", "db", "sct"},
	{"--debug", "-e", "60", "-a", "view-instance", "-d", "db", "view-database", "-r", "db", "t", "alter-table"},
	{"-d", "data base", "view-database", "-r", "dätä", "tab\"le ☃", "insert-row", "-r", "dätä", "tab\"le ☃", "sct"},
	{"-e", "soon"},
	{"-d", "db"},
	{"-r", "db", "t"},
	{"--plugins-dir", "/nonexistent-plugins"},
	{"--nope"},
}

// releaseFormsA0 are forms for 1.0a0 and 1.0a1, whose create-token has only --secret, -e and
// --debug: the restriction options are refused.
var releaseFormsA0 = [][]string{
	{},
	{"-e", "60"},
	{"-e", "0"},
	{"--debug"},
	{"--debug", "-e", "86400"},
	{"-e", "soon"},
	{"-a", "view-instance"},
	{"--all", "view-instance"},
	{"-d", "db", "view-database"},
	{"--database", "db", "view-database"},
	{"-r", "db", "t", "view-table"},
	{"--resource", "db", "t", "view-table"},
	{"--plugins-dir", "."},
}

// allBuiltins asks for every action the newest release knows, so that each release's own
// abbreviations (and its warnings for the others) are compared.
func allBuiltins() []string {
	args := make([]string, 0, 2*len(dstoken.BuiltinActions()))
	for _, a := range dstoken.BuiltinActions() {
		args = append(args, "-a", a)
	}
	return args
}

// TestCreateTokenAgainstRealReleases runs each real release's own `datasette create-token` and
// `datasette-token create-token --datasette-version` on the same arguments: the same exit
// status; stdout byte for byte (the token, compressed or not, and --debug's output) at the
// release's issue time; the
// release's stderr, to which datasette-token adds only its own "Warning: Datasette ..." line,
// given exactly when the release would misread the token.
func TestCreateTokenAgainstRealReleases(t *testing.T) {
	if testenv.DatasetteReleasesDir() == "" {
		t.Skip(testenv.DatasetteHowTo)
	}
	type job struct {
		version string
		args    []string
	}
	jobs := make([]job, 0, 4*len(releaseForms))
	for _, v := range []string{"1.0a0", "1.0a2", "1.0a19", "1.0a37"} {
		forms := releaseForms
		if v == "1.0a0" {
			forms = releaseFormsA0
		} else {
			forms = append(forms[:len(forms):len(forms)], allBuiltins())
		}
		for _, f := range forms {
			jobs = append(jobs, job{v, f})
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		checked = map[string]int{}
		limit   = make(chan struct{}, 4)
	)
	for _, j := range jobs {
		r := testenv.Datasette(t, j.version)
		wg.Add(1)
		limit <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-limit }()
			if compareCreateToken(t, r, j.args) {
				mu.Lock()
				checked[j.version]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, v := range []string{"1.0a0", "1.0a2", "1.0a19", "1.0a37"} {
		t.Logf("Datasette %s: %d create-token argument forms give the release's own output", v, checked[v])
	}
}

// progName matches the program name in click's usage lines.
var progName = regexp.MustCompile(`(python3? -m datasette|datasette-token|datasette) create-token`)

// compareCreateToken compares one form; it reports whether it matched.
func compareCreateToken(t *testing.T, r *testenv.DatasetteRelease, args []string) bool {
	id := "ci-bot"
	if len(args) > 0 && args[0] == "-d" && args[1] == "data base" {
		id = "ünï 🙂 \"bot\""
	}
	full := append([]string{"create-token", id, "--secret", "s"}, args...)
	theirOut, theirErr, theirCode, err := r.Run(nil, full...)
	if err != nil {
		t.Error(err)
		return false
	}
	// Ours go before the form's arguments, so that an option missing its values there takes
	// none of them.
	ours := append([]string{}, full[:4]...)
	ours = append(ours, "--datasette-version", r.Version)
	token, _, _ := strings.Cut(theirOut, "\n")
	if theirCode == 0 {
		d, err := dstoken.Decode(token)
		if err != nil {
			t.Errorf("%s %q: the release printed %q: %v", r.Version, args, theirOut, err)
			return false
		}
		ours = append(ours, "--issued-at", strconv.FormatInt(d.Claims.IssuedAt, 10))
	}
	ours = append(ours, args...)
	got := runMain(ours, nil)
	fail := func(format string, a ...any) bool {
		t.Errorf("Datasette %s create-token %q: "+format, append([]any{r.Version, args}, a...)...)
		return false
	}
	if got.code != theirCode {
		return fail("exit status %d, the release's %d\nours: %q\ntheirs: %q", got.code, theirCode, got.stderr, theirErr)
	}

	// stderr: the release's, plus our one line when the release would misread the token.
	var extra []string
	var rest []string
	for _, line := range strings.SplitAfter(got.stderr, "\n") {
		if strings.HasPrefix(line, "Warning: Datasette "+r.Version+" ") {
			extra = append(extra, line)
		} else if line != "" {
			rest = append(rest, line)
		}
	}
	if progName.ReplaceAllString(strings.Join(rest, ""), "PROG create-token") != progName.ReplaceAllString(theirErr, "PROG create-token") {
		return fail("stderr\nours:   %q\ntheirs: %q", got.stderr, theirErr)
	}
	if theirCode != 0 {
		if got.stdout != theirOut {
			return fail("stdout %q, the release's %q", got.stdout, theirOut)
		}
		return true
	}
	p, _ := dstoken.ProfileForVersion(r.Version)
	o := NewCreateTokenOptions(IOStreams{Getenv: func(string) string { return "" }})
	if err := o.Complete(ours[1:]); err != nil {
		return fail("%v", err)
	}
	if misread := p.Check(o.Restrictions()) != nil; misread != (len(extra) == 1) || len(extra) > 1 {
		return fail("misread warning %q, want one: %v", extra, misread)
	}

	// stdout: byte for byte, compressed tokens included (pkg/itsdangerous compresses as
	// CPython's zlib does).
	if got.stdout != theirOut {
		ourToken, _, _ := strings.Cut(got.stdout, "\n")
		a, _ := dstoken.Decode(ourToken)
		b, _ := dstoken.Decode(token)
		if a != nil && b != nil && string(a.Payload) != string(b.Payload) {
			return fail("payload\nours:   %s\ntheirs: %s", a.Payload, b.Payload)
		}
		return fail("stdout\nours:   %q\ntheirs: %q", got.stdout, theirOut)
	}
	return true
}

// TestVerifyAgainstRealReleases sends tokens to each real release's /-/actor.json and checks
// that `datasette-token verify --datasette-version` gives the server's verdict: the same actor
// (without "_r" where the release ignores it), the request left anonymous, a 401 or a 500.
func TestVerifyAgainstRealReleases(t *testing.T) {
	if testenv.DatasetteReleasesDir() == "" {
		t.Skip(testenv.DatasetteHowTo)
	}
	const key = "verify-key"
	now := time.Now().Unix()
	signer := itsdangerous.NewSigner(dstoken.Salt, []byte(key))
	signed := func(payload string) string { return dstoken.Prefix + signer.Sign([]byte(payload)) }
	mint := func(c dstoken.Claims) string { return dstoken.NewMinter([]byte(key)).Mint(c) }
	restricted := dstoken.Restrictions{All: []string{"view-instance"}, Databases: []dstoken.DatabaseActions{{Database: "_memory", Actions: []string{"vd", "sct"}}}}
	tokens := []struct{ name, token string }{
		{"unrestricted", mint(dstoken.Claims{Actor: "bot", IssuedAt: now})},
		{"expiring", mint(dstoken.Claims{Actor: "bot", IssuedAt: now, ExpiresAfter: 3600})},
		{"restricted", mint(dstoken.Claims{Actor: "bot", IssuedAt: now, ExpiresAfter: 600, Restrictions: restricted})},
		{"1.0a0's payload", signed(fmt.Sprintf(`{"a":"bot","token":"dstok","t":%d}`, now))},
		{"actor not a string", signed(fmt.Sprintf(`{"a":{"id":7},"t":%d}`, now))},
		{"expired", mint(dstoken.Claims{Actor: "bot", IssuedAt: now - 100, ExpiresAfter: 10})},
		{"wrong key", dstoken.NewMinter([]byte("other")).Mint(dstoken.Claims{Actor: "bot", IssuedAt: now})},
		{"no timestamp", signed(`{"a":"bot"}`)},
		{"float timestamp", signed(`{"a":"bot","t":1.5}`)},
		{"string duration", signed(fmt.Sprintf(`{"a":"bot","t":%d,"d":"60"}`, now))},
		{"no actor", signed(fmt.Sprintf(`{"t":%d}`, now))},
		{"not a token", "abc"},
	}
	checked := map[string]int{}
	for _, v := range []string{"1.0a0", "1.0a2", "1.0a19", "1.0a37"} {
		s := testenv.Datasette(t, v).ServeT(t, key)
		for _, tok := range tokens {
			code, body, err := s.Get("/-/actor.json", tok.token)
			if err != nil {
				t.Fatal(err)
			}
			at := strconv.FormatInt(time.Now().Unix(), 10)
			got := runMain([]string{"verify", tok.token, "--secret", key, "--datasette-version", v, "--at", at}, nil)
			var server struct{ Actor json.RawMessage }
			if code == 200 && json.Unmarshal(body, &server) != nil {
				t.Fatalf("Datasette %s: actor.json %s", v, body)
			}
			line := strings.TrimSpace(got.stderr)
			var ok bool
			switch {
			case code == 500:
				ok = got.code == 1 && strings.Contains(line, "would fail with HTTP 500")
			case code == 401:
				ok = got.code == 1 && strings.Contains(line, "would reject this token (HTTP 401)")
			case code == 200 && string(server.Actor) == "null":
				ok = got.code == 1 && strings.Contains(line, "would ignore this token")
			case code == 200:
				ok = got.code == 0 && sameJSONText(server.Actor, []byte(got.stdout))
			}
			if !ok {
				t.Errorf("Datasette %s, %s token: the server answered %d %s; verify exited %d: %q %q", v, tok.name, code, body, got.code, got.stdout, got.stderr)
				continue
			}
			checked[v]++
		}
	}
	for _, v := range []string{"1.0a0", "1.0a2", "1.0a19", "1.0a37"} {
		t.Logf("Datasette %s: verify --datasette-version gave the server's verdict on %d tokens", v, checked[v])
	}
}

// sameJSONText reports whether a and b hold the same JSON value.
func sameJSONText(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
