package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/testenv"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// realReleases are the Datasette releases the real-release tests run, one of each era of the
// rules (see pkg/dstoken's release tables).
var realReleases = []string{"1.0a0", "1.0a2", "1.0a19", "1.0a37"}

// realProbes are the requests each token makes: view-instance, view-database, execute-sql
// (redirects followed, as a browser would).
var realProbes = []string{"/.json", "/_memory.json", "/_memory.json?sql=select+1"}

// refused marks a spec the operator refuses for a release (UnsupportedByDatasette).
var refused = []int(nil)

// realCase is a DatasetteToken spec and, per release, the status of each probe, or refused.
type realCase struct {
	name   string
	r      *datasettev1alpha1.Restrictions
	expect map[string][]int
}

func actionsOf(a ...string) []datasettev1alpha1.Action {
	out := make([]datasettev1alpha1.Action, len(a))
	for i, s := range a {
		out[i] = datasettev1alpha1.Action(s)
	}
	return out
}

// memoryDB restricts to all (instance-wide) and db (on the _memory database).
func memoryDB(all []string, db ...string) *datasettev1alpha1.Restrictions {
	r := &datasettev1alpha1.Restrictions{All: actionsOf(all...)}
	if len(db) > 0 {
		r.Databases = []datasettev1alpha1.DatabaseRestriction{{Name: "_memory", Actions: actionsOf(db...)}}
	}
	return r
}

// realCases: what each release does with each restriction, from its code (pkg/dstoken's
// tables): 1.0a0–a1 ignore "_r" (so the operator refuses every restriction); 1.0a2–a4 match an
// entry only at its own level; 1.0a5–a19 let database and table entries imply view-instance
// and view-database, and fail with a 500 on unknown names (so the operator refuses them);
// 1.0a20 onwards imply nothing, need also_requires (execute-sql needs view-database), and
// ignore unknown names.
var realCases = []realCase{
	{"open", nil, map[string][]int{
		"1.0a0": {200, 200, 200}, "1.0a2": {200, 200, 200}, "1.0a19": {200, 200, 200}, "1.0a37": {200, 200, 200}}},
	{"instance", memoryDB([]string{"view-instance"}), map[string][]int{
		"1.0a0": refused, "1.0a2": {200, 403, 403}, "1.0a19": {200, 403, 403}, "1.0a37": {200, 403, 403}}},
	{"db-view", memoryDB(nil, "view-database"), map[string][]int{
		"1.0a0": refused, "1.0a2": {403, 403, 403}, "1.0a19": {200, 200, 403}, "1.0a37": {403, 200, 403}}},
	{"db-sql", memoryDB(nil, "execute-sql"), map[string][]int{
		"1.0a0": refused, "1.0a2": {403, 403, 403}, "1.0a19": {200, 200, 200}, "1.0a37": {403, 403, 403}}},
	{"all-view-database", memoryDB([]string{"view-database"}), map[string][]int{
		"1.0a0": refused, "1.0a2": {403, 403, 403}, "1.0a19": {200, 200, 403}, "1.0a37": {403, 200, 403}}},
	{"full", memoryDB([]string{"view-instance"}, "view-database", "execute-sql"), map[string][]int{
		"1.0a0": refused, "1.0a2": {200, 200, 200}, "1.0a19": {200, 200, 200}, "1.0a37": {200, 200, 200}}},
	{"set-column-type", memoryDB([]string{"view-instance"}, "view-database", "set-column-type"), map[string][]int{
		"1.0a0": refused, "1.0a2": {200, 200, 403}, "1.0a19": refused, "1.0a37": {200, 200, 403}}},
	{"plugin-action", memoryDB([]string{"view-instance"}, "view-database", "upload-csvs"), map[string][]int{
		"1.0a0": refused, "1.0a2": {200, 200, 403}, "1.0a19": refused, "1.0a37": {200, 200, 403}}},
	{"abbreviations", &datasettev1alpha1.Restrictions{
		All:       actionsOf("view-instance", "debug-menu"),
		Resources: []datasettev1alpha1.ResourceRestriction{{Database: "_memory", Resource: "t", Actions: actionsOf("alter-table", "insert-row", "view-table")}},
	}, map[string][]int{
		"1.0a0": refused, "1.0a2": {200, 403, 403}, "1.0a19": {200, 200, 403}, "1.0a37": {200, 403, 403}}},
	{"table", &datasettev1alpha1.Restrictions{
		Resources: []datasettev1alpha1.ResourceRestriction{{Database: "_memory", Resource: "t", Actions: actionsOf("view-table")}},
	}, map[string][]int{
		"1.0a0": refused, "1.0a2": {403, 403, 403}, "1.0a19": {200, 200, 403}, "1.0a37": {403, 403, 403}}},
}

