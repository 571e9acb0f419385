package upgrade

import (
	"bufio"
	"context"
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
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// PortForwardConfig configures ServePortForward. It is read, never changed.
type PortForwardConfig struct {
	// Upstream is a rest.Config for the apiserver that already impersonates
	// the caller (the gateway sets Impersonate). Its TLS settings, Proxy,
	// credentials and WrapTransport are used. Its Dial is used only for
	// SPDY, as client-go's WebSocket tunnel cannot use one: when Dial is set,
	// kubegate speaks SPDY upstream and does not try the tunnel. Ending a
	// session closes its upstream network connection at once, except for
	// SPDY through a proxy, whose connection client-go keeps to itself: an
	// apiserver that stops reading can then hold the session open. Required.
	Upstream *rest.Config
	// URL is the upstream port-forward URL,
	// https://apiserver/api/v1/namespaces/NS/pods/POD/portforward. Its query
	// is sent as is. Required.
	URL *url.URL
	// Allow is asked for every forwarded connection's port before anything
	// is dialed upstream. An error refuses that connection: the client reads
	// the error's message on the connection's error stream (kubectl prints
	// it) and the session stays up. Nil allows every port.
	Allow func(port int32) error
	// OnConnection is called once per forwarded connection when it has
	// ended, refused ones included, from the connection's goroutine.
	// ServePortForward returns only after every call returned. Nil means no
	// calls.
	OnConnection func(PortForwardConnStats)
	// Capture, when non-nil, is called once per allowed connection, before
	// anything is dialed upstream, for a writer that receives the forwarded
	// bytes of both directions as PortForwardCaptureRecords (see
	// portforward_capture.go). requestID is the connection's
	// PortForwardConnStats.RequestID, unique only within its session. The
	// writer is closed when the connection ends. Capture fails closed: an
	// error from Capture refuses the connection, and a write error ends it
	// with ErrPortForwardCapture. A slow writer slows the connection down.
	// Nil means no capture.
	Capture func(port int32, requestID string) (io.WriteCloser, error)
	// MaxFrameBytes bounds a client's SPDY data frames; a larger one ends
	// the session. Zero means 256 KiB.
	MaxFrameBytes int
	// Log receives the session's events; never headers or credentials. Nil
	// means no logging.
	Log *slog.Logger
}

// PortForwardConnStats describes one forwarded connection once it ended.
type PortForwardConnStats struct {
	// Port is the pod's port the client asked for.
	Port int32
	// RequestID names the connection within its session: the requestID
	// kubegate sent upstream, "0", "1", ... in the order connections
	// arrived. (The client's own requestID is not used: the legacy WebSocket
	// protocol has none, and SPDY clients may reuse them.)
	RequestID string
	// BytesToPod and BytesFromPod count the forwarded bytes each way, as
	// written to the receiving side.
	BytesToPod, BytesFromPod int64
	// Start is when the client opened the connection, End when it ended.
	Start, End time.Time
	// Err is why the connection failed, nil if it ended normally. It
	// matches ErrPortForwardDenied when Allow refused the connection.
	Err error
}

// Errors a PortForwardConnStats.Err may match with errors.Is.
var (
	// ErrPortForwardDenied: Allow refused the connection. The error also
	// matches, and prints as, Allow's own error.
	ErrPortForwardDenied = errors.New("port-forward connection denied")
	// ErrPortForwardUpstreamLost: the connection to the apiserver ended
	// while the connection was open; the session ends with it.
	ErrPortForwardUpstreamLost = errors.New("lost the port-forward connection to the apiserver")
	// ErrPortForwardSessionEnded: the client's session or its request's
	// context ended while the connection was open.
	ErrPortForwardSessionEnded = errors.New("port-forward session ended")
	// ErrPortForwardCapture: capturing the connection's bytes failed, so it
	// was refused or ended.
	ErrPortForwardCapture = errors.New("capturing port-forward bytes failed")
)

// Streaming timeouts, as the kubelet's defaults.
const (
	// portForwardIdleTimeout ends a client session without any frame for
	// this long. kubectl pings every 5 to 10 s, so only dead peers hit it.
	portForwardIdleTimeout = 4 * time.Hour
	// portForwardStreamCreationTimeout bounds the wait for the second
	// stream of a SPDY connection's pair.
	portForwardStreamCreationTimeout = 30 * time.Second
)

// portForwardTunnelProtocol is the WebSocket subprotocol of SPDY tunneled
// through WebSocket, kubectl's default since 1.31.
const portForwardTunnelProtocol = portforward.WebsocketsSPDYTunnelingPortForwardV1

// portForwardClientProtocol is how a client speaks port-forward to kubegate.
type portForwardClientProtocol string

const (
	portForwardClientSPDY      portForwardClientProtocol = "SPDY/3.1"
	portForwardClientTunnel    portForwardClientProtocol = portForwardTunnelProtocol
	portForwardClientWebSocket portForwardClientProtocol = "websocket"
)

// ServePortForward terminates a client's port-forward request, already
// authenticated and allowed by the gateway, and relays each forwarded
// connection over one connection to the apiserver that it opens on the
// first forwarded connection (see PortForwardConfig.Upstream).
//
// The client may speak SPDY/3.1 (POST, X-Stream-Protocol-Version:
// portforward.k8s.io), SPDY tunneled through WebSocket (GET,
// Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io) or the legacy
// WebSocket channel protocol (v4.channel.k8s.io, v4.base64.channel.k8s.io,
// with ?ports=); the tunnel is served by the apiserver's own
// TunnelingHandler. Upstream, kubegate dials as kubectl does, with
// client-go's dialers: it prefers the tunnel and falls back to SPDY when
// the apiserver (or a proxy) refuses its upgrade. The tunnel is a GET, so
// the apiserver checks get (and, from 1.35, create) on pods/portforward
// for the impersonated user; a user allowed only create ends up on SPDY (a
// POST).
//
// Errors before the upgrade are written as a Kubernetes Status; after it
// they reach the client on the connection's error stream. It returns when
// the session has ended: the client went away, the request's context was
// cancelled, or the connection to the apiserver was lost. By then every
// forwarded connection has ended and its OnConnection call returned.
func ServePortForward(w http.ResponseWriter, req *http.Request, cfg PortForwardConfig) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(); err != nil {
		log.Error("port-forward misconfigured", "err", err)
		portForwardWriteStatus(w, http.StatusInternalServerError, err.Error())
		return
	}
	if req.ProtoMajor != 1 {
		portForwardWriteStatus(w, http.StatusBadRequest, fmt.Sprintf("unable to upgrade: port-forward needs HTTP/1.1, not %s", req.Proto))
		return
	}
	if _, ok := w.(http.Hijacker); !ok {
		// Refused here, the client gets a Status rather than the upgrade
		// libraries' plain-text errors.
		log.Error("port-forward: the response writer cannot be hijacked")
		portForwardWriteStatus(w, http.StatusInternalServerError, "unable to upgrade: the connection cannot be taken over")
		return
	}
	proto, err := portForwardClassify(req)
	if err != nil {
		portForwardWriteStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	var opts *portforward.V4Options
	if proto == portForwardClientWebSocket {
		if opts, err = portForwardV4Options(req); err != nil {
			portForwardWriteStatus(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	log = log.With("protocol", string(proto))
	s := newPortForwardSession(req.Context(), cfg, log)
	hj := &portForwardHijackTracker{ResponseWriter: w, spdy: proto == portForwardClientSPDY, maxFrame: cfg.MaxFrameBytes}
	// Whatever ends the session (the request's context, the apiserver
	// connection) closes the client's connection, which ends the handler.
	stop := context.AfterFunc(s.ctx, hj.closeConn)
	switch proto {
	case portForwardClientTunnel:
		s.serveTunnel(hj, req)
	default:
		portforward.ServePortForward(hj, req, s, s.pod, "", opts,
			portForwardIdleTimeout, portForwardStreamCreationTimeout, portforward.SupportedProtocols)
	}
	stop()
	// The client's handler is done; closing its connection first also
	// frees a copier blocked writing to a client that stopped reading.
	hj.closeConn()
	s.close()
	log.Debug("port-forward session ended", "connections", s.nextID.Load(), "cause", context.Cause(s.ctx))
}

func (cfg *PortForwardConfig) validate() error {
	switch {
	case cfg.Upstream == nil:
		return errors.New("port-forward: no upstream rest.Config")
	case cfg.URL == nil:
		return errors.New("port-forward: no upstream URL")
	case cfg.URL.Scheme != "https" && cfg.URL.Scheme != "http":
		return fmt.Errorf("port-forward: upstream URL scheme %q is neither https nor http", cfg.URL.Scheme)
	}
	return nil
}

// portForwardClassify tells the client's protocol from the request. A
// request that is no upgrade at all is left to the SPDY handshake, which
// rejects it properly.
func portForwardClassify(req *http.Request) (portForwardClientProtocol, error) {
	if !wsstream.IsWebSocketRequest(req) {
		return portForwardClientSPDY, nil
	}
	tunnel := false
	for _, p := range portForwardSubprotocols(req) {
		if p == portForwardTunnelProtocol {
			return portForwardClientTunnel, nil
		}
		if strings.HasPrefix(p, portforward.WebsocketsSPDYTunnelingPrefix) {
			tunnel = true
		}
	}
	if tunnel {
		return "", fmt.Errorf("unable to upgrade: no supported tunneling protocol offered; kubegate supports %s", portForwardTunnelProtocol)
	}
	return portForwardClientWebSocket, nil
}

// portForwardSubprotocols lists the WebSocket subprotocols a request
// offers, from every Sec-WebSocket-Protocol header.
func portForwardSubprotocols(req *http.Request) []string {
	var out []string
	for _, h := range req.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// portForwardV4Options reads the ports of a legacy WebSocket request. The
// apiserver's API names them ?ports=8080,9090; the kubelet's ?port=, which
// is what cri-streaming reads, so both are accepted.
func portForwardV4Options(req *http.Request) (*portforward.V4Options, error) {
	q := req.URL.Query()
	ports := append(q["ports"], q["port"]...)
	if len(ports) == 0 {
		return nil, errors.New("query parameter ports is required, such as ?ports=8080,9090")
	}
	r := req.Clone(req.Context())
	u := *req.URL
	u.RawQuery = url.Values{portforward.PortHeader: ports}.Encode()
	r.URL = &u
	return portforward.NewV4Options(r)
}

// portForwardSession is one client's port-forward session. It implements
// cri-streaming's PortForwarder: PortForward relays one connection.
type portForwardSession struct {
	cfg PortForwardConfig
	log *slog.Logger
	pod string
	// ctx ends with the session; its cause says why.
	ctx    context.Context
	cancel context.CancelCauseFunc
	nextID atomic.Uint64

	mu     sync.Mutex
	closed bool
	conns  sync.WaitGroup

	// dialMu guards up, the upstream connection, dialed on first use.
	dialMu sync.Mutex
	up     *portForwardUpstream
}

var _ portforward.PortForwarder = (*portForwardSession)(nil)

func newPortForwardSession(ctx context.Context, cfg PortForwardConfig, log *slog.Logger) *portForwardSession {
	s := &portForwardSession{cfg: cfg, log: log, pod: portForwardPodName(cfg.URL)}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	return s
}

// portForwardPodName is "NS/POD" from an upstream URL, for messages.
func portForwardPodName(u *url.URL) string {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i := 0; i+3 < len(parts); i++ {
		if parts[i] == "namespaces" && parts[i+2] == "pods" {
			return parts[i+1] + "/" + parts[i+3]
		}
	}
	return u.Path
}

// begin registers a new connection, or reports that the session ended.
func (s *portForwardSession) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns.Add(1)
	return true
}

// close ends the session: open connections are aborted, the upstream
// connection is closed, and close returns once every connection ended.
func (s *portForwardSession) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel(ErrPortForwardSessionEnded)
	// A dial in progress sees the cancelled context and gives up.
	s.dialMu.Lock()
	up := s.up
	s.dialMu.Unlock()
	if up != nil {
		up.close()
	}
	s.conns.Wait()
}

// upstream returns the session's connection to the apiserver, dialing it
// on first use. Concurrent first connections wait for the one dial.
func (s *portForwardSession) upstream() (*portForwardUpstream, error) {
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	if s.up != nil {
		select {
		case <-s.up.conn.CloseChan():
			return nil, ErrPortForwardUpstreamLost
		default:
			return s.up, nil
		}
	}
	if s.ctx.Err() != nil {
		return nil, s.endCause()
	}
	up, err := portForwardDial(s.ctx, s.cfg.Upstream, s.cfg.URL, s.log)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, s.endCause()
		}
		return nil, err
	}
	if s.ctx.Err() != nil {
		up.close()
		return nil, s.endCause()
	}
	s.log.Info("port-forward connected to apiserver", "upstream_protocol", up.protocol)
	s.up = up
	go s.watchUpstream(up)
	return up, nil
}

// endCause says why the session ended, as an error that matches
// ErrPortForwardUpstreamLost or ErrPortForwardSessionEnded.
func (s *portForwardSession) endCause() error {
	cause := context.Cause(s.ctx)
	if errors.Is(cause, ErrPortForwardUpstreamLost) || errors.Is(cause, ErrPortForwardSessionEnded) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrPortForwardSessionEnded, cause)
}

