package upgrade

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	clientportforward "k8s.io/client-go/tools/portforward"
	clientspdy "k8s.io/client-go/transport/spdy"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// portForwardUpstreamPingPeriod is how often kubegate pings the apiserver
// over an idle SPDY connection, as client-go's SPDY round tripper does, so
// that idle connections survive load balancers. (client-go's tunnel pings
// every clientportforward.PingPeriod.)
const portForwardUpstreamPingPeriod = 5 * time.Second

// portForwardHandshakeTimeout bounds dialing and upgrading upstream.
const portForwardHandshakeTimeout = 30 * time.Second

// portForwardUpstream is a session's connection to the apiserver.
type portForwardUpstream struct {
	conn     httpstream.Connection
	protocol string
	// net holds the network connections under conn.
	net       *portForwardNetConns
	closeOnce sync.Once
}

// close closes the connection without waiting for the apiserver: first
// the network connections underneath, which fails writers blocked on an
// apiserver that stopped reading (conn.Close alone writes frames, and so
// would wait behind them), then conn, which ends its goroutines. Only a
// SPDY connection through a proxy has no network connection on record
// (see portForwardDialer.spdy); conn.Close alone closes it.
func (u *portForwardUpstream) close() {
	u.closeOnce.Do(func() {
		u.net.close()
		_ = u.conn.Close()
	})
}

// portForwardDial connects to the apiserver's port-forward endpoint u as
// cfg's user, with client-go's dialers, as kubectl does: SPDY tunneled
// through WebSocket first, SPDY/3.1 when the apiserver (or a proxy on the
// way) refuses the WebSocket upgrade. As the tunnel is a GET and SPDY a
// POST, a caller allowed only "create" on pods/portforward ends up on
// SPDY. When cfg.Dial is set only SPDY is tried, as client-go's tunnel
// cannot use it. Ending ctx aborts the dial.
func portForwardDial(ctx context.Context, cfg *rest.Config, u *url.URL, log *slog.Logger) (*portForwardUpstream, error) {
	ctx, cancel := context.WithTimeout(ctx, portForwardHandshakeTimeout)
	defer cancel()
	d, err := newPortForwardDialer(ctx, cfg, u)
	if err != nil {
		return nil, err
	}
	spdyDialer, err := d.spdy()
	if err != nil {
		return nil, err
	}
	if cfg.Dial != nil {
		return d.connect(spdyDialer, portForwardClientSPDY)
	}
	tunnel, err := d.tunnel()
	if err != nil {
		return nil, err
	}
	// The fallback dialer decides on the tunnel's error alone; protocol
	// records which dialer it used.
	protocol := portForwardClientTunnel
	dialer := clientportforward.NewFallbackDialerForStreaming(tunnel, spdyDialer, func(err error) bool {
		if !httpstream.IsUpgradeFailure(err) && !httpstream.IsHTTPSProxyError(err) {
			return false
		}
		log.Info("apiserver refused the WebSocket tunnel; falling back to SPDY", "err", err)
		protocol = portForwardClientSPDY
		return true
	})
	up, err := d.connect(dialer, portForwardClientTunnel)
	if err != nil {
		return nil, err
	}
	up.protocol = string(protocol)
	return up, nil
}

// portForwardDialer builds client-go's port-forward dialers for one dial
// to the apiserver. client-go's dialers take no context and keep their
// network connections to themselves, so the rest.Config they get has a
// round tripper (portForwardContextTransport) that gives their requests
// the dial's context, with an httptrace hook that records the connection
// the WebSocket dialer opens, and the SPDY dialer dials through
// portForwardDialer.dialContext, which records its own.
type portForwardDialer struct {
	// ctx bounds the dial; ending it closes the connections on record.
	ctx context.Context
	// cfg is the caller's rest.Config with portForwardContextTransport.
	cfg *rest.Config
	url *url.URL
	// tls is the SPDY dialer's TLS config, never nil.
	tls   *tls.Config
	proxy func(*http.Request) (*url.URL, error)
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	net   *portForwardNetConns
}

