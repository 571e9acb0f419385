package tlsfront

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// handshakeListener accepts TCP connections and hands on only those that
// completed a TLS handshake within the timeout. Each handshake runs in its
// own goroutine, so a client that stalls its handshake holds up nobody
// else, and at most maxConns connections (handshaking or served) are open
// at once: past that, new connections wait in the kernel's backlog.
type handshakeListener struct {
	inner   net.Listener
	cfg     *tls.Config
	timeout time.Duration
	log     *slog.Logger
	failed  func(reason string) // counts a failed handshake
	slots   chan struct{}       // one per open connection; nil: no bound

	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	acceptErr error // set before done is closed by the accept loop
	errOnce   sync.Once
}

func newHandshakeListener(inner net.Listener, cfg *tls.Config, timeout time.Duration, maxConns int, log *slog.Logger, failed func(string)) *handshakeListener {
	l := &handshakeListener{inner: inner, cfg: cfg, timeout: timeout, log: log, failed: failed,
		conns: make(chan net.Conn), done: make(chan struct{})}
	if maxConns > 0 {
		l.slots = make(chan struct{}, maxConns)
	}
	go l.acceptLoop()
	return l
}

func (l *handshakeListener) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		if l.slots != nil {
			select {
			case l.slots <- struct{}{}:
			case <-l.done:
				return
			}
		}
		c, err := l.inner.Accept()
		if err != nil {
			l.release()
			if errors.Is(err, net.ErrClosed) {
				l.fail(err)
				return
			}
			// Out of file descriptors and the like: wait and try again,
			// as net/http's own accept loop does.
			l.log.Warn("accepting a connection", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		go l.handshake(c)
	}
}

// handshake completes c's TLS handshake within the timeout, then queues
// the connection for Accept.
func (l *handshakeListener) handshake(c net.Conn) {
	if l.slots != nil {
		c = &slotConn{Conn: c, release: l.release}
	}
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-l.done:
			cancel()
		}
	}()
	if err := tc.HandshakeContext(ctx); err != nil {
		reason := "error"
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = "timeout"
		}
		l.failed(reason)
		l.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "reason", reason, "err", err)
		_ = tc.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		_ = tc.Close()
	}
}

func (l *handshakeListener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

func (l *handshakeListener) fail(err error) {
	l.errOnce.Do(func() { l.acceptErr = err })
	l.closeOnce.Do(func() { close(l.done) })
}

// Accept returns the next connection whose handshake is complete.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if l.acceptErr != nil {
			return nil, l.acceptErr
		}
		return nil, net.ErrClosed
	}
}

func (l *handshakeListener) Close() error {
	err := l.inner.Close()
	l.fail(net.ErrClosed)
	return err
}

func (l *handshakeListener) Addr() net.Addr { return l.inner.Addr() }

// slotConn gives its connection slot back when closed.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
