package dsprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// ErrAddressRefused marks a connection the address policy refused; no packet was sent to it.
var ErrAddressRefused = errors.New("refused by the operator's probe address policy")

// AddressPolicy says which addresses a probe may connect to. It is checked on every connection
// attempt, against the IP address and port actually dialled (after DNS), so that a name which
// resolves, or is re-pointed, to a refused address is refused too.
//
// Whatever the policy, no probe connects to an unspecified, link-local (cloud metadata among
// them), multicast, broadcast or reserved address, in any spelling (IPv4-mapped IPv6, NAT64).
// A tenant's probe (Config.Tenant) may not connect to loopback, to the API server's addresses
// or to the control plane's well-known ports either, and, when Allow is set, only to Allow.
type AddressPolicy struct {
	// Deny holds further prefixes refused to every probe. It wins over Allow.
	Deny []netip.Prefix
	// Allow, when not empty, holds the only prefixes a tenant's probe may connect to. A prefix
	// that lies within loopback or is one of APIServer opens that address to tenants' probes;
	// a broader one does not (10.0.0.0/8 does not open the API server's 10.96.0.1). It opens
	// nothing refused to every probe, and does not confine cluster-scoped signers' probes.
	Allow []netip.Prefix
	// APIServer holds the API server's addresses, refused to tenants' probes.
	APIServer []netip.Addr
}

// alwaysRefused are the ranges no probe connects to, whatever the policy.
var alwaysRefused = []refusedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (cloud metadata among them)"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address"},
	{netip.MustParsePrefix("100.100.100.200/32"), "a cloud metadata address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address"},
}

// tenantRefused are the ranges tenants' probes do not connect to, unless Allow opens them.
var tenantRefused = []refusedRange{
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
}

// ControlPlanePorts are the ports no tenant's probe connects to, on any address: etcd, the
// kubelet (and its read-only port), kube-proxy, the controller manager and the scheduler.
var ControlPlanePorts = []uint16{2379, 2380, 10249, 10250, 10255, 10256, 10257, 10259}

// nat64 is the well-known NAT64 prefix, which embeds an IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// refusedRange is a prefix and what it is, for an error message.
type refusedRange struct {
	prefix netip.Prefix
	what   string
}

// Check reports whether a probe may connect to addr; tenant says it is a tenant's probe. Its
// error wraps ErrAddressRefused and says why, naming the address. A nil policy refuses what
// the zero policy does.
func (p *AddressPolicy) Check(addr netip.AddrPort, tenant bool) error {
	if p == nil {
		p = &AddressPolicy{}
	}
	refuse := func(why string) error {
		return fmt.Errorf("%s is %s: %w", addr, why, ErrAddressRefused)
	}
	in := func(a netip.Addr) func(netip.Prefix) bool {
		return func(prefix netip.Prefix) bool { return prefix.Contains(a) }
	}
	for _, a := range spellings(addr.Addr()) {
		for _, r := range alwaysRefused {
			if r.prefix.Contains(a) {
				return refuse(r.what)
			}
		}
		if slices.ContainsFunc(p.Deny, in(a)) {
			return refuse("in --probe-deny-cidrs")
		}
		if !tenant {
			continue
		}
		for _, r := range tenantRefused {
			if r.prefix.Contains(a) && !p.opens(r.prefix, a) {
				return refuse(r.what + ", refused to a DatasetteSigner's probe")
			}
		}
		if slices.Contains(p.APIServer, a) && !p.opens(netip.PrefixFrom(a, a.BitLen()), a) {
			return refuse("the API server's address, refused to a DatasetteSigner's probe")
		}
		if len(p.Allow) > 0 && !slices.ContainsFunc(p.Allow, in(a)) {
			return refuse("outside --probe-allow-cidrs")
		}
	}
	if tenant && slices.Contains(ControlPlanePorts, addr.Port()) {
		return fmt.Errorf("port %d of %s is a control-plane port, refused to a DatasetteSigner's probe: %w",
			addr.Port(), addr.Addr(), ErrAddressRefused)
	}
	return nil
}

// opens reports whether an Allow prefix opens a within the refused range: one that holds a
// and lies within the range.
func (p *AddressPolicy) opens(refused netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(p.Allow, func(al netip.Prefix) bool {
		return al.Contains(a) && al.Bits() >= refused.Bits() && refused.Contains(al.Addr())
	})
}

// spellings are the addresses a stands for: itself unmapped from IPv4-mapped IPv6, and the IPv4
// address a NAT64 address embeds.
func spellings(a netip.Addr) []netip.Addr {
	a = a.Unmap().WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		return []netip.Addr{a, netip.AddrFrom4([4]byte(b[12:]))}
	}
	return []netip.Addr{a}
}

// control is a net.Dialer Control function refusing what the policy refuses, called for each
// address the dialer tries, after DNS and before connecting.
func (p *AddressPolicy) control(tenant bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		addr, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%s address %q: %w", network, address, ErrAddressRefused)
		}
		return p.Check(addr, tenant)
	}
}

// ParsePrefixes reads a comma-separated list of CIDR prefixes or single addresses (a flag's
// value). An IPv4-mapped IPv6 prefix is read as the IPv4 prefix it maps, as addresses are.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(item)
		if err != nil {
			addr, addrErr := netip.ParseAddr(item)
			if addrErr != nil || addr.Zone() != "" {
				return nil, fmt.Errorf("%q is neither a CIDR prefix nor an IP address: %w", item, err)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		if prefix.Addr().Is4In6() && prefix.Bits() >= 96 {
			prefix = netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96)
		}
		out = append(out, prefix.Masked())
	}
	return out, nil
}

// ResolveAddresses returns the IP addresses of host (an IP address or a name, looked up once).
func ResolveAddresses(ctx context.Context, host string) ([]netip.Addr, error) {
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{addr.Unmap().WithZone("")}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap().WithZone("")
	}
	return addrs, nil
}

// pinnedDialer dials, for the rest of a probe, the address its first connection reached: the
// probe's requests all go to the URL's host and port, and a name that resolves elsewhere at the
// second request (DNS rebinding) must not send it to another instance.
type pinnedDialer struct {
	dial   func(ctx context.Context, network, address string) (net.Conn, error)
	mu     sync.Mutex
	pinned string // "ip:port" of the first connection, "" before it
}

// DialContext dials address, or the pinned address once there is one.
func (d *pinnedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	pinned := d.pinned
	d.mu.Unlock()
	if pinned != "" {
		address = pinned
	}
	conn, err := d.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if pinned == "" {
		d.mu.Lock()
		if d.pinned == "" {
			d.pinned = conn.RemoteAddr().String()
		}
		d.mu.Unlock()
	}
	return conn, nil
}