// watchUpstream ends the session when its apiserver connection ends
// first, and closes that connection as soon as the session ends: a relay
// blocked writing to an apiserver that stopped reading would otherwise
// keep the session, and the client's connection with it, from ending.
func (s *portForwardSession) watchUpstream(up *portForwardUpstream) {
	select {
	case <-up.conn.CloseChan():
		s.log.Info("port-forward connection to apiserver closed; ending the session")
		s.cancel(ErrPortForwardUpstreamLost)
	case <-s.ctx.Done():
		up.close()
	}
}

// portForwardMaxControlFrame bounds a port-forward client's SPDY control
// frames. cri-streaming's port-forward server reads them with spdystream's
// default header limits (1000 headers of up to 1 MiB, each value split at
// NUL bytes), which kubegate cannot set, so the compressed size of a
// header block is the only bound on what it inflates to: a 64 KiB
// SYN_STREAM of NULs made spdystream allocate some 6.6 GiB. client-go's
// port-forward control frames (streamType, port, requestID) take well
// under 200 bytes.
const portForwardMaxControlFrame = 1 << 10

// portForwardHijackTracker remembers the client's hijacked connection so
// the session can close it from outside the protocol handlers. It has no
// Unwrap on purpose: cri-streaming would then hijack the writer underneath.
type portForwardHijackTracker struct {
	http.ResponseWriter
	spdy     bool // the client speaks SPDY on the connection: check its frames
	maxFrame int  // the SPDY data frame limit; zero means the default
	mu       sync.Mutex
	conn     net.Conn
	closed   bool
}

var _ http.Hijacker = (*portForwardHijackTracker)(nil)

func (h *portForwardHijackTracker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("port-forward: the response writer cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conn = conn
	if h.closed {
		_ = conn.Close()
	}
	if h.spdy {
		brw = bufio.NewReadWriter(bufio.NewReader(&spdyFrameReader{r: brw.Reader, maxData: h.maxFrame, maxControl: portForwardMaxControlFrame}), brw.Writer)
	}
	return conn, brw, nil
}

// closeConn closes the hijacked connection, now or as soon as there is one.
func (h *portForwardHijackTracker) closeConn() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.conn != nil {
		_ = h.conn.Close()
	}
}

// portForwardWriteStatus replies with a Kubernetes Status, which kubectl
// shows as the error's message.
func portForwardWriteStatus(w http.ResponseWriter, code int, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   metav1.StatusReasonBadRequest,
		Code:     int32(code),
	}
	if code >= 500 {
		st.Reason = metav1.StatusReasonInternalError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&st)
}
