package kubectlplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/controllers"
	"github.com/datasette-token-operator/datasette-token-operator/internal/testenv"
)

const signingKey = "plugin-test-signing-key-0123456789"

var (
	// kubeconfig is a kubeconfig file for the envtest API server's administrator.
	kubeconfig string
	admin      client.Client
	// skip says why the envtest tests cannot run.
	skip string
	// startOnce starts the control plane and the operator for the first test that needs them;
	// stop stops them after the last.
	startOnce sync.Once
	stop      = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	stop()
	os.Exit(code)
}

// start starts envtest with the CRDs, writes a kubeconfig for it, and runs the operator in-process.
func start() error {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	assets := testenv.Assets(root)
	if assets == "" {
		if testenv.Required() {
			return errors.New("no control plane binaries: run `make envtest`")
		}
		skip = "no control plane binaries: run `make envtest`, or set KUBEBUILDER_ASSETS"
		return nil
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting envtest: %w", err)
	}
	stops := []func(){func() { _ = env.Stop() }}
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	user, err := env.AddUser(envtest.User{Name: "plugin-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kubectl-datasette-")
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = os.RemoveAll(dir) })
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = datasettev1alpha1.AddToScheme(scheme)
	if admin, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}

	// The operator, in-process, wired as cmd/manager wires it.
	skipNames := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(),
		Controller:             config.Controller{SkipNameValidation: &skipNames},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := (&controllers.DatasetteTokenReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("datasette-token-operator"),
		MaxConcurrentReconciles: 4,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "the manager stopped:", err)
		}
	}()
	stops = append(stops, func() { cancel(); <-done })
	return nil
}

func requireEnvtest(t *testing.T) {
	t.Helper()
	var err error
	startOnce.Do(func() { err = start() })
	if err != nil {
		skip = "the control plane did not start"
		t.Fatal(err)
	}
	if skip != "" {
		t.Skip(skip)
	}
}

// run runs kubectl-datasette with args and the envtest kubeconfig, and returns what it printed.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append(args, "--kubeconfig", kubeconfig))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// setup creates a namespace with a signing Secret and the named tokens (labelled team=<name>), and
// waits until each is Ready.
func setup(t *testing.T, tokens ...string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "signing"},
		Data:       map[string][]byte{"DATASETTE_SECRET": []byte(signingKey)},
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range tokens {
		if err := admin.Create(ctx, &datasettev1alpha1.DatasetteToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name, Labels: map[string]string{"team": name}},
			Spec: datasettev1alpha1.DatasetteTokenSpec{
				Actor:            "actor-" + name,
				SigningSecretRef: &datasettev1alpha1.SecretKeyRef{Name: "signing"},
				ExpiresAfter:     &metav1.Duration{Duration: 24 * time.Hour},
			},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range tokens {
		waitFor(t, ns.Name, name, func(tok *datasettev1alpha1.DatasetteToken) bool {
			return meta.IsStatusConditionTrue(tok.Status.Conditions, "Ready")
		})
	}
	return ns.Name
}

func waitFor(t *testing.T, ns, name string, ok func(*datasettev1alpha1.DatasetteToken) bool) *datasettev1alpha1.DatasetteToken {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var tok datasettev1alpha1.DatasetteToken
		err := admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &tok)
		if err == nil && ok(&tok) {
			return &tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("DatasetteToken %s/%s: condition not met within 30s (err %v, status %+v)", ns, name, err, tok.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tokenOf(t *testing.T, ns, name string) string {
	t.Helper()
	var s corev1.Secret
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data[tokenKey])
}

func TestStatus(t *testing.T) {
	requireEnvtest(t)
	ns := setup(t, "reports", "dashboards")

	out, _, err := run(t, "", "status", "-A")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status -A:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if fields := strings.Fields(lines[0]); strings.Join(fields, " ") != "NAMESPACE NAME READY REASON ACTOR SIGNER ISSUED RENEWS EXPIRES" {
		t.Errorf("header %q", lines[0])
	}
	for _, name := range []string{"reports", "dashboards"} {
		row := findRow(lines, ns, name)
		if row == nil {
			t.Fatalf("no row for %s/%s in\n%s", ns, name, out)
		}
		// NAMESPACE NAME READY REASON ACTOR SIGNER ISSUED(2 words) RENEWS(2) EXPIRES(2)
		if row[2] != "True" || row[4] != "actor-"+name || row[5] != "secret/signing" || row[7] != "ago" || row[8] != "in" || row[10] != "in" {
			t.Errorf("row %q", row)
		}
	}

	out, _, err = run(t, "", "status", "-n", ns, "-l", "team=reports", "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "reports ") || !strings.Contains(lines[0], "SECRET") || !strings.Contains(lines[1], " reports ") {
		t.Errorf("-l team=reports -o wide printed\n%s", out)
	}

	for _, format := range []string{"json", "yaml"} {
		out, _, err = run(t, "", "status", "-n", ns, "-o", format)
		if err != nil {
			t.Fatal(err)
		}
		var list datasettev1alpha1.DatasetteTokenList
		if err := yaml.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("-o %s: %v", format, err)
		}
		if list.Kind != "DatasetteTokenList" || len(list.Items) != 2 || list.Items[0].Status.IssuedAt == nil {
			t.Errorf("-o %s: %+v", format, list)
		}
	}

	if _, _, err := run(t, "", "status", "-n", ns, "absent"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("status of an absent token: %v", err)
	}
	if _, stderr, err := run(t, "", "status", "-n", "no-such-namespace"); err != nil || !strings.Contains(stderr, "No DatasetteTokens found") {
		t.Errorf("an empty namespace: %v %q", err, stderr)
	}
}

