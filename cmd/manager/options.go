package main

import (
	"context"
	"crypto/tls"
	"flag"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/datasette-token-operator/datasette-token-operator/controllers"
)

// options are the manager's flags, in groups, each binding its own.
type options struct {
	showVersion bool
	serving     servingOptions
	election    leaderElection
	reconcile   reconcileOptions
	tenancy     tenancyOptions
	events      eventOptions
	log         zap.Options
}

// bindFlags registers every flag on fs.
func (o *options) bindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.showVersion, "version", false, "Print the version and exit.")
	o.serving.bindFlags(fs)
	o.election.bindFlags(fs)
	o.reconcile.bindFlags(fs)
	o.tenancy.bindFlags(fs)
	o.events.bindFlags(fs)
	o.log.BindFlags(fs)
}

// servingOptions are the manager's endpoints: metrics, health probes and pprof.
type servingOptions struct {
	metricsAddr, probeAddr, pprofAddr string
	secureMetrics, enableHTTP2        bool
	metricsCert                       metricsCert
}

func (s *servingOptions) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	fs.StringVar(&s.probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	fs.BoolVar(&s.secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	fs.BoolVar(&s.enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics server (off by default: see CVE-2023-44487).")
	fs.StringVar(&s.pprofAddr, "pprof-bind-address", "0", "The address Go's pprof endpoints bind to (e.g. 127.0.0.1:8082); 0 disables them.")
	s.metricsCert.bindFlags(fs)
}

// metricsServer is the metrics server's options, and the certificate watcher the manager must
// run (nil without --metrics-cert-path).
func (s *servingOptions) metricsServer() (metricsserver.Options, *certwatcher.CertWatcher, error) {
	var tlsOpts []func(*tls.Config)
	if !s.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	opts := metricsserver.Options{BindAddress: s.metricsAddr, SecureServing: s.secureMetrics, TLSOpts: tlsOpts}
	watcher, err := s.metricsCert.apply(&opts)
	if err != nil {
		return opts, nil, err
	}
	if s.secureMetrics {
		// Only authenticated and authorized clients (see config/rbac/metrics_reader_role.yaml) may read metrics.
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts, watcher, nil
}

// reconcileOptions say how much the manager reconciles at once, and where.
type reconcileOptions struct {
	maxConcurrentReconciles int
	watchNamespaces         string
}

func (r *reconcileOptions) bindFlags(fs *flag.FlagSet) {
	fs.IntVar(&r.maxConcurrentReconciles, "max-concurrent-reconciles", 16, "How many DatasetteTokens are reconciled at once.")
	fs.StringVar(&r.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to confine the operator to; empty means every namespace.")
}

// namespaces are --watch-namespaces' items.
func (r *reconcileOptions) namespaces() []string { return splitList(r.watchNamespaces) }

// cacheOptions are the manager's cache options, confined to --watch-namespaces.
func (r *reconcileOptions) cacheOptions() cache.Options {
	opts := controllers.CacheOptions()
	if namespaces := r.namespaces(); len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// tenancyOptions bound what each tenant's objects make the operator write, hold and reach.
type tenancyOptions struct {
	minRenewalInterval                 time.Duration
	allowSigningSecretRef              bool
	allowNamespacedProbes              bool
	keyCacheSecretBytes, keyCacheBytes int64
	probeAddresses                     probeAddresses
}

func (t *tenancyOptions) bindFlags(fs *flag.FlagSet) {
	fs.DurationVar(&t.minRenewalInterval, "min-renewal-interval", time.Minute,
		"The renewal floor: no token is renewed sooner than this after its last mint (a spec that would be is RenewalTooFrequent), "+
			"and each rollout restart target is restarted at most once per this interval. Signers may raise it (policy.minRenewalInterval).")
	fs.BoolVar(&t.allowSigningSecretRef, "allow-signing-secret-ref", true,
		"Allow DatasetteTokens to name a signing Secret directly (spec.signingSecretRef); false refuses every one, so that all minting goes through signers.")
	fs.BoolVar(&t.allowNamespacedProbes, "allow-namespaced-probes", false,
		"Let DatasetteSigners' spec.probe reach the network (ClusterDatasetteSigners always may). "+
			"Off by default: a namespaced probe lets a tenant make the operator send requests.")
	fs.Int64Var(&t.keyCacheSecretBytes, "key-cache-secret-bytes", controllers.DefaultKeyCacheSecretBytes,
		"The most bytes of signing keys the operator holds from one Secret; a key beyond it is not held and its tokens report why.")
	fs.Int64Var(&t.keyCacheBytes, "key-cache-bytes", controllers.DefaultKeyCacheBytes,
		"The most bytes of signing keys the operator holds in all; a key beyond it is not held and its tokens report why.")
	t.probeAddresses.bindFlags(fs)
}

// eventOptions pace the events the manager sends.
type eventOptions struct {
	qps   float64
	burst int
}

func (e *eventOptions) bindFlags(fs *flag.FlagSet) {
	fs.Float64Var(&e.qps, "event-qps", controllers.DefaultEventQPS,
		"How many events a second the operator sends once --event-burst is spent; the others wait their turn, "+
			"so that a burst of mints writes its Secrets first. 0: no limit.")
	fs.IntVar(&e.burst, "event-burst", controllers.DefaultEventBurst,
		"How many events the operator sends at once before --event-qps applies.")
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

// fail logs err with what could not be done, and exits.
func fail(err error, what string, keysAndValues ...any) {
	setupLog.Error(err, what, keysAndValues...)
	os.Exit(1)
}

// setupControllers registers the controllers with mgr, and returns what sends the events left
// once the manager has stopped.
func (o *options) setupControllers(ctx context.Context, mgr ctrl.Manager) (stopEvents func()) {
	probeAddressPolicy, err := o.tenancy.probeAddresses.policy(ctx, mgr.GetConfig().Host)
	if err != nil {
		fail(err, "unable to set the probes' address policy")
	}
	setupLog.Info("probe address policy", "deny", probeAddressPolicy.Deny, "allow", probeAddressPolicy.Allow,
		"apiServer", probeAddressPolicy.APIServer)
	recorder, stopEvents, err := controllers.NewEventRecorder(ctrl.Log.WithName("events"), mgr.GetConfig(), mgr.GetHTTPClient(),
		mgr.GetScheme(), o.events.qps, o.events.burst)
	if err != nil {
		fail(err, "unable to record events")
	}
	t := o.tenancy
	err = (&controllers.DatasetteTokenReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  recorder,

		MaxConcurrentReconciles: o.reconcile.maxConcurrentReconciles,
		Namespaces:              o.reconcile.namespaces(),
		MinRenewalInterval:      t.minRenewalInterval,
		DenySigningSecretRef:    !t.allowSigningSecretRef,
		KeyCacheMaxSecretBytes:  t.keyCacheSecretBytes,
		KeyCacheMaxBytes:        t.keyCacheBytes,
		AllowNamespacedProbes:   t.allowNamespacedProbes,
		ProbeAddresses:          probeAddressPolicy,
	}).SetupWithManager(mgr)
	if err != nil {
		fail(err, "unable to create controller", "controller", "DatasetteToken")
	}
	return stopEvents
}
