// Command manager runs the DatasetteToken operator.
package main

import (
	"flag"
	"fmt"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/controllers"
	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(datasettev1alpha1.AddToScheme(scheme))
}

func main() {
	var o options
	o.bindFlags(flag.CommandLine)
	flag.Parse()
	if o.showVersion {
		fmt.Println("manager", version.String())
		return
	}
	logger := controllers.DemoteTransientErrors(zap.New(zap.UseFlagOptions(&o.log)))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger) // client-go's reflectors and event broadcaster log through klog too

	mgr := o.newManager()
	ctx := ctrl.SetupSignalHandler()
	stopEvents := o.setupControllers(ctx, mgr)
	setupLog.Info("starting manager")
	err := mgr.Start(ctx)
	stopEvents() // the events recorded last, the mint summaries among them, are sent
	if err != nil {
		fail(err, "problem running manager")
	}
}

// newManager is the manager the options describe, with its metrics certificate watcher and
// health checks.
func (o *options) newManager() ctrl.Manager {
	metricsOptions, certWatcher, err := o.serving.metricsServer()
	if err != nil {
		fail(err, "unable to load the metrics certificate")
	}
	setupLog.Info("starting", "version", version.String(), "watchNamespaces", o.reconcile.namespaces(),
		"maxConcurrentReconciles", o.reconcile.maxConcurrentReconciles)
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions,
		HealthProbeBindAddress: o.serving.probeAddr,
		PprofBindAddress:       o.serving.pprofAddr,
		LeaderElection:         o.election.enabled,
		LeaderElectionID:       "datasette-token-operator.datasette.io",
		Cache:                  o.reconcile.cacheOptions(),
		// The lease is released when the manager stops, so that a standby need not wait for it to expire.
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionNamespace:       o.election.namespace,
		LeaseDuration:                 &o.election.leaseDuration,
		RenewDeadline:                 &o.election.renewDeadline,
		RetryPeriod:                   &o.election.retryPeriod,
	})
	if err != nil {
		fail(err, "unable to start manager")
	}
	if certWatcher != nil {
		if err := mgr.Add(certWatcher); err != nil {
			fail(err, "unable to watch the metrics certificate")
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		fail(err, "unable to set up health check")
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		fail(err, "unable to set up ready check")
	}
	return mgr
}
