package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dsprobe"
)

// probeAddresses are the flags of the probes' address policy.
type probeAddresses struct {
	deny, allow string
}

// bindFlags defines --probe-deny-cidrs and --probe-allow-cidrs.
func (p *probeAddresses) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&p.deny, "probe-deny-cidrs", "",
		"Comma-separated CIDR prefixes (or addresses) no probe may connect to, on top of those none ever may "+
			"(link-local and cloud metadata, unspecified, multicast, reserved).")
	fs.StringVar(&p.allow, "probe-allow-cidrs", "",
		"Comma-separated CIDR prefixes (or addresses): when set, the only ones DatasetteSigners' probes may connect to. "+
			"A prefix within loopback, or one of the API server's addresses, opens it to them; a broader prefix does not. "+
			"ClusterDatasetteSigners' probes are not confined by it.")
}

// policy is the address policy of the flags, refusing tenants' probes the API server's
// addresses: those of apiHost (the manager's rest.Config host) and, in a Pod, of
// KUBERNETES_SERVICE_HOST, each resolved once, now.
func (p *probeAddresses) policy(ctx context.Context, apiHost string) (*dsprobe.AddressPolicy, error) {
	deny, err := dsprobe.ParsePrefixes(p.deny)
	if err != nil {
		return nil, fmt.Errorf("--probe-deny-cidrs: %w", err)
	}
	allow, err := dsprobe.ParsePrefixes(p.allow)
	if err != nil {
		return nil, fmt.Errorf("--probe-allow-cidrs: %w", err)
	}
	policy := &dsprobe.AddressPolicy{Deny: deny, Allow: allow}
	hosts := []string{hostOf(apiHost)}
	if inCluster := os.Getenv("KUBERNETES_SERVICE_HOST"); inCluster != "" {
		hosts = append(hosts, inCluster)
	}
	for _, host := range hosts {
		addrs, err := dsprobe.ResolveAddresses(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("the API server's addresses, refused to DatasetteSigners' probes: %w", err)
		}
		for _, a := range addrs {
			if !slices.Contains(policy.APIServer, a) {
				policy.APIServer = append(policy.APIServer, a)
			}
		}
	}
	return policy, nil
}

// hostOf is the host of a rest.Config host: a URL, or host[:port].
func hostOf(apiHost string) string {
	if !strings.Contains(apiHost, "://") {
		apiHost = "https://" + apiHost
	}
	if u, err := url.Parse(apiHost); err == nil {
		return u.Hostname()
	}
	return apiHost
}