// TestRealDatasetteReleases: for a DatasetteSigner of each release, the operator mints what that
// release accepts as the actor and enforces as it should (never a 500), and refuses
// (UnsupportedByDatasette, nothing written) what it would misread; a control token minted
// anyway shows the misreading on the real server.
func TestRealDatasetteReleases(t *testing.T) {
	if testenv.DatasetteReleasesDir() == "" {
		t.Skip(testenv.DatasetteHowTo)
	}
	requireEnvtest(t)
	const key = "real-release-key"
	servers := startReleases(t, key)

	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", key)
	for _, v := range realReleases {
		create(t, &datasettev1alpha1.DatasetteSigner{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: signerName(v)},
			Spec: datasettev1alpha1.DatasetteSignerSpec{
				SecretRef:      datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{DatasetteVersion: v},
			},
		})
		for _, c := range realCases {
			create(t, &datasettev1alpha1.DatasetteToken{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tokenName(v, c.name)},
				Spec: datasettev1alpha1.DatasetteTokenSpec{
					Actor:        "bot-" + c.name,
					SignerRef:    &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: signerName(v)},
					ExpiresAfter: &metav1.Duration{Duration: time.Hour},
					Restrictions: c.r,
				},
			})
		}
	}

	checked := map[string]int{}
	var sameAsRelease []func()
	for _, v := range realReleases {
		s := servers[v]
		for _, c := range realCases {
			key := client.ObjectKey{Namespace: ns, Name: tokenName(v, c.name)}
			want, isRefused := c.expect[v], c.expect[v] == nil
			if isRefused {
				tok := waitReason(t, key, datasettev1alpha1.ReasonUnsupportedByDatasette)
				cond := meta.FindStatusCondition(tok.Status.Conditions, datasettev1alpha1.ConditionReady)
				if !strings.Contains(cond.Message, "Datasette "+v) || !meta.IsStatusConditionTrue(tok.Status.Conditions, datasettev1alpha1.ConditionStalled) {
					t.Errorf("%s %s: refusal %q does not name the release, or is not Stalled", v, c.name, cond.Message)
				}
				requireNoSecret(t, ns, key.Name)
				misread(t, s, v, key.Name, c.r)
				continue
			}
			waitReason(t, key, datasettev1alpha1.ReasonIssued)
			token := tokenOf(t, key)
			sameAsRelease = append(sameAsRelease, func() { sameAsCreateToken(t, v, "bot-"+c.name, c.r, token) })
			checkActor(t, s, v, c.name, token)
			got := make([]int, len(realProbes))
			for i, path := range realProbes {
				code, body, err := s.Get(path, token)
				if err != nil {
					t.Fatalf("%s %s %s: %v", v, c.name, path, err)
				}
				got[i] = code
				if code >= 500 {
					t.Errorf("%s %s %s: HTTP %d: %.200s", v, c.name, path, code, body)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Datasette %s, token %q: probes %v answered %v, want %v", v, c.name, realProbes, got, want)
			}
			checked[v]++
		}
	}
	// The release's own create-token, given the same spec, mints the same payload.
	var wg sync.WaitGroup
	limit := make(chan struct{}, 4)
	for _, f := range sameAsRelease {
		wg.Add(1)
		limit <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-limit }(); f() }()
	}
	wg.Wait()
	for _, v := range realReleases {
		t.Logf("Datasette %s: %d operator-minted tokens accepted as the actor and enforced as the release enforces them; %d refused (UnsupportedByDatasette)",
			v, checked[v], len(realCases)-checked[v])
	}
}

