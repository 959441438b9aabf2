package controllers

import (
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

func TestSignerRelease(t *testing.T) {
	plugin := func(name, abbr string) datasettev1alpha1.PluginAction {
		return datasettev1alpha1.PluginAction{Name: name, Abbreviation: abbr}
	}
	for _, tt := range []struct {
		name     string
		settings datasettev1alpha1.SignerSettings
		release  string // "" for nil (the newest)
		err      string
	}{
		{name: "nothing: the newest", settings: datasettev1alpha1.SignerSettings{}},
		{name: "a version", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a19"}, release: "1.0a19"},
		{name: "a later release", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.2"}, release: "1.2"},
		{name: "plugins on the newest", settings: datasettev1alpha1.SignerSettings{PluginActions: []datasettev1alpha1.PluginAction{plugin("upload-csvs", "uc")}},
			release: "1.0a37"},
		{name: "before signed tokens", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "0.64"}, err: `spec.datasetteVersion "0.64"`},
		{name: "not a version", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "latest"}, err: `spec.datasetteVersion "latest"`},
		{name: "a plugin takes a built-in abbreviation", settings: datasettev1alpha1.SignerSettings{DatasetteVersion: "1.0a19",
			PluginActions: []datasettev1alpha1.PluginAction{plugin("upload-csvs", "vi")}}, err: "spec.pluginActions"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := SignerRelease(tt.settings)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case tt.release == "" && p != nil, tt.release != "" && (p == nil || p.Release.String() != tt.release):
				t.Fatalf("release %v, want %q", p, tt.release)
			}
		})
	}
}

