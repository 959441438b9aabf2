package dsprobe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

// TestRefusedURLDoesNotEchoCredentials: a probe URL carrying userinfo is refused, and the
// refusal (which becomes the signer's condition message and an event) does not repeat the
// password, nor does the error for a URL that does not parse.
func TestRefusedURLDoesNotEchoCredentials(t *testing.T) {
	for _, raw := range []string{
		"http://admin:hunter2secret@127.0.0.1:1/",
		"https://hunter2secret@datasette.example/",
		"http://admin:hunter2secret@127.0.0.1:1/%zz",
		"http://admin:hunter2secret@[::1/",
	} {
		res := Probe(context.Background(), dstoken.NewMinter([]byte("k")), Config{URL: raw}, time.Now())
		if res.Verdict != Unreachable {
			t.Errorf("%s: verdict %s; want Unreachable", raw, res.Verdict)
		}
		if strings.Contains(res.Detail, "hunter2secret") {
			t.Errorf("the probe's Detail repeats the URL's credentials: %q", res.Detail)
		}
		if _, err := ValidateURL(raw); err == nil || strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("ValidateURL(%q) = %v; want an error without the credentials", raw, err)
		}
	}
}
