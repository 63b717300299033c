package delivery

import (
	"net/http"
	"net/netip"

	"github.com/ubihooks/ubihooks/internal/outbound"
)

// The engine's client is built with package outbound. These forwarders keep the callers
// that still build it through this package compiling; new code calls outbound directly.

// TransportConfig is outbound.TransportConfig.
type TransportConfig = outbound.TransportConfig

// NewTransport is outbound.NewTransport.
func NewTransport(cfg TransportConfig) *http.Transport { return outbound.NewTransport(cfg) }

// NewClient is outbound.NewClient.
func NewClient(t http.RoundTripper) *http.Client { return outbound.NewClient(t) }

// ParseNetworks is outbound.ParseNetworks.
func ParseNetworks(s string) ([]netip.Prefix, error) { return outbound.ParseNetworks(s) }
