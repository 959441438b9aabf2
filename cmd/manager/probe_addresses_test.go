package main

import (
	"context"
	"flag"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://10.96.0.1:443":       "10.96.0.1",
		"https://[fd00::1]:6443/path": "fd00::1",
		"127.0.0.1:6443":              "127.0.0.1",
		"api.example.com":             "api.example.com",
		"https://api.example.com":     "api.example.com",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestProbeAddressFlags: the flags make the policy, with the API server's addresses (the rest
// config's host and KUBERNETES_SERVICE_HOST) refused to tenants; a malformed prefix names its flag.
func TestProbeAddressFlags(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var p probeAddresses
	p.bindFlags(fs)
	if err := fs.Parse([]string{"--probe-deny-cidrs=192.0.2.0/24", "--probe-allow-cidrs=10.0.0.0/8,fd00::/8"}); err != nil {
		t.Fatal(err)
	}
	policy, err := p.policy(context.Background(), "https://127.0.0.1:6443")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.96.0.1")}
	if !slices.Equal(policy.APIServer, want) || len(policy.Deny) != 1 || len(policy.Allow) != 2 {
		t.Errorf("policy %+v; want API server %v, one denied prefix and two allowed", policy, want)
	}
	if err := policy.Check(netip.MustParseAddrPort("10.96.0.1:443"), true); err == nil {
		t.Error("a tenant's probe may reach KUBERNETES_SERVICE_HOST")
	}
	for _, flags := range [][]string{{"--probe-deny-cidrs=10.0.0.0/33"}, {"--probe-allow-cidrs=datasette.svc"}} {
		var bad probeAddresses
		fs := flag.NewFlagSet("manager", flag.ContinueOnError)
		bad.bindFlags(fs)
		if err := fs.Parse(flags); err != nil {
			t.Fatal(err)
		}
		name, _, _ := strings.Cut(flags[0], "=")
		if _, err := bad.policy(context.Background(), "https://127.0.0.1:6443"); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v, want one naming %s", flags, err, name)
		}
	}
}
