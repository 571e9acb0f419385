package raftnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Connection types: the byte a dialer sends first after the TLS handshake,
// which routes the connection on the one peer port.
const (
	// connRaft is a connection of Raft's network transport.
	connRaft byte = 'R'
	// connRPC is a peer RPC: one request and its reply (see rpc.go).
	connRPC byte = 'K'
)

// handshakeTimeout bounds a peer connection's TLS handshake and its type
// byte, on either side.
const handshakeTimeout = 10 * time.Second

// peerListener is a node's peer port: it accepts TLS connections and
// routes each by its type byte to Raft (it is the raft.StreamLayer of the
// node's transport) or to the peer RPC server. It tracks the connections
// it accepted or dialed, so that Close ends them all.
type peerListener struct {
	ln        net.Listener // TCP
	advertise peerAddr
	server    *tls.Config
	dialer    *peerDialer
	log       *slog.Logger
	rpc       func(*tls.Conn) // serves a peer RPC connection; set before serve

	raftConns chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // the accept loop and connection goroutines

	conns *connSet // accepted and dialed connections
}

var _ raft.StreamLayer = (*peerListener)(nil)

// peerAddr is the advertised address as a net.Addr.
type peerAddr string

func (a peerAddr) Network() string { return "tcp" }
func (a peerAddr) String() string  { return string(a) }

// listenPeers listens on bind. advertise "" means the bound address,
// which must then be dialable.
func listenPeers(bind, advertise string, server *tls.Config, dialer *peerDialer, log *slog.Logger) (*peerListener, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listening for peers on %s: %w", bind, err)
	}
	if advertise == "" {
		advertise = ln.Addr().String()
		if err := checkDialable(advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("raftnode: Config.Bind %s: %w; set Config.Advertise", bind, err)
		}
	}
	l := &peerListener{
		ln: ln, advertise: peerAddr(advertise), server: server, dialer: dialer, log: log,
		raftConns: make(chan net.Conn), done: make(chan struct{}), conns: dialer.conns,
	}
	return l, nil
}

// serve starts accepting connections, handing peer RPC ones to rpc.
func (l *peerListener) serve(rpc func(*tls.Conn)) {
	l.rpc = rpc
	l.wg.Add(1)
	go l.acceptLoop()
}

func (l *peerListener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accepting a peer connection", "error", err, "retryIn", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		l.wg.Add(1)
		go l.route(c)
	}
}

// route does the TLS handshake on c, reads its type byte and hands it on.
func (l *peerListener) route(c net.Conn) {
	defer l.wg.Done()
	conn := tls.Server(c, l.server)
	if !l.conns.add(conn) {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	kind, err := readType(conn)
	conn.SetDeadline(time.Time{})
	if err != nil {
		// A peer without a certificate from the cluster CA ends here.
		l.log.Warn("refused a peer connection", "remote", c.RemoteAddr().String(), "error", err)
		l.drop(conn)
		return
	}
	switch kind {
	case connRaft:
		select {
		case l.raftConns <- &trackedConn{Conn: conn, set: l.conns}:
		case <-l.done:
			l.drop(conn)
		}
	case connRPC:
		l.rpc(conn)
		l.drop(conn)
	default:
		l.log.Warn("refused a peer connection of unknown type", "remote", c.RemoteAddr().String(), "type", kind)
		l.drop(conn)
	}
}

// readType does the server side of the handshake and reads the type byte.
func readType(conn *tls.Conn) (byte, error) {
	if err := conn.Handshake(); err != nil {
		return 0, fmt.Errorf("TLS handshake: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return 0, fmt.Errorf("reading the connection type: %w", err)
	}
	return b[0], nil
}

// drop closes c and forgets it.
func (l *peerListener) drop(c net.Conn) {
	l.conns.remove(c)
	c.Close()
}

// Accept returns the next Raft connection. It implements raft.StreamLayer.
func (l *peerListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.raftConns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Addr is the advertised address. It implements raft.StreamLayer: Raft
// stores it as this node's address.
func (l *peerListener) Addr() net.Addr { return l.advertise }

// Dial opens a Raft connection to address. It implements raft.StreamLayer.
func (l *peerListener) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.dialer.dial(ctx, string(address), connRaft)
}

// Close stops accepting and closes every connection the listener accepted
// or dialed. It does not wait for the goroutines serving them: see wait.
// It implements raft.StreamLayer.
func (l *peerListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.ln.Close()
		l.conns.closeAll()
	})
	return err
}

// wait waits for the goroutines serving connections to end, after Close.
func (l *peerListener) wait() { l.wg.Wait() }

// connSet holds open connections so that they can all be closed at
// shutdown, as http.Server does with hijacked ones.
type connSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	shut  bool
}

// add registers c. It reports false, and does not register c, after
// closeAll.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

// remove forgets c.
func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// closeAll closes every registered connection, and any later added.
func (s *connSet) closeAll() {
	s.mu.Lock()
	conns := s.conns
	s.conns, s.shut = nil, true
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// trackedConn is a connection in a connSet, which Close removes it from.
type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.remove(c.Conn)
	return c.Conn.Close()
}

// peerDialer dials peers over mutual TLS.
type peerDialer struct {
	tls *tls.Config
	// conns holds the dialed connections until they are closed, so that
	// the node's Close ends them. It is shared with the node's listener.
	conns *connSet
}

// dial connects to addr, does the TLS handshake and sends kind. Closing
// the connection forgets it.
func (d *peerDialer) dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	td := tls.Dialer{Config: d.tls}
	conn, err := td.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing peer %s: %w", addr, err)
	}
	if !d.conns.add(conn) {
		conn.Close()
		return nil, fmt.Errorf("dialing peer %s: %w", addr, net.ErrClosed)
	}
	c := &trackedConn{Conn: conn, set: d.conns}
	if dl, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(dl)
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("dialing peer %s: %w", addr, err)
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}
