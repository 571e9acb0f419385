package upgrade

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"
	"k8s.io/client-go/rest"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// portForwardUpstreamPingPeriod is how often kubegate pings the apiserver
// over an idle upstream connection, as client-go does, so that idle
// connections survive load balancers.
const portForwardUpstreamPingPeriod = 5 * time.Second

// portForwardHandshakeTimeout bounds dialing and upgrading upstream.
const portForwardHandshakeTimeout = 30 * time.Second

// portForwardMaxStatusBody bounds what is read of a refused upgrade's body.
const portForwardMaxStatusBody = 64 << 10

// portForwardUpstream is a session's connection to the apiserver.
type portForwardUpstream struct {
	conn httpstream.Connection
	// raw is the network connection underneath. Closing it first unblocks
	// writers stuck on a peer that does not read, which conn.Close would
	// wait for.
	raw      net.Conn
	protocol string
}

func (u *portForwardUpstream) close() {
	_ = u.raw.Close()
	_ = u.conn.Close()
}

// portForwardDial connects to the apiserver's port-forward endpoint u as
// cfg's user. It prefers SPDY tunneled through WebSocket and falls back to
// SPDY/3.1 when the apiserver refuses the WebSocket upgrade, as kubectl
// does. As the tunnel is a GET and SPDY a POST, a caller allowed only
// "create" on pods/portforward ends up on SPDY. When a proxy is configured
// for u (rest.Config.Proxy, or the environment), only SPDY is tried.
func portForwardDial(ctx context.Context, cfg *rest.Config, u *url.URL, log *slog.Logger) (*portForwardUpstream, error) {
	d, err := newPortForwardDialer(cfg, u)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, portForwardHandshakeTimeout)
	defer cancel()
	proxy, err := d.proxy(&http.Request{URL: u})
	if err != nil {
		return nil, fmt.Errorf("choosing a proxy for %s: %w", u.Host, err)
	}
	if proxy == nil {
		up, err := d.dialTunnel(ctx)
		if err == nil || !httpstream.IsUpgradeFailure(err) {
			return up, err
		}
		log.Info("apiserver refused the WebSocket tunnel; falling back to SPDY", "err", err)
	}
	return d.dialSPDY(ctx)
}

// portForwardDialer dials the apiserver with a rest.Config's settings.
type portForwardDialer struct {
	cfg   *rest.Config
	url   *url.URL
	tls   *tls.Config // nil for http
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	proxy func(*http.Request) (*url.URL, error)
}

