// Package outbound makes HTTP calls to destinations that users configure (webhook receivers,
// request backends) safely: a transport whose dialer refuses internal addresses (SSRF), a
// client that does not follow redirects, and the classification of a call's outcome into
// a Result whose message is fit to show users. It depends on the standard library,
// code.dny.dev/ssrf and the domain's error classes only, so any adapter may use it.
package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// ErrRefusedByPolicy is wrapped by the error of a dial to an address that the SSRF policy
// refuses (loopback, private, link-local, CGNAT, multicast, unspecified, metadata and other
// non-public ranges outside the operator's allow-list). It survives the wrapping done by
// net and net/http, so callers detect it with errors.Is.
var ErrRefusedByPolicy = errors.New("destination address refused by policy")

// Transport defaults, used for zero fields of TransportConfig.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdleConns          = 1024
	DefaultMaxIdleConnsPerHost   = 64
	DefaultMaxResponseHeaderSize = 64 << 10
)

// TransportConfig configures NewTransport. Zero fields take the defaults above.
type TransportConfig struct {
	// AllowNetworks are networks the transport may connect to even though the SSRF policy
	// would refuse them, e.g. 127.0.0.0/8 for tests and the local quick start, or an
	// internal range whose receivers the operator trusts. IPv4-mapped IPv6 destinations are
	// matched as IPv4. 0.0.0.0/0 and ::/0 disable the protection entirely.
	AllowNetworks []netip.Prefix

	// MaxConnsPerHost bounds the connections (dialing, active and idle) per host; 0 means
	// no limit. The engine bounds per-destination concurrency itself, so this is only a
	// safety net. Requests over the limit wait for a connection within their deadline.
	MaxConnsPerHost int
	// MaxIdleConns bounds the idle (keep-alive) connections over all hosts.
	MaxIdleConns int
	// MaxIdleConnsPerHost bounds the idle (keep-alive) connections kept per host.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle connections after this long.
	IdleConnTimeout time.Duration

	// DialTimeout bounds establishing a TCP connection (each call is also bounded by its
	// context deadline, whichever comes first).
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout time.Duration
	// MaxResponseHeaderBytes bounds the size of a receiver's response headers.
	MaxResponseHeaderBytes int64

	// RootCAs are the certificate authorities trusted for receivers' certificates; nil
	// means the system roots.
	RootCAs *x509.CertPool

	// Proxy selects a proxy for a request, as http.Transport.Proxy. Nil (the default)
	// means no proxy: the proxy environment variables are deliberately ignored, so webhooks
	// never silently go through a proxy. With a proxy the dialer connects to the proxy,
	// so the SSRF policy applies to the proxy's address (which may need to be in
	// AllowNetworks) and the proxy itself must refuse internal destinations.
	Proxy func(*http.Request) (*url.URL, error)
}

// NewTransport returns an HTTP transport whose dialer refuses, after DNS resolution and
// just before connecting (so DNS rebinding cannot bypass it), any address that is not
// publicly routable, unless the address is in cfg.AllowNetworks. A refused dial fails with
// an error wrapping ErrRefusedByPolicy, without sending a packet.
//
// The transport speaks HTTP/1.1 and HTTP/2 (over TLS), keeps connections alive, requires
// TLS 1.2 or later, uses no proxy unless cfg.Proxy is set, and sets no response header
// timeout: the caller bounds each call with its context deadline.
func NewTransport(cfg TransportConfig) *http.Transport {
	cfg = cfg.withDefaults()
	dialer := &net.Dialer{
		Timeout:   cfg.DialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   newPolicy(cfg.AllowNetworks).control,
	}
	return &http.Transport{
		Proxy:                  cfg.Proxy,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           cfg.MaxIdleConns,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		MaxConnsPerHost:        cfg.MaxConnsPerHost,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    cfg.RootCAs,
		},
	}
}

func (cfg TransportConfig) withDefaults() TransportConfig {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.TLSHandshakeTimeout <= 0 {
		cfg.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if cfg.IdleConnTimeout <= 0 {
		cfg.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = DefaultMaxIdleConns
	}
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.MaxConnsPerHost < 0 {
		cfg.MaxConnsPerHost = 0
	}
	if cfg.MaxResponseHeaderBytes <= 0 {
		cfg.MaxResponseHeaderBytes = DefaultMaxResponseHeaderSize
	}
	return cfg
}

// NewClient returns an HTTP client over t that does not follow redirects: a 3xx answer is
// returned as is (and counts as success). It has no overall timeout; bound each call
// with a context deadline.
func NewClient(t http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// policy decides at dial time which resolved addresses may be connected to.
type policy struct {
	allow    []netip.Prefix
	guardian *ssrf.Guardian
}

func newPolicy(allow []netip.Prefix) *policy {
	p := &policy{allow: make([]netip.Prefix, 0, len(allow))}
	for _, n := range allow {
		if n.IsValid() {
			p.allow = append(p.allow, unmapPrefix(n).Masked())
		}
	}
	// Any port: webhook receivers commonly listen on ports other than 80 and 443. The
	// guardian keeps its default of TCP (tcp4, tcp6) only.
	p.guardian = ssrf.New(ssrf.WithAnyPort())
	return p
}

// control is a net.Dialer.Control: it runs after DNS resolution, for each address the
// dialer is about to connect to.
func (p *policy) control(network, address string, c syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefusedByPolicy, err)
	}
	addr := ap.Addr().Unmap()
	if network == "tcp4" || network == "tcp6" {
		for _, n := range p.allow {
			if n.Contains(addr) {
				return nil
			}
		}
	}
	if err := p.guardian.Safe(network, netip.AddrPortFrom(addr, ap.Port()).String(), c); err != nil {
		return fmt.Errorf("%w: %w", ErrRefusedByPolicy, err)
	}
	return nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/n, n >= 96) into the
// equivalent IPv4 prefix, so that it matches the unmapped addresses the policy checks.
func unmapPrefix(n netip.Prefix) netip.Prefix {
	if n.Addr().Is4In6() && n.Bits() >= 96 {
		return netip.PrefixFrom(n.Addr().Unmap(), n.Bits()-96)
	}
	return n
}

// ParseNetworks parses a comma-separated list of networks in CIDR notation, e.g.
// "127.0.0.0/8,10.1.0.0/16,::1/128", as given to --allow-networks. A bare address stands
// for itself (/32 or /128). Spaces around entries are ignored; an empty or blank string
// yields no networks. A network with host bits set (10.1.2.3/16) is an error, as is an
// empty entry.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	entries := strings.Split(s, ",")
	nets := make([]netip.Prefix, 0, len(entries))
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("network list %q: entry %d is empty", s, i+1)
		}
		n, err := parseNetwork(e)
		if err != nil {
			return nil, fmt.Errorf("network list entry %d: %w", i+1, err)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

func parseNetwork(e string) (netip.Prefix, error) {
	if !strings.Contains(e, "/") {
		a, err := netip.ParseAddr(e)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a network in CIDR notation (like 10.1.0.0/16 or fd00::/8)", e)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	n, err := netip.ParsePrefix(e)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR notation (like 10.1.0.0/16 or fd00::/8)", e)
	}
	if m := n.Masked(); m != n {
		return netip.Prefix{}, fmt.Errorf("%q has bits set after the /%d prefix length; did you mean %s?", e, n.Bits(), m)
	}
	return unmapPrefix(n), nil
}