func findRow(lines []string, ns, name string) []string {
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == ns && f[1] == name {
			return f
		}
	}
	return nil
}

func TestRenewWait(t *testing.T) {
	requireEnvtest(t)
	ns := setup(t, "a", "b")
	before := map[string]string{}
	for _, n := range []string{"a", "b"} {
		before[n] = tokenOf(t, ns, n)
	}
	// Tokens carry their issue time in seconds: let one pass, so a re-mint is a new token.
	time.Sleep(1100 * time.Millisecond)

	out, _, err := run(t, "", "renew", "--all", "-n", ns, "--wait", "--timeout", "30s")
	if err != nil {
		t.Fatalf("renew --all --wait: %v\n%s", err, out)
	}
	t.Logf("renew --all -n %s --wait:\n%s", ns, out)
	for _, n := range []string{"a", "b"} {
		if !strings.Contains(out, fmt.Sprintf("datasettetoken %s/%s re-minted", ns, n)) {
			t.Errorf("no re-minted line for %s in\n%s", n, out)
		}
		var tok datasettev1alpha1.DatasetteToken
		if err := admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: n}, &tok); err != nil {
			t.Fatal(err)
		}
		if req := tok.Annotations[datasettev1alpha1.AnnotationRenewRequestedAt]; req == "" || tok.Status.LastRenewRequest != req {
			t.Errorf("%s: annotation %q, lastRenewRequest %q", n, req, tok.Status.LastRenewRequest)
		}
		if tokenOf(t, ns, n) == before[n] {
			t.Errorf("%s: the Secret holds the same token after renew --wait returned", n)
		}
	}

	// A suspended token is never re-minted: --wait says so when it gives up, and fails.
	var tok datasettev1alpha1.DatasetteToken
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "a"}, &tok); err != nil {
		t.Fatal(err)
	}
	tok.Spec.Suspend = true
	if err := admin.Update(context.Background(), &tok); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, "", "renew", "a", "-n", ns, "--wait", "--timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "was not re-minted within 2s") {
		t.Errorf("renew --wait of a suspended token: %v\n%s", err, out)
	}
}

func TestInspect(t *testing.T) {
	requireEnvtest(t)
	ns := setup(t, "reader")
	token := tokenOf(t, ns, "reader")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte(signingKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("another-key"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unverified", nil, []string{"Actor:       actor-reader", "not verified", `"a": "actor-reader"`, "Expires:     20"}},
		{"verified", []string{"--secret-file", good}, []string{"valid: Datasette accepts this token"}},
		{"verified from stdin", []string{"--secret-file", "-"}, []string{"valid: Datasette accepts this token"}},
		{"wrong key", []string{"--secret-file", bad}, []string{"INVALID:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := run(t, signingKey, append([]string{"inspect", "reader", "-n", ns}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "unverified" {
				t.Logf("inspect:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, secret := range []string{token, token[len("dstok_"):], signingKey, strings.SplitN(token, ".", 2)[1]} {
				if strings.Contains(out+stderr, secret) {
					t.Errorf("inspect printed a secret (token or key)")
				}
			}
		})
	}

	out, _, err := run(t, "", "inspect", "reader", "-n", ns, "-o", "json", "--secret-file", good)
	if err != nil {
		t.Fatal(err)
	}
	var in Inspection
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatal(err)
	}
	if in.Actor != "actor-reader" || in.Verified == nil || !*in.Verified || in.ExpiresAt == nil || in.Secret != "reader" {
		t.Errorf("-o json: %+v", in)
	}
}

func TestCompletion(t *testing.T) {
	out, _, err := run(t, "", "completion", "bash")
	if err != nil || !strings.Contains(out, "__start_kubectl-datasette") {
		t.Errorf("completion bash: %v, %d bytes", err, len(out))
	}
}

// TestValidate: contradictory or missing arguments fail before any request.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"renew"}, "give token names, or --all"},
		{[]string{"renew", "a", "--all"}, "not both"},
		{[]string{"renew", "a", "-A"}, "need --all"},
		{[]string{"renew", "--all", "--timeout", "2h"}, "at most 1h"},
		{[]string{"status", "-o", "table"}, "want wide, json or yaml"},
		{[]string{"status", "a", "-A"}, "not both"},
		{[]string{"status", "-l", "a=(b"}, "-l"},
		{[]string{"inspect", "a", "-o", "yaml"}, "want json"},
		{[]string{"inspect"}, "accepts 1 arg"},
	} {
		_, _, err := run(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// TestActsWithTheUsersRights: the plugin uses the caller's credentials (here --as, kubectl's
// impersonation flag): a user who may only read DatasetteTokens sees the status, and is refused
// renew (no patch) and inspect (no Secret read) with the API server's "forbidden".
func TestActsWithTheUsersRights(t *testing.T) {
	requireEnvtest(t)
	ns := setup(t, "guarded")
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"datasette.io"}, Resources: []string{"datasettetokens"}, Verbs: []string{"get", "list"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "token-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "reader"}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := run(t, "", "status", "-n", ns, "--as", "reader")
	if err != nil || !strings.Contains(out, "guarded") {
		t.Errorf("status as a reader: %v\n%s", err, out)
	}
	if _, _, err := run(t, "", "renew", "guarded", "-n", ns, "--as", "reader"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("renew as a reader: %v, want forbidden", err)
	}
	if _, _, err := run(t, "", "inspect", "guarded", "-n", ns, "--as", "reader"); err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "Secret "+ns+"/guarded") {
		t.Errorf("inspect as a reader: %v, want forbidden on the Secret", err)
	}
}
