package controllers

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// eventsAbout lists the events of namespace about the object name with reason.
func eventsAbout(t *testing.T, ns, name, reason string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("listing events: %v", err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// eventCount counts the events of namespace about the object name with reason.
func eventCount(t *testing.T, ns, name, reason string) int {
	t.Helper()
	return len(eventsAbout(t, ns, name, reason))
}

var summaryCount = regexp.MustCompile(`^(re-minted|renewed) (\d+) tokens? of DatasetteTokens `)

// summarizedCount adds up the tokens counted by the summary events with reason about the object
// kind/name in namespace.
func summarizedCount(t *testing.T, ns, kind, name, reason string) int {
	t.Helper()
	total := 0
	for _, e := range eventsAbout(t, ns, name, reason) {
		if e.Regarding.Kind != kind {
			continue
		}
		m := summaryCount.FindStringSubmatch(e.Note)
		if m == nil {
			t.Fatalf("summary event note %q does not start with a count", e.Note)
		}
		n, _ := strconv.Atoi(m[2])
		total += n
	}
	return total
}

func TestSummaryTargetOf(t *testing.T) {
	tok := func(spec datasettev1alpha1.DatasetteTokenSpec) *datasettev1alpha1.DatasetteToken {
		return &datasettev1alpha1.DatasetteToken{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "t"}, Spec: spec}
	}
	cases := []struct {
		name string
		spec datasettev1alpha1.DatasetteTokenSpec
		want summaryTarget
	}{
		{"signing Secret", datasettev1alpha1.DatasetteTokenSpec{SigningSecretRef: &datasettev1alpha1.SecretKeyRef{Name: "k"}},
			summaryTarget{kind: "Secret", namespace: "team", name: "k"}},
		{"DatasetteSigner", datasettev1alpha1.DatasetteTokenSpec{SignerRef: &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.DatasetteSignerKind, Name: "s"}},
			summaryTarget{kind: datasettev1alpha1.DatasetteSignerKind, namespace: "team", name: "s"}},
		{"ClusterDatasetteSigner", datasettev1alpha1.DatasetteTokenSpec{SignerRef: &datasettev1alpha1.SignerReference{Kind: datasettev1alpha1.ClusterDatasetteSignerKind, Name: "c"}},
			summaryTarget{kind: datasettev1alpha1.ClusterDatasetteSignerKind, name: "c"}},
		{"neither", datasettev1alpha1.DatasetteTokenSpec{}, summaryTarget{}},
	}
	for _, c := range cases {
		if got := summaryTargetOf(tok(c.spec)); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestMintSummaries(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	secret := summaryTarget{kind: "Secret", namespace: "a", name: "datasette"}
	signer := summaryTarget{kind: datasettev1alpha1.ClusterDatasetteSignerKind, name: "prod"}
	var s mintSummaries

	if s.add(summaryTarget{}, mintRotation, "a", t0) {
		t.Errorf("a mint without a target was summarized")
	}
	for i := range 2000 {
		if !s.add(secret, mintRotation, "a", t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("mint %d not summarized", i)
		}
	}
	for i := range 20 {
		s.add(signer, mintRotation, fmt.Sprintf("ns-%02d", i), t0)
	}
	s.add(signer, mintRenewal, "b", t0)

	if got := s.due(t0.Add(2*time.Second-time.Millisecond), false); len(got) != 0 {
		t.Errorf("due 1.999 s after the signer's mints: %+v", got)
	}
	got := s.due(t0.Add(2*time.Second), false) // quiet for 2 s: the signer's two, not the Secret's
	if len(got) != 2 {
		t.Fatalf("%d summaries due, want the signer's 2: %+v", len(got), got)
	}
	for _, sum := range got {
		checkSignerSummary(t, sum, signer)
	}
	got = s.due(t0.Add(4*time.Second), false)
	if len(got) != 1 || got[0].count != 2000 || got[0].target != secret || len(got[0].namespaces) != 1 {
		t.Fatalf("the Secret's summary: %+v", got)
	}
	if !strings.HasPrefix(got[0].note(), "re-minted 2000 tokens of DatasetteTokens signed with this Secret's previous key (key rotation), in namespace(s) a, over 1.999s") {
		t.Errorf("note %q", got[0].note())
	}
	if len(s.pending) != 0 {
		t.Errorf("%d summaries left behind", len(s.pending))
	}
}

func TestMintSummariesMaxAgeAndBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	secret := summaryTarget{kind: "Secret", namespace: "a", name: "datasette"}
	var s mintSummaries

	// Mints that keep coming are told after summaryMaxAge.
	for i := range 11 {
		s.add(secret, mintRenewal, "a", t0.Add(time.Duration(i)*time.Second))
	}
	if got := s.due(t0.Add(10*time.Second), false); len(got) != 1 || got[0].count != 11 {
		t.Errorf("a summary held for summaryMaxAge: %+v", got)
	}

	// Bounded: past maxSummaries, a mint is told on its own.
	for i := range maxSummaries {
		if !s.add(summaryTarget{kind: "Secret", namespace: "a", name: fmt.Sprint(i)}, mintRotation, "a", t0) {
			t.Fatalf("summary %d refused", i)
		}
	}
	if s.add(summaryTarget{kind: "Secret", namespace: "a", name: "one-more"}, mintRotation, "a", t0) {
		t.Errorf("summary %d accepted", maxSummaries+1)
	}
	if !s.add(summaryTarget{kind: "Secret", namespace: "a", name: "0"}, mintRotation, "a", t0) {
		t.Errorf("a mint for a pending summary refused at the bound")
	}
	if got := s.due(t0, true); len(got) != maxSummaries {
		t.Errorf("flushing all: %d summaries, want %d", len(got), maxSummaries)
	}
}

func TestSummarized(t *testing.T) {
	for reason, want := range map[mintReason]bool{mintRotation: true, mintRenewal: true, mintIssue: false, mintRepair: false, mintManual: false, noMint: false} {
		if summarized(reason) != want {
			t.Errorf("summarized(%q) = %v, want %v", reason, !want, want)
		}
	}
}

// checkSignerSummary checks a summary of TestMintSummaries' signer.
func checkSignerSummary(t *testing.T, sum summary, signer summaryTarget) {
	t.Helper()
	if sum.target != signer {
		t.Errorf("summary of %+v due early", sum.target)
	}
	if sum.reason != mintRotation {
		if sum.note() != "renewed 1 token of DatasetteTokens at their renewal time, over 0s" || sum.eventReason() != "TokensRenewed" {
			t.Errorf("renewal note %q, reason %s", sum.note(), sum.eventReason())
		}
		return
	}
	// A ClusterDatasetteSigner's events land in "default": they name no tenant namespace.
	if sum.count != 20 || len(sum.namespaces) != 0 || sum.moreNamespaces {
		t.Errorf("cluster signer rotation summary: %+v; want 20 tokens and no namespaces kept", sum)
	}
	if !strings.HasPrefix(sum.note(), "re-minted 20 tokens of DatasetteTokens signed with the previous key of this signer's Secret") ||
		strings.Contains(sum.note(), "ns-") || strings.Contains(sum.note(), "namespace") || sum.eventReason() != "TokensReminted" {
		t.Errorf("note %q, reason %s; want no namespace named", sum.note(), sum.eventReason())
	}
}

// TestNamespacedSignerSummaryNamesNamespaces: a DatasetteSigner's summary, in the tenant's own
// namespace, still says where its tokens are.
func TestNamespacedSignerSummaryNamesNamespaces(t *testing.T) {
	var s mintSummaries
	signer := summaryTarget{kind: datasettev1alpha1.DatasetteSignerKind, namespace: "team", name: "s"}
	s.add(signer, mintRotation, "team", time.Unix(0, 0))
	got := s.due(time.Unix(0, 0), true)
	if len(got) != 1 || got[0].note() != "re-minted 1 token of DatasetteTokens signed with the previous key of this signer's Secret (key rotation), in namespace(s) team, over 0s" {
		t.Errorf("summaries %+v", got)
	}
}
