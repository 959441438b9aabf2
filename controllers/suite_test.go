package controllers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/testenv"
)

// The envtest suite: every test gets a namespace of its own and a manager watching only that
// namespace, against one real kube-apiserver and etcd started here.

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	// managerLogs captures everything every manager logs, for the test that no secret leaks.
	managerLogs testenv.SyncBuffer
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, datasettev1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	logf.SetLogger(DemoteTransientErrors(zap.New(zap.WriteTo(&managerLogs), zap.UseDevMode(true)))) // as cmd/manager does

	assets := testenv.Assets("..")
	if assets == "" {
		msg := "no control plane binaries: run `make envtest` (it builds kube-apiserver and etcd into bin/k8s/), or set KUBEBUILDER_ASSETS"
		if testenv.Required() {
			fmt.Fprintln(os.Stderr, "FAIL:", msg)
			return 1
		}
		fmt.Fprintln(os.Stderr, "envtest tests will be skipped:", msg)
		return m.Run()
	}

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	var err error
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting the envtest control plane:", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the envtest control plane:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "envtest: kube-apiserver and etcd from %s are serving %s\n", assets, cfg.Host)
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: creating a client:", err)
		return 1
	}
	return m.Run()
}

// requireEnvtest skips a test when the control plane was not found outside `make test` and CI
// (there, TestMain has already failed the run).
func requireEnvtest(t *testing.T) {
	t.Helper()
	if testEnv == nil {
		t.Skip("no envtest control plane: run `make envtest`")
	}
}

// testManager is a running manager that reconciles DatasetteTokens in one namespace.
type testManager struct {
	stop   context.CancelFunc
	done   chan struct{}
	writes *atomic.Int64
	// requests records every request the manager sends, reads included.
	requests *requestLog
	// reconciler is the manager's DatasetteToken reconciler.
	reconciler *DatasetteTokenReconciler
}

// managerOption adjusts a test manager.
type managerOption func(*ctrl.Options, *DatasetteTokenReconciler)

// withSyncPeriod makes the manager's caches resync every period.
func withSyncPeriod(period time.Duration) managerOption {
	return func(o *ctrl.Options, _ *DatasetteTokenReconciler) { o.Cache.SyncPeriod = &period }
}

// withClock gives the reconciler a clock of the test's.
func withClock(c clock.PassiveClock) managerOption {
	return func(_ *ctrl.Options, r *DatasetteTokenReconciler) { r.Clock = c }
}

// startManager runs the operator's controller for namespace until the test ends, counting every
// write (create, update, patch, delete, events included) it sends to the API server and recording
// every request.
func startManager(t *testing.T, namespace string, opts ...managerOption) *testManager {
	t.Helper()
	writes, requests := &atomic.Int64{}, &requestLog{}
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet {
				writes.Add(1)
			}
			if resp := injectedFault(req); resp != nil { // storm_test.go
				requests.record(req, resp.StatusCode)
				return resp, nil
			}
			resp, err := rt.RoundTrip(req)
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			requests.record(req, code)
			return resp, err
		})
	}
	options := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(),
		Logger:                 logf.Log.WithName(namespace),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
	options.Cache.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	r := &DatasetteTokenReconciler{}
	for _, o := range opts {
		o(&options, r)
	}
	mgr, err := ctrl.NewManager(mgrCfg, options)
	if err != nil {
		t.Fatalf("creating a manager: %v", err)
	}
	r.Client, r.APIReader = mgr.GetClient(), mgr.GetAPIReader()
	var stopEvents func()
	r.Recorder, stopEvents, err = NewEventRecorder(options.Logger.WithName("events"), mgr.GetConfig(), mgr.GetHTTPClient(), mgr.GetScheme(),
		DefaultEventQPS, DefaultEventBurst)
	if err != nil {
		t.Fatalf("creating the event recorder: %v", err)
	}
	t.Cleanup(stopEvents) // after the manager's own cleanup, registered below
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatalf("setting up the controller: %v", err)
	}
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), options.Logger))
	tm := &testManager{stop: cancel, done: make(chan struct{}), writes: writes, requests: requests, reconciler: r}
	go func() {
		defer close(tm.done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager stopped: %v", err)
		}
	}()
	t.Cleanup(tm.Stop)
	return tm
}

// Stop stops the manager and waits until it has.
func (m *testManager) Stop() {
	m.stop()
	<-m.done
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dstok-test-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}
