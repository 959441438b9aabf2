package kubectlplugin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// TestTableIsTerminalSafe: whoever may write a DatasetteToken's spec or status cannot send escape
// sequences to the terminal of whoever runs status, nor blow up its table.
func TestTableIsTerminalSafe(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	issued := metav1.NewTime(now.Add(-time.Hour))
	tok := datasettev1alpha1.DatasetteToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t"},
		Spec:       datasettev1alpha1.DatasetteTokenSpec{Actor: "evil\x1b[2J\x1b]0;pwned\x07" + strings.Repeat("x", 1000)},
		Status: datasettev1alpha1.DatasetteTokenStatus{
			IssuedAt:   &issued,
			Conditions: []metav1.Condition{{Type: "Ready", Status: "False", Reason: "Bad", Message: "line\nbreak\u009b31m"}},
		},
	}
	var out bytes.Buffer
	if err := writeTable(&out, []datasettev1alpha1.DatasetteToken{tok}, true, true, now); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.ContainsAny(s, "\x1b\x07\u009b") || strings.Count(s, "\n") != 2 || !strings.Contains(s, `line\nbreak\u009b31m`) {
		t.Errorf("unsafe table:\n%q", s)
	}
	if !strings.Contains(s, `evil\u001b[2J\u001b]0;pwned\u0007xxx`) || strings.Contains(s, strings.Repeat("x", 100)) {
		t.Errorf("actor not cleaned and cut:\n%s", s)
	}
	if !strings.Contains(s, "60m ago") {
		t.Errorf("issued not relative:\n%s", s)
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    *metav1.Time
		want string
	}{
		{nil, "-"},
		{&metav1.Time{}, "-"},
		{&metav1.Time{Time: now.Add(90 * time.Minute)}, "in 90m"},
		{&metav1.Time{Time: now.Add(-3 * 24 * time.Hour)}, "3d ago"},
	} {
		if got := relative(tc.t, now); got != tc.want {
			t.Errorf("relative(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}