// TestDecideRelease: a token of a signer with a datasetteVersion is minted as that release's
// create-token mints it, or refused (UnsupportedByDatasette, Stalled, nothing written).
func TestDecideRelease(t *testing.T) {
	f := newDecideFixture(t)
	newest := f.token(f.key, f.want.claims)
	viaSigner := func(settings datasettev1alpha1.SignerSettings, r *dstoken.Restrictions) func(*gathered) {
		return func(in *gathered) {
			in.signing.viaSigner, in.signing.signerFound, in.signing.namespaceAllowed = true, true, true
			in.signing.source, in.signing.settings = `DatasetteSigner "instance"`, settings
			if r != nil {
				in.want.claims.Restrictions = *r
			}
			applyRelease(in)
		}
	}
	// probed is viaSigner for a signer whose probe found its instance running discovered.
	probed := func(settings datasettev1alpha1.SignerSettings, discovered string, r *dstoken.Restrictions) func(*gathered) {
		return func(in *gathered) {
			in.signing.instance = &datasettev1alpha1.InstanceStatus{Version: discovered}
			in.signing.viaSigner, in.signing.signerFound, in.signing.settings = true, true, settings
			applyInstance(in)
			viaSigner(in.signing.settings, r)(in)
		}
	}
	version := func(v string, plugins ...datasettev1alpha1.PluginAction) datasettev1alpha1.SignerSettings {
		return datasettev1alpha1.SignerSettings{DatasetteVersion: v, PluginActions: plugins}
	}
	db := func(actions ...string) *dstoken.Restrictions {
		return &dstoken.Restrictions{Databases: []dstoken.DatabaseActions{{Database: "db", Actions: actions}}}
	}
	none := &dstoken.Restrictions{}
	for _, tt := range []struct {
		name     string
		token    string
		gather   func(*gathered)
		mint     mintReason
		reason   string
		payload  string // the minted payload, without "t" and "d"
		messages []string
	}{
		{name: "1.0a0 refuses restrictions", token: "-", gather: viaSigner(version("1.0a0"), nil), reason: datasettev1alpha1.ReasonUnsupportedByDatasette,
			messages: []string{`DatasetteSigner "instance"`, "1.0a0", "ignores token restrictions"}},
		{name: "1.0a1 refuses them, keeping what it has", token: newest, gather: viaSigner(version("1.0a1"), nil), reason: datasettev1alpha1.ReasonUnsupportedByDatasette},
		{name: "1.0a0 mints unrestricted tokens with its token key", token: "-", gather: viaSigner(version("1.0a0"), none), mint: mintIssue,
			reason: datasettev1alpha1.ReasonIssued, payload: `{"a":"bot","token":"dstok",`},
		{name: "1.0a19 refuses an action it does not know", token: "-", gather: viaSigner(version("1.0a19"), db("view-database", "set-column-type")),
			reason: datasettev1alpha1.ReasonUnsupportedByDatasette, messages: []string{"1.0a19", `"set-column-type"`, "HTTP 500", "1.0a26"}},
		{name: "1.0a19 refuses a plugin action it was not told of", token: "-", gather: viaSigner(version("1.0a19"), db("upload-csvs")),
			reason: datasettev1alpha1.ReasonUnsupportedByDatasette, messages: []string{`"upload-csvs"`, "pluginActions"}},
		{name: "1.0a19 takes a plugin action it was told of", token: "-",
			gather: viaSigner(version("1.0a19", datasettev1alpha1.PluginAction{Name: "upload-csvs", Abbreviation: "uc"}), db("upload-csvs", "alter-table")),
			mint:   mintIssue, reason: datasettev1alpha1.ReasonIssued, payload: `"_r":{"d":{"db":["uc","at"]}}`},
		{name: "1.0a8 refuses alter-table", token: "-", gather: viaSigner(version("1.0a8"), db("alter-table")), reason: datasettev1alpha1.ReasonUnsupportedByDatasette,
			messages: []string{`"alter-table"`, "1.0a9"}},
		{name: "1.0a20 writes set-column-type in full", token: "-", gather: viaSigner(version("1.0a20"), db("set-column-type")),
			mint: mintIssue, reason: datasettev1alpha1.ReasonIssued, payload: `"_r":{"d":{"db":["set-column-type"]}}`},
		{name: "a token abbreviated for the newest is re-minted for 1.0a25", token: f.token(f.key, dstoken.Claims{Actor: "bot", ExpiresAfter: 3600, Restrictions: *db("set-column-type")}),
			gather: viaSigner(version("1.0a25"), db("set-column-type")), mint: mintIssue, reason: datasettev1alpha1.ReasonIssued, payload: `"_r":{"d":{"db":["set-column-type"]}}`},
		{name: "the newest release keeps today's token", token: newest, gather: viaSigner(version("1.0a37"), nil), reason: datasettev1alpha1.ReasonIssued},
		{name: "a later release keeps it too", token: newest, gather: viaSigner(version("1.1"), nil), reason: datasettev1alpha1.ReasonIssued},
		{name: "a release without signed tokens", token: "-", gather: viaSigner(version("0.64"), none), reason: datasettev1alpha1.ReasonUnsupportedByDatasette,
			messages: []string{"spec.datasetteVersion", "0.64", "no signed API tokens"}},
		{name: "plugin actions that clash", token: "-", gather: viaSigner(version("1.0a37", datasettev1alpha1.PluginAction{Name: "vi"}), nil),
			reason: datasettev1alpha1.ReasonUnsupportedByDatasette, messages: []string{"spec.pluginActions", `"vi"`}},
		{name: "declared 1.0a37, probed 1.0a0: restrictions refused", token: "-", gather: probed(version("1.0a37"), "1.0a0", nil),
			reason: datasettev1alpha1.ReasonUnsupportedByDatasette, messages: []string{"1.0a0", "ignores token restrictions"}},
		{name: "declared 1.0a37, probed 1.0a19: minted for 1.0a19", token: "-", gather: probed(version("1.0a37"), "1.0a19", db("set-column-type")),
			reason: datasettev1alpha1.ReasonUnsupportedByDatasette, messages: []string{"1.0a19", `"set-column-type"`}},
		{name: "a release the operator cannot read refuses restrictions", token: "-", gather: probed(version("1.0a37"), "1.0a1+deb12", nil),
			reason: datasettev1alpha1.ReasonUnsupportedByDatasette, messages: []string{`"1.0a1+deb12"`, "cannot read", "restrictions"}},
		{name: "a post release refuses them too", token: newest, gather: probed(version(""), "1.0a1.post1", nil),
			reason: datasettev1alpha1.ReasonUnsupportedByDatasette, messages: []string{`"1.0a1.post1"`}},
		{name: "a release the operator cannot read still gets an unrestricted token", token: "-", gather: probed(version(""), "1.0a1+deb12", none),
			mint: mintIssue, reason: datasettev1alpha1.ReasonIssued, payload: `{"a":"bot","t":`},
		{name: "a signing Secret keeps the newest release", token: "-", gather: func(in *gathered) {
			in.signing.settings = version("1.0a0") // not read: no signer
			applyRelease(in)
		}, mint: mintIssue, reason: datasettev1alpha1.ReasonIssued, payload: `{"a":"bot","t":`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := f.gathered(tt.token, f.minter)
			tt.gather(in)
			p := decide(in, f.t0)
			if p.mint != tt.mint || p.readiness.reason != tt.reason {
				t.Fatalf("decide = mint %q, %s; want %q, %s: %s", p.mint, p.readiness.reason, tt.mint, tt.reason, p.readiness.message)
			}
			if tt.reason == datasettev1alpha1.ReasonUnsupportedByDatasette {
				if p.readiness.severity != stalled || p.mint != noMint || (p.token != "" && p.token != tt.token) {
					t.Errorf("a refusal must be Stalled and write nothing: %+v", p)
				}
			}
			for _, m := range tt.messages {
				if !strings.Contains(p.readiness.message, m) {
					t.Errorf("message %q does not contain %q", p.readiness.message, m)
				}
			}
			if tt.payload != "" {
				d, err := dstoken.Decode(p.token)
				if err != nil || !strings.Contains(string(d.Payload), tt.payload) {
					t.Errorf("payload %s (%v), want it to contain %s", d.Payload, err, tt.payload)
				}
				// Kept next time: the comparison uses the same release.
				next := f.gathered(p.token, f.minter)
				tt.gather(next)
				if q := decide(next, f.t0); q.mint != noMint {
					t.Errorf("the minted token is not kept: %q", q.mint)
				}
			}
		})
	}
	if _, err := dstoken.NewMinter(f.key).MintChecked(dstoken.Claims{Actor: "a", Restrictions: *db("x"), Profile: mustProfile(t, "1.0a19")}); !errors.Is(err, dstoken.ErrUnsupported) {
		t.Errorf("MintChecked for 1.0a19 with an unknown action: %v", err)
	}
}

