package dsprobe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
)

func TestAddressPolicyCheck(t *testing.T) {
	prefixes := func(s string) []netip.Prefix {
		p, err := ParsePrefixes(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	apiServer := []netip.Addr{netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("fd00:10:96::1")}
	defaults := &AddressPolicy{APIServer: apiServer}
	confined := &AddressPolicy{APIServer: apiServer, Allow: prefixes("10.0.0.0/8,fd00::/8"), Deny: prefixes("10.244.7.0/24")}
	opened := &AddressPolicy{APIServer: apiServer, Allow: prefixes("127.0.0.1,::1,10.96.0.1/32,10.0.0.0/8")}
	const everyone, tenants, nobody = "every probe", "tenants' probes", "no probe"
	for _, tt := range []struct {
		addr    string
		policy  *AddressPolicy
		refused string // everyone, tenants or nobody
	}{
		// Refused to every probe, whatever the policy.
		{"169.254.169.254:80", opened, everyone},
		{"169.254.0.1:8001", nil, everyone},
		{"[fe80::1]:8001", opened, everyone},
		{"[fe80::1%eth0]:8001", opened, everyone},
		{"[fd00:ec2::254]:80", opened, everyone},
		{"100.100.100.200:80", opened, everyone},
		{"[::ffff:169.254.169.254]:80", opened, everyone},
		{"[::ffff:a9fe:a9fe]:80", opened, everyone},
		{"[64:ff9b::a9fe:a9fe]:80", opened, everyone},
		{"0.0.0.0:8001", opened, everyone},
		{"0.1.2.3:8001", opened, everyone},
		{"[::]:8001", opened, everyone},
		{"[::ffff:0.0.0.0]:8001", opened, everyone},
		{"224.0.0.1:8001", opened, everyone},
		{"239.255.255.250:1900", opened, everyone},
		{"[ff02::1]:8001", opened, everyone},
		{"255.255.255.255:8001", opened, everyone},
		{"240.0.0.1:8001", opened, everyone},
		// --probe-deny-cidrs: every probe; it wins over --probe-allow-cidrs.
		{"10.244.7.9:8001", confined, everyone},
		{"[::ffff:10.244.7.9]:8001", confined, everyone},
		// Loopback and the API server: tenants' probes, unless a prefix within them is allowed.
		{"127.0.0.1:8001", defaults, tenants},
		{"127.0.0.1:8001", nil, tenants},
		{"127.1.2.3:8001", opened, tenants},
		{"[::1]:8001", defaults, tenants},
		{"[::ffff:127.0.0.1]:8001", defaults, tenants},
		{"[64:ff9b::7f00:1]:8001", defaults, tenants},
		{"10.96.0.1:443", defaults, tenants},
		{"10.96.0.1:443", confined, tenants}, // 10.0.0.0/8 does not open the API server
		{"[fd00:10:96::1]:443", confined, tenants},
		{"[::ffff:10.96.0.1]:443", defaults, tenants},
		{"127.0.0.1:8001", opened, nobody},
		{"[::1]:8001", opened, nobody},
		{"[::ffff:127.0.0.1]:8001", opened, nobody},
		{"10.96.0.1:443", opened, nobody},
		// The control plane's ports: tenants' probes, on any address, whatever Allow says.
		{"10.0.3.4:10250", opened, tenants},
		{"10.0.3.4:10255", defaults, tenants},
		{"10.0.3.4:2379", defaults, tenants},
		{"127.0.0.1:10250", opened, tenants},
		// --probe-allow-cidrs confines tenants' probes only.
		{"192.168.1.10:8001", confined, tenants},
		{"203.0.113.7:443", confined, tenants},
		{"10.1.2.3:8001", confined, nobody},
		{"[fd12::7]:8001", confined, nobody},
		// Private and public addresses otherwise.
		{"10.1.2.3:8001", defaults, nobody},
		{"172.16.0.5:8001", defaults, nobody},
		{"192.168.1.10:8001", defaults, nobody},
		{"100.64.0.10:8001", defaults, nobody},
		{"203.0.113.7:443", nil, nobody},
		{"[2001:db8::7]:443", defaults, nobody},
		{"[fd12::7]:8001", defaults, nobody},
	} {
		addr := netip.MustParseAddrPort(tt.addr)
		for _, tenant := range []bool{false, true} {
			err := tt.policy.Check(addr, tenant)
			want := tt.refused == everyone || (tenant && tt.refused == tenants)
			if (err != nil) != want {
				t.Errorf("Check(%s, tenant=%v) = %v; want it refused to %s", tt.addr, tenant, err, tt.refused)
			}
			if err != nil && (!errors.Is(err, ErrAddressRefused) || !strings.Contains(err.Error(), addr.Addr().String())) {
				t.Errorf("Check(%s): %q does not name the address and wrap ErrAddressRefused", tt.addr, err)
			}
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1,, ::ffff:10.1.0.0/112, 10.1.2.3/16")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "::1/128", "10.1.0.0/16", "10.1.0.0/16"}
	s := make([]string, 0, len(got))
	for _, p := range got {
		s = append(s, p.String())
	}
	if !slices.Equal(s, want) {
		t.Errorf("ParsePrefixes = %q, want %q", s, want)
	}
	if got, err := ParsePrefixes(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "datasette.svc", "10.0.0.0/8;", "fe80::1%eth0", "10.0.0"} {
		if _, err := ParsePrefixes("10.0.0.0/8," + bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParsePrefixes(%q): error %v, want one naming it", bad, err)
		}
	}
}

// TestProbeChecksTheDialledAddress: the policy sees the address a name resolves to, when
// dialling: "localhost" is refused to a tenant's probe as 127.0.0.1 and ::1 are, and no request
// reaches the server; a cluster signer's probe, or a tenant's with loopback allowed, reaches it.
func TestProbeChecksTheDialledAddress(t *testing.T) {
	f := &fakeDatasette{key: []byte("k")}
	srv := newFake(t, f)
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	minter := dstoken.NewMinter([]byte("k"))
	got := Probe(context.Background(), minter, Config{URL: url, Tenant: true}, time.Now())
	if got.Verdict != Unreachable || !strings.Contains(got.Detail, "a loopback address, refused to a DatasetteSigner's probe") {
		t.Errorf("a tenant's probe of %s: %+v; want it refused as loopback", url, got)
	}
	if n := len(f.tokens); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
	loopback, _ := ParsePrefixes("127.0.0.1,::1")
	for _, cfg := range []Config{{URL: url}, {URL: url, Tenant: true, Addresses: &AddressPolicy{Allow: loopback}}} {
		if got := Probe(context.Background(), minter, cfg, time.Now()); got.Verdict != KeyAccepted {
			t.Errorf("tenant=%v, allow %v: %+v", cfg.Tenant, cfg.Addresses, got)
		}
	}
}

// TestProbeRefusesMetadataAtOnce: the metadata address is refused before any connection, to
// every probe, in each of its spellings, and the detail says so.
func TestProbeRefusesMetadataAtOnce(t *testing.T) {
	for _, url := range []string{"http://169.254.169.254/", "http://[::ffff:169.254.169.254]:80", "https://[fd00:ec2::254]/latest"} {
		start := time.Now()
		got := Probe(context.Background(), dstoken.NewMinter([]byte("k")), Config{URL: url}, start)
		if got.Verdict != Unreachable || !strings.Contains(got.Detail, ErrAddressRefused.Error()) {
			t.Errorf("%s: %+v", url, got)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v", url, d)
		}
	}
}

// TestTenantProbeReadsNothingOfAnInstanceRejectingTheKey: an instance that does not accept a
// tenant's key is not shown to be the tenant's: its release and settings are not asked for.
func TestTenantProbeReadsNothingOfAnInstanceRejectingTheKey(t *testing.T) {
	f := &fakeDatasette{key: []byte("another tenant's key"), status401: true}
	srv := newFake(t, f)
	loopback, _ := ParsePrefixes("127.0.0.1")
	got := Probe(context.Background(), dstoken.NewMinter([]byte("k")),
		Config{URL: srv.URL, Tenant: true, Addresses: &AddressPolicy{Allow: loopback}}, time.Now())
	if got.Verdict != KeyRejected || got.Version != "" || got.SettingsKnown {
		t.Errorf("got %+v; want KeyRejected and nothing else", got)
	}
	if len(f.tokens) != 1 {
		t.Errorf("%d requests; want /-/actor.json alone", len(f.tokens))
	}
}

// addrConn is a net.Conn whose remote address is addr.
type addrConn struct {
	net.Conn
	addr net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.addr }

// TestPinnedDialer: after its first connection, a probe dials the address that connection
// reached, whatever the name resolves to next (DNS rebinding between the probe's requests).
func TestPinnedDialer(t *testing.T) {
	var dialled []string
	d := &pinnedDialer{dial: func(_ context.Context, _, address string) (net.Conn, error) {
		dialled = append(dialled, address)
		if len(dialled) == 1 {
			return nil, errors.New("connection refused")
		}
		client, server := net.Pipe()
		t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
		return addrConn{Conn: client, addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8001}}, nil
	}}
	for range 3 {
		conn, err := d.DialContext(context.Background(), "tcp", "datasette.tenant.svc.cluster.local:8001")
		if err == nil {
			_ = conn.Close()
		}
	}
	want := []string{"datasette.tenant.svc.cluster.local:8001", "datasette.tenant.svc.cluster.local:8001", "10.1.2.3:8001"}
	if !slices.Equal(dialled, want) {
		t.Errorf("dialled %q, want %q: a failed dial pins nothing, a connection pins its address", dialled, want)
	}
}

func TestResolveAddresses(t *testing.T) {
	for host, want := range map[string]string{"10.96.0.1": "10.96.0.1", "[fd00::1]": "fd00::1", "::ffff:10.96.0.1": "10.96.0.1"} {
		got, err := ResolveAddresses(context.Background(), host)
		if err != nil || len(got) != 1 || got[0].String() != want {
			t.Errorf("ResolveAddresses(%q) = %v, %v; want %s", host, got, err, want)
		}
	}
	got, err := ResolveAddresses(context.Background(), "localhost")
	if err != nil || !slices.ContainsFunc(got, netip.Addr.IsLoopback) {
		t.Errorf("ResolveAddresses(localhost) = %v, %v", got, err)
	}
}
