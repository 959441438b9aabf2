package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const serverName = "dto-metrics.ops.svc"

// writeCert writes a fresh CA-signed certificate for serverName into dir (tls.crt, tls.key) and
// returns a pool holding its CA.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: serverName}, DNSNames: []string{serverName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	// Write the key first and the certificate last, as kubelet's atomic Secret update makes both
	// appear at once; the watcher reloads on the certificate.
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// scrape GETs /metrics trusting only pool, verifying the certificate for serverName.
func scrape(addr string, pool *x509.CertPool) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName}}}
	resp, err := c.Get("https://" + addr + "/metrics")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// TestMetricsCertPath: with --metrics-cert-path the metrics server serves that certificate, which a
// client verifies with its CA, and serves a replacement once the files change (certwatcher).
func TestMetricsCertPath(t *testing.T) {
	dir := t.TempDir()
	firstCA := writeCert(t, dir)

	var m metricsCert
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	m.bindFlags(fs)
	if err := fs.Parse([]string{"--metrics-cert-path", dir}); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	opts := metricsserver.Options{BindAddress: addr, SecureServing: true}
	w, err := m.apply(&opts)
	if err != nil || w == nil {
		t.Fatalf("apply: %v, watcher %v", err, w)
	}
	srv, err := metricsserver.NewServer(opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Start(ctx) }()
	go func() { _ = srv.Start(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for err = scrape(addr, firstCA); err != nil && time.Now().Before(deadline); err = scrape(addr, firstCA) {
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("scraping with the certificate's CA: %v", err)
	}

	secondCA := writeCert(t, dir)
	deadline = time.Now().Add(30 * time.Second)
	for err = scrape(addr, secondCA); err != nil && time.Now().Before(deadline); err = scrape(addr, secondCA) {
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the rotated certificate was not served within 30s: %v", err)
	}
	if err := scrape(addr, firstCA); err == nil {
		t.Error("the old CA still verifies the server after rotation")
	}
}

// TestMetricsCertAbsent: no path, no watcher (the server generates its own); a path without the
// files fails at start-up rather than serving nothing.
func TestMetricsCertAbsent(t *testing.T) {
	var m metricsCert
	m.bindFlags(flag.NewFlagSet("manager", flag.ContinueOnError))
	opts := metricsserver.Options{}
	if w, err := m.apply(&opts); w != nil || err != nil || len(opts.TLSOpts) != 0 {
		t.Errorf("without --metrics-cert-path: watcher %v, err %v, %d TLS options", w, err, len(opts.TLSOpts))
	}
	m.path = t.TempDir()
	if _, err := m.apply(&opts); err == nil {
		t.Error("an empty --metrics-cert-path directory was accepted")
	}
}
