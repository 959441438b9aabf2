package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// metricsCert is the metrics server's certificate (--metrics-cert-path, --metrics-cert-name,
// --metrics-cert-key), as in kubebuilder v4's scaffold: without a path the server generates a
// self-signed certificate at start-up.
type metricsCert struct {
	path, certName, keyName string
}

// bindFlags registers the flags on fs.
func (m *metricsCert) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&m.path, "metrics-cert-path", "",
		"The directory that holds the metrics server's certificate and key (e.g. a mounted cert-manager Secret); "+
			"empty: a self-signed certificate generated at start-up.")
	fs.StringVar(&m.certName, "metrics-cert-name", "tls.crt", "The metrics server certificate's file name in --metrics-cert-path.")
	fs.StringVar(&m.keyName, "metrics-cert-key", "tls.key", "The metrics server key's file name in --metrics-cert-path.")
}

// apply makes opts serve the certificate in the directory, reloaded whenever its files change, and
// returns the watcher, which the manager must run (mgr.Add); nil without --metrics-cert-path.
func (m *metricsCert) apply(opts *metricsserver.Options) (*certwatcher.CertWatcher, error) {
	if m.path == "" {
		return nil, nil
	}
	certFile, keyFile := filepath.Join(m.path, m.certName), filepath.Join(m.path, m.keyName)
	w, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the metrics certificate %s and key %s: %w", certFile, keyFile, err)
	}
	opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) {
		c.GetCertificate = w.GetCertificate
	})
	return w, nil
}
