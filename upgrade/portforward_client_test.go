package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"k8s.io/client-go/rest"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
)

// pftPortForwardPath is the test server's port-forward endpoint.
const pftPortForwardPath = "/api/v1/namespaces/dev/pods/toolbox/portforward"

// dialClient opens a port-forward session to the test server with
// kubegate's own upstream dialer, as a client-go port-forwarder would:
// over the WebSocket tunnel or over SPDY.
func (h *pftHarness) dialClient(t *testing.T, tunnel bool) *portForwardUpstream {
	t.Helper()
	cfg := &rest.Config{Host: h.srv.URL, BearerToken: "anything", TLSClientConfig: rest.TLSClientConfig{CAFile: h.env.CAFile}}
	return pftDial(t, cfg, h.srv.URL+pftPortForwardPath, tunnel)
}

// pftDial opens a port-forward session to rawURL with kubegate's upstream
// dialer, over the tunnel or SPDY, without falling back. The session is
// closed when the test ends, if not before.
func pftDial(t testing.TB, cfg *rest.Config, rawURL string, tunnel bool) *portForwardUpstream {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), pftTimeout)
	defer cancel()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newPortForwardDialer(ctx, cfg, u)
	if err != nil {
		t.Fatal(err)
	}
	dial, protocol := d.spdy, portForwardClientSPDY
	if tunnel {
		dial, protocol = d.tunnel, portForwardClientTunnel
	}
	dialer, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	up, err := d.connect(dialer, protocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.close)
	return up
}

// pftForward forwards one connection over conn as client-go does: it
// sends payload, half-closes, and returns what came back and the error
// stream's message.
func pftForward(conn httpstream.Connection, port int32, requestID int, payload []byte) (reply []byte, errMsg string, err error) {
	headers := http.Header{}
	headers.Set(portforward.StreamType, portforward.StreamTypeError)
	headers.Set(portforward.PortHeader, strconv.Itoa(int(port)))
	headers.Set(portforward.PortForwardRequestIDHeader, strconv.Itoa(requestID))
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		return nil, "", fmt.Errorf("creating the error stream: %w", err)
	}
	defer conn.RemoveStreams(errStream)
	_ = errStream.Close()
	errc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(errStream)
		errc <- b
	}()
	headers.Set(portforward.StreamType, portforward.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		return nil, "", fmt.Errorf("creating the data stream: %w", err)
	}
	defer conn.RemoveStreams(data)
	wrote := make(chan error, 1)
	go func() {
		// In 32 KiB writes, one SPDY frame each, as client-go's copy does.
		_, err := io.CopyBuffer(data, struct{ io.Reader }{bytes.NewReader(payload)}, make([]byte, 32<<10))
		_ = data.Close()
		wrote <- err
	}()
	reply, err = io.ReadAll(data)
	_ = data.Reset()
	msg := <-errc
	if werr := <-wrote; err == nil && werr != nil && len(msg) == 0 {
		err = werr
	}
	return reply, string(msg), err
}

// legacyWebSocket forwards one connection to port over the legacy
// WebSocket protocol (v4.channel.k8s.io or v4.base64.channel.k8s.io): it
// checks the port prefix of both channels, sends request on the data
// channel and returns what the pod sent until complete(reply) holds or the
// session closed. The protocol has no half-close, so a client closes the
// WebSocket once it has what it wants, which ends the connection.
func (h *pftHarness) legacyWebSocket(ctx context.Context, protocol string, port int32, request []byte, complete func([]byte) bool) (reply []byte, errText string, err error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.env.CAPEM)
	wsURL := "wss" + strings.TrimPrefix(h.srv.URL, "https") + pftPortForwardPath + "?ports=" + strconv.Itoa(int(port))
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, Subprotocols: []string{protocol}}
	ws, resp, err := dialer.DialContext(ctx, wsURL, http.Header{"Authorization": {"Bearer anything"}})
	if err != nil {
		return nil, "", err
	}
	_ = resp.Body.Close()
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	defer stop()
	b64 := strings.Contains(protocol, "base64")
	recv := func() (byte, []byte, error) {
		_, msg, err := ws.ReadMessage()
		if websocket.IsCloseError(err, websocket.CloseNormalClosure) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, io.EOF
		}
		if err != nil {
			return 0, nil, err
		}
		if len(msg) == 0 {
			return 0, nil, fmt.Errorf("empty message")
		}
		if !b64 {
			return msg[0], msg[1:], nil
		}
		data, err := base64.StdEncoding.DecodeString(string(msg[1:]))
		return msg[0] - '0', data, err
	}
	for want := range byte(2) {
		ch, data, err := recv()
		if err != nil {
			return nil, "", fmt.Errorf("reading the port prefix: %w", err)
		}
		if ch != want || len(data) != 2 || int32(binary.LittleEndian.Uint16(data)) != port {
			return nil, "", fmt.Errorf("port prefix: channel %d data %v, want channel %d port %d", ch, data, want, port)
		}
	}
	if b64 {
		err = ws.WriteMessage(websocket.TextMessage, []byte("0"+base64.StdEncoding.EncodeToString(request)))
	} else {
		err = ws.WriteMessage(websocket.BinaryMessage, append([]byte{0}, request...))
	}
	if err != nil {
		return nil, "", err
	}
	var out, errOut bytes.Buffer
	for {
		ch, data, err := recv()
		if err == io.EOF {
			return out.Bytes(), errOut.String(), nil
		}
		if err != nil {
			return out.Bytes(), errOut.String(), err
		}
		switch ch {
		case 0:
			out.Write(data)
			if complete(out.Bytes()) {
				return out.Bytes(), errOut.String(), nil
			}
		case 1:
			errOut.Write(data)
		default:
			return nil, "", fmt.Errorf("message on channel %d", ch)
		}
	}
}

// pftHTTPResponseComplete reports whether b holds a whole HTTP response
// with a Content-Length.
func pftHTTPResponseComplete(b []byte) bool {
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(append(head, "\r\n\r\n"...))), nil)
	if err != nil {
		return false
	}
	return resp.ContentLength >= 0 && int64(len(body)) >= resp.ContentLength
}

// logLines returns the JSON log lines of the harness that contain s.
func (h *pftHarness) logLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(h.logs.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
