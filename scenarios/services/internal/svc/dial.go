package svc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Dialer resolves the host on every new connection and picks one of its
// addresses at random, so the replicas behind a name share the load even
// though each caller keeps long-lived pooled connections.
type Dialer struct {
	net.Dialer
}

// NewDialer returns a Dialer whose connects give up after timeout (0: none,
// beyond the context's deadline and the kernel's own).
func NewDialer(timeout time.Duration) *Dialer {
	return &Dialer{net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}}
}

// DialContext connects to address (host:port) over network.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) != nil {
		return d.Dialer.DialContext(ctx, network, address)
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	return d.Dialer.DialContext(ctx, network, net.JoinHostPort(addrs[Intn(len(addrs))], port))
}

// NewTransport returns an HTTP/1.1 transport that keeps up to idlePerHost
// idle connections per upstream and dials through d; with idlePerHost 0 it
// opens a new connection for every call, as clients without pooling do.
// Proxies from the environment are ignored: services talk to their peers
// directly.
func NewTransport(d *Dialer, idlePerHost int) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0, // no global cap; the per-host cap applies
		MaxIdleConnsPerHost:   idlePerHost,
		DisableKeepAlives:     idlePerHost == 0,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
}
