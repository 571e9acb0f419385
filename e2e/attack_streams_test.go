package e2e

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/moby/spdystream/spdy"
)

// The exec the stream exhaustion cases open: allowed to the agent, and
// waiting on stdin.
const attackExecPath = "/api/v1/namespaces/dev/pods/toolbox/exec?command=cat&stdin=true&stdout=true"

// upgradeRaw opens an exec upgrade over a raw TLS connection as the agent
// and returns the connection once kubegate switched protocols.
func (k *attackKit) upgradeRaw(headers string) (net.Conn, *bufio.Reader, error) {
	conn, err := tls.Dial("tcp", k.host, k.tlsCfg.Clone())
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(time.Minute)) // a hung test's bound, not a measurement
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\n%s\r\n",
		map[bool]string{true: "GET", false: "POST"}[strings.Contains(headers, "websocket")], attackExecPath, k.host, k.agent, headers)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, nil, fmt.Errorf("upgrade answered %s", resp.Status)
	}
	return conn, br, nil
}

// closedByServer reads until the server closes the connection, and fails
// if the read deadline passes first.
func closedByServer(conn net.Conn, br *bufio.Reader) error {
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("the server kept the connection open")
	}
	return nil // EOF or a reset: closed
}

// neverEndingWebSocketFrame sends the header of a frame that announces
// 2^62 bytes: kubegate refuses it from the header and closes the session.
func (k *attackKit) neverEndingWebSocketFrame() error {
	conn, br, err := k.upgradeRaw("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n")
	if err != nil {
		return err
	}
	defer conn.Close()
	hdr := []byte{0x82, 0x7f, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4} // FIN binary, masked, 64-bit length 2^62
	if _, err := conn.Write(append(hdr, 0^1, 'x'^2)); err != nil {
		return err
	}
	return closedByServer(conn, br)
}

// spdyZlibBomb opens a SPDY stream whose compressed header block (some
// kilobytes) inflates to 4 MiB: kubegate's header limits refuse it and
// close the connection.
func (k *attackKit) spdyZlibBomb() error {
	conn, br, err := k.upgradeRaw("Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n")
	if err != nil {
		return err
	}
	defer conn.Close()
	fr, err := spdy.NewFramer(conn, br)
	if err != nil {
		return err
	}
	err = fr.WriteFrame(&spdy.SynStreamFrame{StreamId: 1, Headers: http.Header{
		"Streamtype": {"stdin"}, "X-Bomb": {strings.Repeat("a", 4<<20)},
	}})
	if err != nil {
		return nil // the server closed the connection while the frame went out
	}
	return closedByServer(conn, br)
}
