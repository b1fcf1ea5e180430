package httpsink

import (
	"fmt"
	"net"
	"net/netip"
)

// specialPurpose lists the IANA IPv4 and IPv6 Special-Purpose Address
// Registries' blocks (RFC 6890 and its updates), and multicast: none is
// a receiver on the public internet, so none is dialled without
// allow_private. NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16)
// and Teredo (2001::/32) embed IPv4 addresses, 127.0.0.1 among them, and
// are refused whole; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
// checked as the IPv4 address it is.
var specialPurpose = prefixes(
	// IPv4
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"255.255.255.255/32",
	// IPv6
	"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
	"2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

func prefixes(ps ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// checkAddress refuses an address (host:port, as the dialer's Control
// hook sees it: the address actually dialled, after DNS) in a special
// purpose block, unless allowPrivate.
func checkAddress(address string, allowPrivate bool) error {
	if allowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateTarget, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateTarget, host)
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range specialPurpose {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is in %s", ErrPrivateTarget, ip, p)
		}
	}
	return nil
}