func newPortForwardDialer(cfg *rest.Config, u *url.URL) (*portForwardDialer, error) {
	d := &portForwardDialer{cfg: cfg, url: u, dial: cfg.Dial, proxy: cfg.Proxy}
	if u.Scheme == "https" {
		tc, err := rest.TLSConfigFor(cfg)
		if err != nil {
			return nil, fmt.Errorf("building the apiserver TLS config: %w", err)
		}
		if tc == nil {
			tc = &tls.Config{}
		} else {
			tc = tc.Clone()
		}
		// Upgrades are HTTP/1.1 only.
		tc.NextProtos = []string{"http/1.1"}
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		d.tls = tc
	}
	if d.dial == nil {
		d.dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	if d.proxy == nil {
		d.proxy = http.ProxyFromEnvironment
	}
	return d, nil
}

// authHeaders returns the headers client-go would add to a request to u
// for cfg: credentials, impersonation, user agent. They are collected by
// running a request through cfg's round-tripper wrappers.
func (d *portForwardDialer) authHeaders(ctx context.Context, method string) (http.Header, error) {
	var got http.Header
	rt, err := rest.HTTPWrappersForConfig(d.cfg, portForwardRoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Clone()
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("building the apiserver credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.url.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("getting the apiserver credentials: %w", err)
	}
	_ = resp.Body.Close()
	return got, nil
}

type portForwardRoundTripFunc func(*http.Request) (*http.Response, error)

func (f portForwardRoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// dialRaw opens a (TLS) connection to the apiserver.
func (d *portForwardDialer) dialRaw(ctx context.Context) (raw, conn net.Conn, err error) {
	addr := d.url.Host
	if d.url.Port() == "" {
		port := "443"
		if d.url.Scheme == "http" {
			port = "80"
		}
		addr = net.JoinHostPort(d.url.Hostname(), port)
	}
	raw, err = d.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dialing apiserver %s: %w", addr, err)
	}
	if d.tls == nil {
		return raw, raw, nil
	}
	tc := tls.Client(raw, d.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, nil, fmt.Errorf("TLS handshake with apiserver %s: %w", addr, err)
	}
	return raw, tc, nil
}

// dialTunnel upgrades to SPDY tunneled through WebSocket. A refused
// upgrade is an *httpstream.UpgradeFailureError.
func (d *portForwardDialer) dialTunnel(ctx context.Context) (*portForwardUpstream, error) {
	hdr, err := d.authHeaders(ctx, http.MethodGet)
	if err != nil {
		return nil, err
	}
	raw, conn, err := d.dialRaw(ctx)
	if err != nil {
		return nil, err
	}
	wsURL := *d.url
	wsURL.Scheme = map[string]string{"https": "wss", "http": "ws"}[d.url.Scheme]
	origin := (&url.URL{Scheme: d.url.Scheme, Host: d.url.Host}).String()
	wcfg, err := websocket.NewConfig(wsURL.String(), origin)
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	wcfg.Protocol = []string{portForwardTunnelProtocol}
	wcfg.Header = hdr
	// The handshake cannot take a context: closing the connection stops it.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	ws, err := websocket.NewClient(wcfg, conn)
	if !stop() {
		_ = raw.Close()
		return nil, fmt.Errorf("upgrading to the WebSocket tunnel: %w", context.Cause(ctx))
	}
	if err != nil {
		_ = raw.Close()
		var pe *websocket.ProtocolError
		if errors.As(err, &pe) {
			return nil, &httpstream.UpgradeFailureError{Cause: fmt.Errorf("upgrading to the WebSocket tunnel: %w", err)}
		}
		return nil, fmt.Errorf("upgrading to the WebSocket tunnel: %w", err)
	}
	if p := ws.Config().Protocol; len(p) != 1 || p[0] != portForwardTunnelProtocol {
		_ = raw.Close()
		return nil, &httpstream.UpgradeFailureError{Cause: fmt.Errorf("apiserver chose WebSocket subprotocol %q, not %s", p, portForwardTunnelProtocol)}
	}
	ws.PayloadType = websocket.BinaryFrame
	sc, err := spdy.NewClientConnectionWithPings(ws, portForwardUpstreamPingPeriod)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("starting SPDY in the WebSocket tunnel: %w", err)
	}
	return &portForwardUpstream{conn: sc, raw: raw, protocol: string(portForwardClientTunnel)}, nil
}

// dialSPDY upgrades to SPDY/3.1 through a one-off http.Transport, which
// brings proxy support; the connection it dials is kept to close it.
func (d *portForwardDialer) dialSPDY(ctx context.Context) (*portForwardUpstream, error) {
	var (
		mu  sync.Mutex
		raw net.Conn
	)
	tr := &http.Transport{
		Proxy: d.proxy,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.dial(ctx, network, addr)
			if err == nil {
				mu.Lock()
				raw = c
				mu.Unlock()
			}
			return c, err
		},
		TLSClientConfig:     d.tls,
		TLSHandshakeTimeout: portForwardHandshakeTimeout,
		DisableKeepAlives:   true,
	}
	defer tr.CloseIdleConnections()
	rt, err := rest.HTTPWrappersForConfig(d.cfg, tr)
	if err != nil {
		return nil, fmt.Errorf("building the apiserver credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	req.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	req.Header.Set(httpstream.HeaderProtocolVersion, portforward.ProtocolV1Name)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("upgrading to SPDY: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, portForwardMaxStatusBody))
		return nil, fmt.Errorf("apiserver refused the SPDY upgrade (%s): %s", resp.Status, portForwardStatusMessage(body))
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	mu.Lock()
	c := raw
	mu.Unlock()
	if !ok || c == nil || !strings.EqualFold(resp.Header.Get(httpstream.HeaderUpgrade), spdy.HeaderSpdy31) {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("apiserver answered the SPDY upgrade with %q", resp.Header.Get(httpstream.HeaderUpgrade))
	}
	sc, err := spdy.NewClientConnectionWithPings(&portForwardUpgradedConn{ReadWriteCloser: rwc, raw: c}, portForwardUpstreamPingPeriod)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("starting SPDY: %w", err)
	}
	return &portForwardUpstream{conn: sc, raw: c, protocol: string(portForwardClientSPDY)}, nil
}

// portForwardStatusMessage is the message of a Kubernetes Status body, or
// the body itself.
func portForwardStatusMessage(body []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return st.Message
	}
	return strings.TrimSpace(string(body))
}

// portForwardUpgradedConn is an upgraded response body as a net.Conn.
type portForwardUpgradedConn struct {
	io.ReadWriteCloser
	raw net.Conn
}

var _ net.Conn = (*portForwardUpgradedConn)(nil)

func (c *portForwardUpgradedConn) LocalAddr() net.Addr               { return c.raw.LocalAddr() }
func (c *portForwardUpgradedConn) RemoteAddr() net.Addr              { return c.raw.RemoteAddr() }
func (c *portForwardUpgradedConn) SetDeadline(t time.Time) error     { return c.raw.SetDeadline(t) }
func (c *portForwardUpgradedConn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }
func (c *portForwardUpgradedConn) SetWriteDeadline(t time.Time) error {
	return c.raw.SetWriteDeadline(t)
}
