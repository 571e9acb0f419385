package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
)

// portForwardCopyBufferSize is the size of the pooled copy buffers, one
// per direction of an active connection.
const portForwardCopyBufferSize = 32 << 10

// portForwardMaxErrorMessage bounds what is read of an upstream error
// stream; the kubelet writes one short line.
const portForwardMaxErrorMessage = 16 << 10

var portForwardBufPool = sync.Pool{New: func() any {
	b := make([]byte, portForwardCopyBufferSize)
	return &b
}}

// portForwardDeniedError is Allow's refusal: it prints as Allow's error
// and matches both it and ErrPortForwardDenied.
type portForwardDeniedError struct{ err error }

func (e *portForwardDeniedError) Error() string   { return e.err.Error() }
func (e *portForwardDeniedError) Unwrap() []error { return []error{ErrPortForwardDenied, e.err} }

// PortForward relays one forwarded connection: stream is the client's data
// stream for port. cri-streaming calls it once per connection (per port,
// for the legacy WebSocket protocol) and, when it returns an error, writes
// the message to the client's error stream. The context it passes is not
// the request's, so the session's is used.
func (s *portForwardSession) PortForward(_ context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	if !s.begin() {
		return ErrPortForwardSessionEnded
	}
	defer s.conns.Done()
	c := &portForwardConn{
		s:      s,
		port:   port,
		client: stream,
		id:     strconv.FormatUint(s.nextID.Add(1)-1, 10),
	}
	log := s.log.With("port", port, "forward_id", c.id)
	// cri-streaming hands a SPDY stream over before it replies to it. A
	// reset overtaking that reply makes client-go's CreateStream fail with
	// "stream reset", and kubectl then never reads the error message.
	// Replying here first (the later reply is then a no-op) keeps the
	// order. It does not block: it fails on a broken connection.
	if r, ok := stream.(interface{ SendReply(http.Header, bool) error }); ok {
		_ = r.SendReply(http.Header{}, false)
	}
	if hs, ok := stream.(httpstream.Stream); ok {
		// SPDY streams can be half-closed and reset; the legacy
		// WebSocket channels cannot.
		c.halfClose = true
		log = log.With("client_request_id", hs.Headers().Get(portforward.PortForwardRequestIDHeader))
	}
	st := PortForwardConnStats{Port: port, RequestID: c.id, Start: time.Now()}
	st.Err = c.serve(&st)
	st.End = time.Now()
	switch {
	case errors.Is(st.Err, ErrPortForwardDenied):
		log.Info("port-forward connection denied", "err", st.Err)
	case st.Err != nil:
		log.Warn("port-forward connection failed", "err", st.Err, "to_pod", st.BytesToPod, "from_pod", st.BytesFromPod)
	default:
		log.Debug("port-forward connection ended", "to_pod", st.BytesToPod, "from_pod", st.BytesFromPod, "duration", st.End.Sub(st.Start))
	}
	if s.cfg.OnConnection != nil {
		s.cfg.OnConnection(st)
	}
	return st.Err
}

// portForwardConn is one forwarded connection.
type portForwardConn struct {
	s         *portForwardSession
	port      int32
	id        string
	client    io.ReadWriteCloser
	halfClose bool
}

func (c *portForwardConn) serve(st *PortForwardConnStats) (err error) {
	if allow := c.s.cfg.Allow; allow != nil {
		if err := allow(c.port); err != nil {
			return &portForwardDeniedError{err: err}
		}
	}
	var capture *portForwardCapture
	if c.s.cfg.Capture != nil {
		w, err := c.s.cfg.Capture(c.port, c.id)
		if err != nil {
			return fmt.Errorf("%w: opening the capture: %w", ErrPortForwardCapture, err)
		}
		capture = newPortForwardCapture(w, st.Start)
		defer func() {
			if cerr := capture.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("%w: closing the capture: %w", ErrPortForwardCapture, cerr)
			}
		}()
	}
	up, err := c.s.upstream()
	if err != nil {
		return fmt.Errorf("connecting to the apiserver: %w", err)
	}
	return c.relay(up.conn, capture, st)
}

// portForwardCopyResult is what a copier reports when it stops.
type portForwardCopyResult struct {
	n   int64
	err error
}

