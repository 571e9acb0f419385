package upgrade

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	apispdy "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	clientspdy "k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// ErrUpstreamNoStatus is an upstream session that ended without the exit
// status every v4 and v5 stream server sends: its output may be cut short,
// so kubegate cannot report it as a clean exit.
var ErrUpstreamNoStatus = errors.New("the apiserver ended the session without an exit status; output may be incomplete")

// newUpstreamExecutor speaks WebSocket (v5.channel.k8s.io) toward the
// apiserver, with kubegate's own client, and falls back to SPDY when the
// WebSocket upgrade is refused. Neither sends pings.
//
// No pings, because of how kube-apiserver proxies an exec: it copies raw
// bytes between the client and the kubelet and closes both sides as soon as
// either direction ends. When the kubelet has finished and closed while the
// client is still reading the tail of the output, any frame the client
// sends (client-go pings every 5 s on both protocols) hits the closed
// kubelet connection; the apiserver then drops the client's connection
// with output still unread. Against kube-apiserver 1.37 with a slow
// reader, client-go's own SPDY executor lost 0.4–2 MB of 20 MiB and
// reported exit 0, and its WebSocket executor failed with "connection reset
// by peer"; SPDY without pings delivered every byte. TCP keepalives, which
// carry no data, still keep the idle connection known to NATs and load
// balancers.
//
// WebSocket first, because a SPDY connection costs about 800 KiB while it
// lasts: spdystream keeps a zlib header compressor (640 KiB of hash tables)
// and five frame workers per connection, which made idle attach sessions
// cost over 1 MiB of kubegate's heap each. The WebSocket client holds a
// 4 KiB read buffer and borrows write buffers from a pool.
//
// Both are authorized as create on pods/exec or pods/attach (the apiserver
// checks create for a WebSocket GET too since 1.35): the verb kubegate's
// policy sees.
func newUpstreamExecutor(cfg *rest.Config, u *url.URL, tlsConfig *tls.Config) (clientremotecommand.Executor, *upstreamStatus, error) {
	if tlsConfig == nil {
		var err error
		if tlsConfig, err = UpstreamTLS(cfg); err != nil {
			return nil, nil, err
		}
	}
	status := &upstreamStatus{}
	ws, err := newWSExecutor(cfg, u, status, tlsConfig)
	if err != nil {
		return nil, nil, err
	}
	// The SPDY executor is built only when the WebSocket upgrade is
	// refused: almost every session goes without it.
	spdy := &lazyExecutor{build: func() (clientremotecommand.Executor, error) {
		return newSPDYUpstreamExecutor(cfg, u, tlsConfig, status)
	}}
	exec, err := clientremotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
	})
	return exec, status, err
}

// newSPDYUpstreamExecutor is client-go's SPDY executor with kubegate's TLS
// configuration and credentials, its error stream watched by status.
func newSPDYUpstreamExecutor(cfg *rest.Config, u *url.URL, tlsConfig *tls.Config, status *upstreamStatus) (clientremotecommand.Executor, error) {
	proxy := http.ProxyFromEnvironment
	if cfg.Proxy != nil {
		proxy = cfg.Proxy
	}
	rt, err := apispdy.NewRoundTripperWithConfig(apispdy.RoundTripperConfig{TLS: tlsConfig, Proxier: proxy})
	if err != nil {
		return nil, fmt.Errorf("building the SPDY round tripper: %w", err)
	}
	wrapped, err := rest.HTTPWrappersForConfig(cfg, rt)
	if err != nil {
		return nil, fmt.Errorf("building the apiserver credentials: %w", err)
	}
	return clientremotecommand.NewSPDYExecutorForTransports(wrapped, &statusUpgrader{Upgrader: rt, status: status}, http.MethodPost, u)
}

// lazyExecutor builds its executor when a session first runs on it.
type lazyExecutor struct {
	build func() (clientremotecommand.Executor, error)
}

var _ clientremotecommand.Executor = (*lazyExecutor)(nil)

func (e *lazyExecutor) Stream(opts clientremotecommand.StreamOptions) error {
	return e.StreamWithContext(context.Background(), opts)
}

func (e *lazyExecutor) StreamWithContext(ctx context.Context, opts clientremotecommand.StreamOptions) error {
	exec, err := e.build()
	if err != nil {
		return err
	}
	return exec.StreamWithContext(ctx, opts)
}

// upstreamStatus watches the error stream of an upstream SPDY session.
// client-go takes an error stream that ends empty for success; from v4 on
// the server always writes a Status there, so an empty one means the
// session was cut off.
type upstreamStatus struct {
	v4       atomic.Bool  // the negotiated protocol is v4 or later
	received atomic.Int64 // bytes read from the error stream
	// proto is the protocol the upstream session speaks, once it does.
	proto atomic.Pointer[string]
}

func (s *upstreamStatus) setProtocol(p string) { s.proto.Store(&p) }

// protocol is the upstream session's protocol, or "".
func (s *upstreamStatus) protocol() string {
	if p := s.proto.Load(); p != nil {
		return *p
	}
	return ""
}

// check turns a clean end without a status into ErrUpstreamNoStatus.
func (s *upstreamStatus) check(err error) error {
	if err == nil && s.v4.Load() && s.received.Load() == 0 {
		return ErrUpstreamNoStatus
	}
	return err
}

// statusUpgrader wraps client-go's SPDY upgrader to watch the error stream.
type statusUpgrader struct {
	clientspdy.Upgrader
	status *upstreamStatus
}

func (u *statusUpgrader) NewConnection(resp *http.Response) (httpstream.Connection, error) {
	conn, err := u.Upgrader.NewConnection(resp)
	if err != nil {
		return nil, err
	}
	u.status.setProtocol("SPDY/3.1 " + resp.Header.Get(httpstream.HeaderProtocolVersion))
	switch resp.Header.Get(httpstream.HeaderProtocolVersion) {
	case "v4.channel.k8s.io", "v5.channel.k8s.io":
		u.status.v4.Store(true)
	}
	return &statusConn{Connection: conn, status: u.status}, nil
}

// statusConn counts what the error stream delivers.
type statusConn struct {
	httpstream.Connection
	status *upstreamStatus
}

func (c *statusConn) CreateStream(headers http.Header) (httpstream.Stream, error) {
	s, err := c.Connection.CreateStream(headers)
	if err != nil || headers.Get(corev1.StreamType) != corev1.StreamTypeError {
		return s, err
	}
	return &countingStream{Stream: s, n: &c.status.received}, nil
}

func (c *statusConn) RemoveStreams(streams ...httpstream.Stream) {
	for i, s := range streams {
		if cs, ok := s.(*countingStream); ok {
			streams[i] = cs.Stream
		}
	}
	c.Connection.RemoveStreams(streams...)
}

// countingStream counts the bytes read from a stream.
type countingStream struct {
	httpstream.Stream
	n *atomic.Int64
}

func (s *countingStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	s.n.Add(int64(n))
	return n, err
}
