// Command manager runs the DatasetteToken operator.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

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
	var metricsAddr, probeAddr string
	var enableLeaderElection, secureMetrics, enableHTTP2, showVersion bool
	var maxConcurrentReconciles int
	var watchNamespaces, pprofAddr string
	var allowNamespacedProbes bool
	var election leaderElection
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics server (off by default: see CVE-2023-44487).")
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", 16,
		"How many DatasetteTokens are reconciled at once.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to confine the operator to; empty means every namespace.")
	flag.BoolVar(&allowNamespacedProbes, "allow-namespaced-probes", false,
		"Let DatasetteSigners' spec.probe reach the network (ClusterDatasetteSigners always may). "+
			"Off by default: a namespaced probe lets a tenant make the operator send requests.")
	var probeAddressFlags probeAddresses
	probeAddressFlags.bindFlags(flag.CommandLine)
	flag.BoolVar(&showVersion, "version", false, "Print the version and exit.")
	// Tenancy: what bounds each tenant's writes, memory and reach.
	var minRenewalInterval time.Duration
	var allowSigningSecretRef bool
	var keyCacheSecretBytes, keyCacheBytes int64
	flag.DurationVar(&minRenewalInterval, "min-renewal-interval", time.Minute,
		"The renewal floor: no token is renewed sooner than this after its last mint (a spec that would be is RenewalTooFrequent), "+
			"and each rollout restart target is restarted at most once per this interval. Signers may raise it (policy.minRenewalInterval).")
	flag.BoolVar(&allowSigningSecretRef, "allow-signing-secret-ref", true,
		"Allow DatasetteTokens to name a signing Secret directly (spec.signingSecretRef); false refuses every one, so that all minting goes through signers.")
	flag.Int64Var(&keyCacheSecretBytes, "key-cache-secret-bytes", controllers.DefaultKeyCacheSecretBytes,
		"The most bytes of signing keys the operator holds from one Secret; a key beyond it is not held and its tokens report why.")
	flag.Int64Var(&keyCacheBytes, "key-cache-bytes", controllers.DefaultKeyCacheBytes,
		"The most bytes of signing keys the operator holds in all; a key beyond it is not held and its tokens report why.")
	var eventQPS float64
	var eventBurst int
	flag.Float64Var(&eventQPS, "event-qps", controllers.DefaultEventQPS,
		"How many events a second the operator sends once --event-burst is spent; the others wait their turn, "+
			"so that a burst of mints writes its Secrets first. 0: no limit.")
	flag.IntVar(&eventBurst, "event-burst", controllers.DefaultEventBurst,
		"How many events the operator sends at once before --event-qps applies.")
	var metricsCertFlags metricsCert
	metricsCertFlags.bindFlags(flag.CommandLine)
	election.bindFlags(flag.CommandLine)
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "The address Go's pprof endpoints bind to (e.g. 127.0.0.1:8082); 0 disables them.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if showVersion {
		fmt.Println("manager", version.String())
		return
	}

	logger := controllers.DemoteTransientErrors(zap.New(zap.UseFlagOptions(&opts)))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger) // client-go's reflectors and event broadcaster log through klog too

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	metricsCertWatcher, err := metricsCertFlags.apply(&metricsOptions)
	if err != nil {
		setupLog.Error(err, "unable to load the metrics certificate")
		os.Exit(1)
	}
	if secureMetrics {
		// Only authenticated and authorized clients (see config/rbac/metrics_reader_role.yaml) may read metrics.
		metricsOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	namespaces := splitList(watchNamespaces)
	cacheOptions := controllers.CacheOptions()
	if len(namespaces) > 0 {
		cacheOptions.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			cacheOptions.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	setupLog.Info("starting", "version", version.String(), "watchNamespaces", namespaces, "maxConcurrentReconciles", maxConcurrentReconciles)

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions,
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         enableLeaderElection,
		LeaderElectionID:       "datasette-token-operator.datasette.io",
		Cache:                  cacheOptions,
		// The lease is released when the manager stops, so that a standby need not wait for it to expire.
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionNamespace:       election.namespace,
		LeaseDuration:                 &election.leaseDuration,
		RenewDeadline:                 &election.renewDeadline,
		RetryPeriod:                   &election.retryPeriod,
	})
	if err != nil {
		setupLog.Error(err, "unable to start manager")
		os.Exit(1)
	}

	if metricsCertWatcher != nil {
		if err := mgr.Add(metricsCertWatcher); err != nil {
			setupLog.Error(err, "unable to watch the metrics certificate")
			os.Exit(1)
		}
	}

	ctx := ctrl.SetupSignalHandler()
	probeAddressPolicy, err := probeAddressFlags.policy(ctx, mgr.GetConfig().Host)
	if err != nil {
		setupLog.Error(err, "unable to set the probes' address policy")
		os.Exit(1)
	}
	setupLog.Info("probe address policy", "deny", probeAddressPolicy.Deny, "allow", probeAddressPolicy.Allow,
		"apiServer", probeAddressPolicy.APIServer)
	recorder, stopEvents, err := controllers.NewEventRecorder(ctrl.Log.WithName("events"), mgr.GetConfig(), mgr.GetHTTPClient(),
		mgr.GetScheme(), eventQPS, eventBurst)
	if err != nil {
		setupLog.Error(err, "unable to record events")
		os.Exit(1)
	}
	if err := (&controllers.DatasetteTokenReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  recorder,

		MaxConcurrentReconciles: maxConcurrentReconciles,
		Namespaces:              namespaces,
		MinRenewalInterval:      minRenewalInterval,
		DenySigningSecretRef:    !allowSigningSecretRef,
		KeyCacheMaxSecretBytes:  keyCacheSecretBytes,
		KeyCacheMaxBytes:        keyCacheBytes,
		AllowNamespacedProbes:   allowNamespacedProbes,
		ProbeAddresses:          probeAddressPolicy,
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "DatasetteToken")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("starting manager")
	err = mgr.Start(ctx)
	stopEvents() // the events recorded last, the mint summaries among them, are sent
	if err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
