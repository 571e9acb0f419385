package upgrade

import (
	"bufio"
	"errors"
	"net"
	"net/http"

	"golang.org/x/net/websocket"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// serveTunnel serves SPDY tunneled through WebSocket, the protocol of
// kubectl port-forward since 1.31: the WebSocket's binary messages carry a
// SPDY/3.1 byte stream, message boundaries meaning nothing. This is what
// the apiserver's TunnelingHandler does; that handler is not used because
// its module's dependencies (gorilla/websocket) are not in kubegate's
// go.sum, so golang.org/x/net/websocket speaks WebSocket here instead.
//
// The request has been checked to offer SPDY/3.1+portforward.k8s.io, so
// the handshake below cannot refuse it.
func (s *portForwardSession) serveTunnel(w http.ResponseWriter, req *http.Request) {
	srv := websocket.Server{
		Handshake: func(c *websocket.Config, _ *http.Request) error {
			c.Protocol = []string{portForwardTunnelProtocol}
			return nil
		},
		Handler: func(ws *websocket.Conn) {
			defer ws.Close()
			ws.PayloadType = websocket.BinaryFrame
			tw := &portForwardTunnelWriter{conn: ws, header: http.Header{}}
			portforward.ServePortForward(tw, portForwardTunnelSPDYRequest(req), s, s.pod, "", nil,
				portForwardIdleTimeout, portForwardStreamCreationTimeout, portforward.SupportedProtocols)
		},
	}
	srv.ServeHTTP(w, req)
}

var _ net.Conn = (*websocket.Conn)(nil)

// portForwardTunnelSPDYRequest is the tunneled request as the SPDY upgrade
// cri-streaming expects, as apiserver's createSPDYRequest builds it.
func portForwardTunnelSPDYRequest(req *http.Request) *http.Request {
	r := req.Clone(req.Context())
	r.Method = http.MethodPost
	r.Body = http.NoBody
	for _, h := range []string{"Sec-Websocket-Protocol", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions"} {
		r.Header.Del(h)
	}
	r.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	r.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	r.Header.Del(httpstream.HeaderProtocolVersion)
	r.Header.Add(httpstream.HeaderProtocolVersion, portforward.ProtocolV1Name)
	return r
}

// errPortForwardTunnelHTTP: an HTTP reply cannot be sent once the
// connection is a WebSocket.
var errPortForwardTunnelHTTP = errors.New("port-forward tunnel: no HTTP reply possible inside the WebSocket")

// portForwardTunnelWriter is the http.ResponseWriter cri-streaming's SPDY
// upgrade writes to inside the tunnel: the 101 it sends is dropped (the
// WebSocket handshake already answered the client) and its hijack gets the
// WebSocket connection.
type portForwardTunnelWriter struct {
	conn   net.Conn
	header http.Header
	status int
}

var _ http.Hijacker = (*portForwardTunnelWriter)(nil)

func (w *portForwardTunnelWriter) Header() http.Header { return w.header }

func (w *portForwardTunnelWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *portForwardTunnelWriter) Write([]byte) (int, error) { return 0, errPortForwardTunnelHTTP }

func (w *portForwardTunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status != http.StatusSwitchingProtocols {
		return nil, nil, errPortForwardTunnelHTTP
	}
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}
