package upgrade

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"

	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

// serveTunnel serves SPDY tunneled through WebSocket, the protocol of
// kubectl port-forward since 1.31: the WebSocket's binary messages carry a
// SPDY/3.1 byte stream, message boundaries meaning nothing. The
// apiserver's TunnelingHandler turns the WebSocket request into a SPDY
// upgrade and serves it, as the apiserver and kubelet do, with an
// upgrade handler: here cri-streaming's SPDY port-forward server with the
// session as its forwarder.
//
// The request has been checked to offer SPDY/3.1+portforward.k8s.io.
func (s *portForwardSession) serveTunnel(w http.ResponseWriter, req *http.Request) {
	spdyServer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		portforward.ServePortForward(&portForwardTunnelUpgrade{ResponseWriter: w, maxFrame: s.cfg.MaxFrameBytes}, r, s, s.pod, "", nil,
			portForwardIdleTimeout, portForwardStreamCreationTimeout, portforward.SupportedProtocols)
	})
	proxy.NewTunnelingHandler(spdyServer).ServeHTTP(w, req)
}

// portForwardTunnelUpgrade is the http.ResponseWriter cri-streaming's SPDY
// server writes to inside the TunnelingHandler. The handlers the
// TunnelingHandler wraps in the apiserver and kubelet are proxies: they
// hijack the connection, then write the backend's 101 response into it,
// which the TunnelingHandler reads to complete the client's WebSocket
// handshake. A SPDY server instead calls WriteHeader(101) and then
// hijacks, so this writer holds the 101 back and writes it, as a proxy
// would, into the connection it hijacks.
type portForwardTunnelUpgrade struct {
	http.ResponseWriter
	upgrade  bool
	maxFrame int // the SPDY data frame limit; zero means the default
}

var _ http.Hijacker = (*portForwardTunnelUpgrade)(nil)

func (w *portForwardTunnelUpgrade) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		w.upgrade = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *portForwardTunnelUpgrade) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.upgrade {
		return nil, nil, errors.New("port-forward tunnel: hijack before the SPDY upgrade")
	}
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("port-forward tunnel: the tunneling writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	var resp bytes.Buffer
	resp.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = w.Header().Write(&resp)
	resp.WriteString("\r\n")
	if _, err := conn.Write(resp.Bytes()); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("port-forward tunnel: upgrading the client's WebSocket: %w", err)
	}
	return conn, bufio.NewReadWriter(bufio.NewReader(&spdyFrameReader{r: conn, maxData: w.maxFrame, maxControl: portForwardMaxControlFrame}), bufio.NewWriter(conn)), nil
}
