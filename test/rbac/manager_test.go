package rbac

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/datasette-token-operator/datasette-token-operator/controllers"
)

// leaderElectionID is cmd/manager's LeaderElectionID.
const leaderElectionID = "datasette-token-operator.datasette.io"

// runningManager is a manager running in-process as the installation's ServiceAccount.
type runningManager struct {
	// logStart is where its logs begin in the shared log buffer.
	logStart int
	// errorsBefore is controller_runtime_reconcile_errors_total when it started.
	errorsBefore float64
}

// startManager runs the operator's manager, wired as cmd/manager wires it, with the credentials of
// the installation's ServiceAccount (impersonated by the administrator) and the installation's
// --leader-elect and --watch-namespaces. It waits until the manager leads, and stops it when the
// test ends. Tests run one manager at a time: its logs and metrics are told apart by time.
func startManager(t *testing.T, in *installation) *runningManager {
	t.Helper()
	m := &runningManager{logStart: logs.Len(), errorsBefore: reconcileErrorsTotal()}

	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: in.username()}

	leaderElect, _ := in.flag("leader-elect")
	options := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         leaderElect == "true",
		LeaderElectionID:       leaderElectionID,
		// In a pod, the manager finds its own namespace; here it is told.
		LeaderElectionNamespace:       in.namespace,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(),
		Logger:                        ctrl.Log.WithName(t.Name()),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(true)},
	}
	// --watch-namespaces, as the manager applies it: the caches' default namespaces.
	var namespaces []string
	if list, ok := in.flag("watch-namespaces"); ok && list != "" {
		namespaces = strings.Split(list, ",")
		options.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			options.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(cfg, options)
	if err != nil {
		t.Fatalf("creating the manager: %v", err)
	}
	// Keep this wiring in step with cmd/manager/main.go.
	if err := (&controllers.DatasetteTokenReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("datasette-token-operator"),

		MaxConcurrentReconciles: 4,
		Namespaces:              namespaces,
	}).SetupWithManager(mgr); err != nil {
		t.Fatalf("setting up the controller: %v", err)
	}

	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), options.Logger))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("the manager stopped: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	select {
	case <-mgr.Elected():
	case <-done:
		t.Fatalf("the manager stopped before it led; its logs:\n%s", m.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("the manager did not win leader election within 30s; its logs:\n%s", m.logs())
	}
	if options.LeaderElection {
		var lease coordinationv1.Lease
		if err := admin.Get(ctx, client.ObjectKey{Namespace: in.namespace, Name: leaderElectionID}, &lease); err != nil {
			t.Fatalf("reading the leader-election Lease: %v", err)
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			t.Fatalf("the manager leads but the Lease %s/%s has no holder", in.namespace, leaderElectionID)
		}
	}
	return m
}

// logs is what has been logged since the manager started.
func (m *runningManager) logs() string {
	return logs.Since(m.logStart)
}

// rbacErrors are the lines of the manager's logs that report a request the API server refused for
// lack of a permission (from the controller, the caches, leader election or the event recorder).
func (m *runningManager) rbacErrors() []string {
	return m.logLines(func(line string) bool { return strings.Contains(strings.ToLower(line), "forbidden") })
}

// reconcileErrors are the "Reconciler error" lines of the manager's logs, except optimistic-concurrency
// conflicts (a write based on a stale read, retried at once): those are no permission problem.
func (m *runningManager) reconcileErrors() []string {
	return m.logLines(func(line string) bool {
		return strings.Contains(line, "Reconciler error") && !strings.Contains(line, "the object has been modified")
	})
}

func (m *runningManager) logLines(match func(string) bool) []string {
	var lines []string
	for line := range strings.Lines(m.logs()) {
		if match(line) {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

// reconcileErrorsGrowth is how much controller_runtime_reconcile_errors_total grew since the manager
// started (conflicts are quiet requeues, not errors).
func (m *runningManager) reconcileErrorsGrowth() float64 {
	return reconcileErrorsTotal() - m.errorsBefore
}

// assertNoRBACErrors fails the test if any request of the manager was forbidden or any reconcile
// failed for another reason than a conflict.
func (m *runningManager) assertNoRBACErrors(t *testing.T) {
	t.Helper()
	if lines := m.rbacErrors(); len(lines) > 0 {
		t.Errorf("the manager was refused %d requests with the installer's RBAC:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if lines := m.reconcileErrors(); len(lines) > 0 {
		t.Errorf("%d reconciles failed:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if n := m.reconcileErrorsGrowth(); n != 0 {
		t.Errorf("controller_runtime_reconcile_errors_total grew by %v", n)
	}
}

// reconcileErrorsTotal sums controller_runtime_reconcile_errors_total over every controller. (Gather
// returns what it could gather along with any error, so an error is not fatal here.)
func reconcileErrorsTotal() float64 {
	families, _ := metrics.Registry.Gather()
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}