// startReleases starts every release's server at once, signing with key, and stops them when
// t ends.
func startReleases(t *testing.T, key string) map[string]*testenv.DatasetteServer {
	t.Helper()
	servers := map[string]*testenv.DatasetteServer{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, v := range realReleases {
		r := testenv.Datasette(t, v)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := r.Serve(key, 2*time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("Datasette %s: %v", v, err)
				return
			}
			servers[v] = s
		}()
	}
	wg.Wait()
	for _, s := range servers {
		t.Cleanup(s.Stop)
	}
	if t.Failed() {
		t.FailNow()
	}
	return servers
}

func signerName(version string) string { return "ds-" + strings.ReplaceAll(version, ".", "-") }

func tokenName(version, c string) string { return strings.ReplaceAll(version, ".", "-") + "-" + c }

// checkActor checks the release's /-/actor.json: the token's actor, with the token's "_r" (none
// for a release that ignores restrictions).
func checkActor(t *testing.T, s *testenv.DatasetteServer, version, name, token string) {
	t.Helper()
	code, body, err := s.Get("/-/actor.json", token)
	if err != nil || code != 200 {
		t.Fatalf("%s %s actor.json: %d %v %s", version, name, code, err, body)
	}
	var got struct {
		Actor map[string]json.RawMessage `json:"actor"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Actor == nil {
		t.Fatalf("%s %s: actor.json %s: %v (not accepted as the actor)", version, name, body, err)
	}
	if id := string(got.Actor["id"]); id != `"bot-`+name+`"` {
		t.Errorf("%s %s: actor id %s", version, name, id)
	}
	d, err := dstoken.Decode(token)
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(d.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	p, _ := dstoken.ProfileForVersion(version)
	wantR, hasR := payload["_r"]
	gotR, gotHasR := got.Actor["_r"]
	switch {
	case !p.EnforcesRestrictions && gotHasR:
		t.Errorf("%s %s: actor has _r %s", version, name, gotR)
	case p.EnforcesRestrictions && hasR != gotHasR:
		t.Errorf("%s %s: actor _r present %v, payload _r present %v", version, name, gotHasR, hasR)
	case hasR && gotHasR && !sameJSON(wantR, gotR):
		t.Errorf("%s %s: actor _r %s, payload _r %s", version, name, gotR, wantR)
	}
}

// misread mints anyway what the operator refused for a release, and shows the real server
// misreading it: a release that ignores restrictions accepts it without "_r" and lets it view
// the database it was not given; one that fails on unknown actions answers 500.
func misread(t *testing.T, s *testenv.DatasetteServer, version, name string, r *datasettev1alpha1.Restrictions) {
	t.Helper()
	p, _ := dstoken.ProfileForVersion(version)
	restrictions := restrictionsFromSpec(r)
	token := dstoken.NewMinter([]byte("real-release-key")).Mint(dstoken.Claims{
		Actor: "control-" + name, IssuedAt: time.Now().Unix(), Restrictions: restrictions, Profile: p})
	code, body, err := s.Get("/.json", token)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !p.EnforcesRestrictions:
		_, actor, _ := s.Get("/-/actor.json", token)
		if code != 200 || bytes.Contains(actor, []byte(`"_r"`)) {
			t.Errorf("%s %s: the control token was not read as unrestricted: /.json %d, actor %s", version, name, code, actor)
		}
	case p.UnknownActionsBreak:
		if code != 500 {
			t.Errorf("%s %s: the control token got %d, want the 500 the refusal avoids: %.200s", version, name, code, body)
		}
	}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// sameAsCreateToken runs the release's own `datasette create-token` for the spec (its -e, -a,
// -d and -r) and checks that it mints the operator's payload, but for the issue time.
func sameAsCreateToken(t *testing.T, version, actor string, r *datasettev1alpha1.Restrictions, token string, extra ...string) {
	args := append([]string{"create-token", actor, "-e", "3600"}, extra...)
	if r != nil {
		for _, a := range r.All {
			args = append(args, "-a", string(a))
		}
		for _, d := range r.Databases {
			for _, a := range d.Actions {
				args = append(args, "-d", d.Name, string(a))
			}
		}
		for _, res := range r.Resources {
			for _, a := range res.Actions {
				args = append(args, "-r", res.Database, res.Resource, string(a))
			}
		}
	}
	out, errOut, status, err := testenv.Datasette(t, version).Run([]string{"DATASETTE_SECRET=real-release-key"}, args...)
	if err != nil || status != 0 {
		t.Errorf("datasette %s %v: %d %v %s", version, args, status, err, errOut)
		return
	}
	theirs, err := dstoken.Decode(strings.TrimSpace(out))
	if err != nil {
		t.Errorf("datasette %s create-token printed %q: %v", version, out, err)
		return
	}
	ours, err := dstoken.Decode(token)
	if err != nil {
		t.Errorf("decode the operator's token: %v", err)
		return
	}
	if a, b := withoutIssuedAt(ours.Payload), withoutIssuedAt(theirs.Payload); a != b {
		t.Errorf("Datasette %s create-token %v mints\n%s\nthe operator minted\n%s", version, args[1:], b, a)
	}
}

// withoutIssuedAt replaces the "t" claim's digits with T.
func withoutIssuedAt(payload []byte) string {
	return issuedAtPattern.ReplaceAllString(string(payload), `"t":T`)
}

var issuedAtPattern = regexp.MustCompile(`"t":[0-9]+`)

// uploadPlugin is a Datasette 1.0a5–1.0a19 plugin registering the action upload-csvs (uc).
const uploadPlugin = `from datasette import hookimpl, Permission


@hookimpl
def register_permissions(datasette):
    return [Permission(name="upload-csvs", abbr="uc", description="Upload CSVs",
                       takes_database=True, takes_resource=False, default=False)]
`

// TestRealDatasettePluginActions: a 1.0a19 signer that lists its instance's plugin action in
// spec.pluginActions mints tokens naming it, abbreviated as the instance's own create-token
// (with the plugin) abbreviates it, and the instance, running the plugin, accepts them.
func TestRealDatasettePluginActions(t *testing.T) {
	if testenv.DatasetteReleasesDir() == "" {
		t.Skip(testenv.DatasetteHowTo)
	}
	requireEnvtest(t)
	const key = "real-release-key"
	plugins := t.TempDir()
	if err := os.WriteFile(filepath.Join(plugins, "upload.py"), []byte(uploadPlugin), 0o600); err != nil {
		t.Fatal(err)
	}
	server := testenv.Datasette(t, "1.0a19").ServeT(t, key, "--plugins-dir", plugins)

	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", key)
	create(t, &datasettev1alpha1.DatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "with-plugin"},
		Spec: datasettev1alpha1.DatasetteSignerSpec{
			SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
			SignerSettings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a19",
				PluginActions: []datasettev1alpha1.PluginAction{{Name: "upload-csvs", Abbreviation: "uc"}}},
		},
	})
	r := memoryDB([]string{"view-instance"}, "view-database", "upload-csvs")
	create(t, &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uploader"},
		Spec: datasettev1alpha1.DatasetteTokenSpec{
			Actor:        "bot-uploader",
			SignerRef:    &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "with-plugin"},
			ExpiresAfter: &metav1.Duration{Duration: time.Hour},
			Restrictions: r,
		},
	})
	k := client.ObjectKey{Namespace: ns, Name: "uploader"}
	waitReason(t, k, datasettev1alpha1.ReasonIssued)
	token := tokenOf(t, k)
	d, err := dstoken.Decode(token)
	if err != nil || !strings.Contains(string(d.Payload), `"_memory":["vd","uc"]`) {
		t.Fatalf("payload %s (%v)", d.Payload, err)
	}
	sameAsCreateToken(t, "1.0a19", "bot-uploader", r, token, "--plugins-dir", plugins)
	checkActor(t, server, "1.0a19", "uploader", token)
	for i, want := range []int{200, 200, 403} {
		code, body, err := server.Get(realProbes[i], token)
		if err != nil || code != want {
			t.Errorf("%s: %d %v %.200s, want %d", realProbes[i], code, err, body, want)
		}
	}
}