func newPortForwardDialer(ctx context.Context, cfg *rest.Config, u *url.URL) (*portForwardDialer, error) {
	d := &portForwardDialer{ctx: ctx, url: u, proxy: cfg.Proxy, dial: cfg.Dial, net: &portForwardNetConns{}}
	if d.proxy == nil {
		// As client-go's WebSocket round tripper does.
		d.proxy = utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)
	}
	if d.dial == nil {
		d.dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	tc, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the apiserver TLS config: %w", err)
	}
	// Without one, the SPDY round tripper would not verify the apiserver.
	if tc == nil {
		tc = &tls.Config{}
	} else {
		tc = tc.Clone()
	}
	// Upgrades are HTTP/1.1 only.
	tc.NextProtos = []string{"http/1.1"}
	d.tls = tc
	reqCtx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { d.net.add(info.Conn) },
	})
	d.cfg = rest.CopyConfig(cfg)
	d.cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &portForwardContextTransport{next: rt, ctx: reqCtx}
	})
	return d, nil
}

// tunnel is client-go's dialer of SPDY tunneled through WebSocket. A
// refused upgrade is an *httpstream.UpgradeFailureError. It honours
// cfg's TLS settings, Proxy and credentials, not its Dial.
func (d *portForwardDialer) tunnel() (httpstream.Dialer, error) {
	dialer, err := clientportforward.NewSPDYOverWebsocketDialerForStreaming(d.url, d.cfg)
	if err != nil {
		return nil, fmt.Errorf("building the WebSocket tunnel dialer: %w", err)
	}
	return dialer, nil
}

// spdy is client-go's SPDY/3.1 dialer. It dials through dialContext,
// which honours cfg.Dial and records the connection, unless a proxy
// applies to the URL: then the round tripper dials through the proxy
// itself, and the connection is not on record.
func (d *portForwardDialer) spdy() (httpstream.Dialer, error) {
	rtc := spdy.RoundTripperConfig{PingPeriod: portForwardUpstreamPingPeriod}
	proxyURL, err := d.proxy(&http.Request{URL: d.url})
	if err != nil {
		return nil, fmt.Errorf("choosing a proxy for %s: %w", d.url.Host, err)
	}
	if proxyURL != nil {
		rtc.TLS, rtc.Proxier = d.tls, d.proxy
	} else {
		rtc.UpgradeTransport = &http.Transport{DialContext: d.dialContext, TLSClientConfig: d.tls}
	}
	rt, err := spdy.NewRoundTripperWithConfig(rtc)
	if err != nil {
		return nil, fmt.Errorf("building the SPDY round tripper: %w", err)
	}
	wrapped, err := rest.HTTPWrappersForConfig(d.cfg, rt)
	if err != nil {
		return nil, fmt.Errorf("building the apiserver credentials: %w", err)
	}
	return clientspdy.NewDialerForStreaming(clientspdy.NewUpgraderForStreaming(rt),
		&http.Client{Transport: wrapped}, http.MethodPost, d.url), nil
}

// dialContext dials with cfg.Dial (or a net.Dialer) and records the
// connection.
func (d *portForwardDialer) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.net.add(c)
	return c, nil
}

// connect dials with dialer, one of d's, and returns the connection. d's
// context ending during the dial closes the connections on record, which
// aborts it.
func (d *portForwardDialer) connect(dialer httpstream.Dialer, protocol portForwardClientProtocol) (*portForwardUpstream, error) {
	stop := context.AfterFunc(d.ctx, d.net.close)
	conn, _, err := dialer.Dial(portforward.ProtocolV1Name)
	if !stop() {
		if conn != nil {
			_ = conn.Close()
		}
		return nil, fmt.Errorf("dialing apiserver %s: %w", d.url.Host, context.Cause(d.ctx))
	}
	if err != nil {
		// Failed upgrades leave their connection open.
		d.net.close()
		return nil, fmt.Errorf("dialing apiserver %s: %w", d.url.Host, err)
	}
	return &portForwardUpstream{conn: conn, protocol: string(protocol), net: d.net}, nil
}

// portForwardContextTransport gives the requests of client-go's dialers
// the dial's context: client-go's WebSocket dialer passes it on to its
// handshake (a deadline bounds all of it), the SPDY round tripper to its
// dial.
type portForwardContextTransport struct {
	next http.RoundTripper
	ctx  context.Context
}

func (t *portForwardContextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(req.WithContext(t.ctx))
}

// WrappedRoundTripper lets client-go find the round tripper underneath.
func (t *portForwardContextTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

var _ utilnet.RoundTripperWrapper = (*portForwardContextTransport)(nil)

// portForwardNetConns records the network connections of one upstream
// connection and its failed attempts; once closed, it closes whatever is
// added.
type portForwardNetConns struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func (c *portForwardNetConns) add(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = conn.Close()
		return
	}
	c.conns = append(c.conns, conn)
}

func (c *portForwardNetConns) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}