func mustProfile(t *testing.T, v string) *dstoken.Profile {
	t.Helper()
	p, err := dstoken.ProfileForVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignerDatasetteVersionChange: a signer's datasetteVersion is validated at admission, and
// changing it re-mints its tokens for the new release or refuses them (nothing rewritten).
func TestSignerDatasetteVersionChange(t *testing.T) {
	requireEnvtest(t)
	ns := newNamespace(t)
	startManager(t, ns)
	signingSecret(t, ns, "datasette", "release-key")

	for _, bad := range []string{"latest", "v1.0a19", "1.0a19 ", "1.0alpha19", "1.0a" + strings.Repeat("1", 40)} {
		s := &datasettev1alpha1.DatasetteSigner{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"},
			Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
				SignerSettings: datasettev1alpha1.SignerSettings{DatasetteVersion: bad}},
		}
		if err := k8sClient.Create(ctx, s); err == nil || !strings.Contains(err.Error(), "datasetteVersion") {
			t.Errorf("datasetteVersion %q admitted: %v", bad, err)
		}
	}
	tooMany := make([]datasettev1alpha1.PluginAction, 65)
	for i := range tooMany {
		tooMany[i].Name = "p" + strings.Repeat("x", i)
	}
	if err := k8sClient.Create(ctx, &datasettev1alpha1.DatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plugins"},
		Spec: datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"},
			SignerSettings: datasettev1alpha1.SignerSettings{PluginActions: tooMany}},
	}); err == nil {
		t.Errorf("65 plugin actions admitted")
	}

	signer := &datasettev1alpha1.DatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "instance"},
		Spec:       datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "datasette"}},
	}
	create(t, signer)
	tok := &datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "etl"},
		Spec: datasettev1alpha1.DatasetteTokenSpec{
			Actor:     "etl",
			SignerRef: &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "instance"},
			Restrictions: &datasettev1alpha1.Restrictions{Databases: []datasettev1alpha1.DatabaseRestriction{
				{Name: "db", Actions: []datasettev1alpha1.Action{"view-database", "set-column-type"}}}},
		},
	}
	create(t, tok)
	key := client.ObjectKeyFromObject(tok)
	payload := func() string {
		d, err := dstoken.Decode(tokenOf(t, key))
		if err != nil {
			t.Fatal(err)
		}
		return string(d.Payload)
	}
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	if p := payload(); !strings.Contains(p, `["vd","sct"]`) {
		t.Fatalf("newest release: payload %s", p)
	}

	setVersion := func(v string) {
		t.Helper()
		var cur datasettev1alpha1.DatasetteSigner
		NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(signer), &cur)).To(Succeed())
		cur.Spec.DatasetteVersion = v
		NewWithT(t).Expect(k8sClient.Update(ctx, &cur)).To(Succeed())
	}
	setVersion("1.0a25")
	NewWithT(t).Eventually(payload, eventually, poll).Should(ContainSubstring(`["vd","set-column-type"]`))
	waitReason(t, key, datasettev1alpha1.ReasonIssued)
	kept := tokenOf(t, key)

	setVersion("1.0a19")
	got := waitReason(t, key, datasettev1alpha1.ReasonUnsupportedByDatasette)
	c := meta.FindStatusCondition(got.Status.Conditions, datasettev1alpha1.ConditionReady)
	if !strings.Contains(c.Message, `DatasetteSigner "instance" is for 1.0a19`) || !strings.Contains(c.Message, `"set-column-type"`) ||
		!meta.IsStatusConditionTrue(got.Status.Conditions, datasettev1alpha1.ConditionStalled) {
		t.Errorf("refusal: %q, %+v", c.Message, got.Status.Conditions)
	}
	if tokenOf(t, key) != kept {
		t.Errorf("a refusal rewrote the Secret")
	}
	if e := waitEvent(t, ns, "etl", datasettev1alpha1.ReasonUnsupportedByDatasette); !strings.Contains(e.Note, "1.0a19") {
		t.Errorf("event %q does not name the release", e.Note)
	}
}

func TestUnknownActionsNote(t *testing.T) {
	withPlugin, err := mustProfile(t, "1.0a37").WithPluginActions([]dstoken.PluginAction{{Name: "upload-csvs", Abbr: "uc"}})
	if err != nil {
		t.Fatal(err)
	}
	r := dstoken.Restrictions{All: []string{"view-instance", "upload-csvs"}, Databases: []dstoken.DatabaseActions{{Database: "d", Actions: []string{"set-column-type"}}}}
	for _, tt := range []struct {
		name    string
		release *dstoken.Profile
		want    string
	}{
		{"newest", nil, "Actions upload-csvs are not Datasette built-ins"},
		{"a plugin action the signer declares", withPlugin, ""},
		{"an older release", mustProfile(t, "1.0a2"), "Actions upload-csvs, set-column-type are not known to Datasette 1.0a2"},
	} {
		got := unknownActionsNote(tt.release, r)
		if (tt.want == "") != (got == "") || !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %q, want %q...", tt.name, got, tt.want)
		}
	}
}
