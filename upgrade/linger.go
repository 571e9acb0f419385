package upgrade

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// lingerTimeout bounds how long a finished session's connection waits for
// the client to read the rest and close its side.
const lingerTimeout = 30 * time.Second

// lingeringWriter hijacks into a connection that closes gracefully. When
// a session ends, the tail of its output and its exit status may still sit
// in socket buffers on their way to a slow client. Closing the socket then
// is not enough: a frame the client sends afterwards (kubectl and
// client-go ping every 5 s) makes the kernel answer with a reset, and the
// client's kernel drops whatever it had not read yet. So kubegate ends its
// side (TLS close_notify, or a TCP FIN), keeps reading and discarding
// until the client closes, and only then closes, as net/http does for
// plain responses.
type lingeringWriter struct {
	http.ResponseWriter
}

func (w lingeringWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := hijack(w.ResponseWriter)
	if err != nil {
		return nil, nil, err
	}
	return &lingeringConn{Conn: c}, rw, nil
}

// hijack takes over w's connection.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked")
	}
	return h.Hijack()
}

// lingeringConn is a hijacked connection whose Close lingers: see
// lingeringWriter.
type lingeringConn struct {
	net.Conn
	once sync.Once
}

// Close ends kubegate's side at once and closes the connection when the
// client has closed its side, or after lingerTimeout.
func (c *lingeringConn) Close() error {
	c.once.Do(func() { go c.linger() })
	return nil
}

func (c *lingeringConn) linger() {
	defer c.Conn.Close()
	deadline := time.Now().Add(lingerTimeout)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = c.Conn.SetWriteDeadline(deadline)
		if cw.CloseWrite() != nil {
			return
		}
	}
	_ = c.Conn.SetReadDeadline(deadline)
	buf := make([]byte, 4<<10)
	for {
		if _, err := c.Conn.Read(buf); err != nil {
			return
		}
	}
}