// relay opens the connection's upstream stream pair the way client-go's
// port-forwarder does (an error stream, closed for writing at once, then a
// data stream, both with streamType, port and requestID) and copies both
// ways. Half-closes are passed on: when one side stops sending, the other
// side's write half is closed and the other direction goes on. The
// connection fails on a copy error, on a message on the upstream error
// stream, or when the session ends.
func (c *portForwardConn) relay(up httpstream.Connection, capture *portForwardCapture, st *PortForwardConnStats) error {
	headers := http.Header{}
	headers.Set(portforward.StreamType, portforward.StreamTypeError)
	headers.Set(portforward.PortHeader, strconv.Itoa(int(c.port)))
	headers.Set(portforward.PortForwardRequestIDHeader, c.id)
	errStream, err := up.CreateStream(headers)
	if err != nil {
		return c.failure(up, fmt.Errorf("creating the upstream error stream: %w", err))
	}
	defer up.RemoveStreams(errStream)
	// Nothing is ever written to the error stream.
	_ = errStream.Close()
	errc := make(chan []byte, 1)
	go portForwardReadUpstreamError(errStream, errc)

	headers.Set(portforward.StreamType, portforward.StreamTypeData)
	data, err := up.CreateStream(headers)
	if err != nil {
		_ = errStream.Reset()
		<-errc
		return c.failure(up, fmt.Errorf("creating the upstream data stream: %w", err))
	}
	defer up.RemoveStreams(data)

	var toTap, fromTap func([]byte) error
	if capture != nil {
		toTap, fromTap = capture.toPod, capture.fromPod
	}
	toPod := make(chan portForwardCopyResult, 1)
	fromPod := make(chan portForwardCopyResult, 1)
	go c.copyToPod(data, toTap, toPod)
	go c.copyFromPod(data, fromTap, fromPod)

	var failure error
	aborted := false
	abort := func(err error) {
		if failure == nil {
			failure = err
		}
		if aborted {
			return
		}
		aborted = true
		_ = data.Reset()
		_ = errStream.Reset()
		c.resetClient()
	}
	done := c.s.ctx.Done()
	for toPod != nil || fromPod != nil || errc != nil {
		select {
		case r := <-toPod:
			toPod, st.BytesToPod = nil, r.n
			switch {
			case r.err != nil:
				abort(fmt.Errorf("forwarding to the pod: %w", r.err))
			case !c.halfClose:
				// The legacy WebSocket protocol has no half-close: its
				// stream ends when the client's connection does.
				_ = data.Close()
				abort(nil)
			default:
				_ = data.Close()
			}
		case r := <-fromPod:
			fromPod, st.BytesFromPod = nil, r.n
			if r.err != nil {
				abort(fmt.Errorf("forwarding from the pod: %w", r.err))
			} else {
				_ = c.client.Close()
			}
		case msg := <-errc:
			errc = nil
			if len(msg) > 0 {
				abort(&portForwardUpstreamError{msg: string(msg)})
			}
		case <-done:
			done = nil
			abort(c.s.endCause())
		}
	}
	return c.failure(up, failure)
}

// failure is how the connection ended, given the relay's own failure (nil
// if none) and the state of the session and its upstream connection.
func (c *portForwardConn) failure(up httpstream.Connection, failure error) error {
	if c.s.ctx.Err() != nil && !errors.Is(context.Cause(c.s.ctx), ErrPortForwardUpstreamLost) {
		// The session ended, so kubegate closed the upstream connection,
		// and the relay may have failed on it before it saw the end.
		if failure != nil && !errors.Is(failure, ErrPortForwardSessionEnded) {
			failure = fmt.Errorf("%w: %w", c.s.endCause(), failure)
		}
		return failure
	}
	lost := portForwardConnBroken(failure)
	select {
	case <-up.CloseChan():
		// The upstream's streams end like normal ones when it goes, and
		// copies and new streams fail on its closed connection.
		lost = true
	default:
	}
	if lost {
		switch {
		case failure == nil:
			failure = ErrPortForwardUpstreamLost
		case !errors.Is(failure, ErrPortForwardUpstreamLost):
			failure = fmt.Errorf("%w: %w", ErrPortForwardUpstreamLost, failure)
		}
	}
	return failure
}

// portForwardConnBroken reports whether err is a write or read on an
// upstream connection that is gone, which can surface before spdystream
// has noticed and closed its CloseChan.
func portForwardConnBroken(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// resetClient ends the client's stream in both directions, unblocking a
// copier reading it.
func (c *portForwardConn) resetClient() {
	if r, ok := c.client.(interface{ Reset() error }); ok {
		_ = r.Reset()
		return
	}
	_ = c.client.Close()
}

// copyToPod copies the client's bytes to the upstream data stream.
func (c *portForwardConn) copyToPod(data httpstream.Stream, tap func([]byte) error, done chan<- portForwardCopyResult) {
	n, err := portForwardCopy(data, c.client, tap)
	done <- portForwardCopyResult{n, err}
}

// copyFromPod copies the upstream data stream's bytes to the client.
func (c *portForwardConn) copyFromPod(data httpstream.Stream, tap func([]byte) error, done chan<- portForwardCopyResult) {
	n, err := portForwardCopy(c.client, data, tap)
	done <- portForwardCopyResult{n, err}
}

// portForwardCopy copies src to dst until src ends, through a pooled
// buffer, handing each chunk to tap (if any) before writing it. It returns
// the bytes written to dst; src's io.EOF is the normal end, not an error.
func portForwardCopy(dst io.Writer, src io.Reader, tap func([]byte) error) (int64, error) {
	bp := portForwardBufPool.Get().(*[]byte)
	defer portForwardBufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if tap != nil {
				if err := tap(buf[:nr]); err != nil {
					return n, err
				}
			}
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if nw != nr {
				return n, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// portForwardReadUpstreamError reads the upstream error stream to its end
// and sends what it read (nothing, normally).
func portForwardReadUpstreamError(s httpstream.Stream, out chan<- []byte) {
	msg, _ := io.ReadAll(io.LimitReader(s, portForwardMaxErrorMessage))
	out <- msg
}

// portForwardUpstreamError is a message the apiserver or kubelet sent on a
// connection's error stream, such as a refused dial in the pod.
type portForwardUpstreamError struct{ msg string }

func (e *portForwardUpstreamError) Error() string { return "upstream: " + e.msg }
