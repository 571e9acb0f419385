package upgrade

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
	"github.com/moby/spdystream/spdy"
	corev1 "k8s.io/api/core/v1"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// SPDY remote command protocols kubegate serves, best first. v5 is v4 on
// SPDY (it only adds the WebSocket close signal), so a client offering v5
// gets v4, as from the kubelet.
const (
	spdyProtocolV4 = "v4.channel.k8s.io"
	spdyProtocolV3 = "v3.channel.k8s.io"
	spdyProtocolV2 = "v2.channel.k8s.io"
	spdyProtocolV1 = "channel.k8s.io"
)

var spdyProtocols = []string{spdyProtocolV4, spdyProtocolV3, spdyProtocolV2, spdyProtocolV1}

// Limits on what a client may send over SPDY. kubectl and client-go send
// data frames of at most 32 KiB and a handful of short headers per stream.
// spdyMaxDataFrame is the default of MaxFrameBytes (RemoteCommandConfig,
// PortForwardConfig).
const (
	spdyMaxDataFrame    = 256 << 10
	spdyMaxControlFrame = 64 << 10
	spdyMaxHeaderField  = 8 << 10 // also bounds what a zlib header block inflates to,
	spdyMaxHeaderCount  = 32      // with the count: 32 × 2 × 8 KiB
)

// spdyCloseTimeout bounds how long closing waits for streams a client
// opened while the session ended.
const spdyCloseTimeout = 5 * time.Second

// ErrSPDYFrameTooLarge is a client frame over the limits above.
var ErrSPDYFrameTooLarge = errors.New("SPDY frame too large")

// serveSPDY terminates an exec or attach over SPDY/3.1 and runs the session
// through r. kubegate accepts the streams itself, by type: a stream the
// protocol does not allow, a duplicate, or one opened after the session
// started is refused at once, and at the end every stream is reset, so a
// misbehaving client cannot leave goroutines or buffered frames behind.
func serveSPDY(w http.ResponseWriter, req *http.Request, opts *serverremotecommand.Options, r *relay) {
	protocol, err := httpstream.Handshake(req, w, spdyProtocols)
	if err != nil {
		// Handshake has answered the client.
		r.finish(fmt.Errorf("%w: SPDY handshake: %w", ErrNoSession, err))
		return
	}
	if protocol == "" {
		protocol = spdyProtocolV1 // a client that does not negotiate speaks v1
	}
	r.setProtocol("SPDY/3.1 " + protocol)
	conn, err := upgradeSPDY(w, req, r.cfg.MaxFrameBytes)
	if err != nil {
		r.finish(fmt.Errorf("%w: %w", ErrNoSession, err))
		return
	}
	s := newSPDYSession(protocol, opts)
	go conn.Serve(s.accept)
	defer s.close(conn)

	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	go func() {
		// The hijacked request's context outlives its client: end the
		// session when the client's connection goes.
		select {
		case <-conn.CloseChan():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := s.wait(ctx, streamCreationTimeout); err != nil {
		r.finish(fmt.Errorf("%w: %w", ErrNoSession, err))
		return
	}

	var resize chan serverremotecommand.TerminalSize
	if st := s.streams[corev1.StreamTypeResize]; st != nil {
		resize = make(chan serverremotecommand.TerminalSize)
		go readResizes(ctx, st, resize)
	}
	var in io.Reader
	var out, errOut io.Writer
	if st := s.streams[corev1.StreamTypeStdin]; st != nil {
		in = st
	}
	if st := s.streams[corev1.StreamTypeStdout]; st != nil {
		out = st
	}
	if st := s.streams[corev1.StreamTypeStderr]; st != nil {
		errOut = st
	}
	runErr := r.run(ctx, in, out, errOut, opts.TTY, resize)
	if err := writeExitStatus(s.streams[corev1.StreamTypeError], protocol, runErr); err != nil {
		r.cfg.Log.Debug("writing exec status to the client", "err", err)
	}
}

// upgradeSPDY answers 101 Switching Protocols and starts a SPDY server
// connection on the hijacked connection, with kubegate's frame limits.
func upgradeSPDY(w http.ResponseWriter, req *http.Request, maxData int) (*spdystream.Connection, error) {
	if !strings.Contains(strings.ToLower(req.Header.Get(httpstream.HeaderConnection)), "upgrade") ||
		!strings.Contains(strings.ToLower(req.Header.Get(httpstream.HeaderUpgrade)), "spdy/3.1") {
		http.Error(w, "unable to upgrade: missing upgrade headers in request", http.StatusBadRequest)
		return nil, errors.New("missing SPDY upgrade headers")
	}
	h, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "unable to upgrade: unable to hijack response", http.StatusInternalServerError)
		return nil, errors.New("the response writer cannot be hijacked")
	}
	w.Header().Add(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	w.Header().Add(httpstream.HeaderUpgrade, "SPDY/3.1")
	w.WriteHeader(http.StatusSwitchingProtocols)
	c, rw, err := h.Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijacking the connection: %w", err)
	}
	// rw.Reader holds what the HTTP server read ahead and reads on from c.
	rc := &readerConn{Conn: c, r: &spdyFrameReader{r: rw.Reader, maxData: maxData}, w: &spdyFrameWriter{w: c}}
	conn, err := spdystream.NewConnectionWithOptions(rc, true, spdyFramerOptions()...)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("starting the SPDY connection: %w", err)
	}
	return conn, nil
}

// spdyFramerOptions are kubegate's limits on the frames and header blocks
// (after zlib decompression) spdystream's framer reads from a client.
func spdyFramerOptions() []spdy.FramerOption {
	return []spdy.FramerOption{
		spdy.WithMaxControlFramePayloadSize(spdyMaxControlFrame),
		spdy.WithMaxHeaderFieldSize(spdyMaxHeaderField),
		spdy.WithMaxHeaderCount(spdyMaxHeaderCount),
	}
}

// spdySession collects the streams of one exec or attach.
type spdySession struct {
	ready chan struct{} // closed when every expected stream is there

	mu      sync.Mutex
	want    map[string]bool // stream types still expected
	started bool            // streams are complete, or the session is over: accept no more
	streams map[string]*spdystream.Stream
}

func newSPDYSession(protocol string, opts *serverremotecommand.Options) *spdySession {
	want := map[string]bool{corev1.StreamTypeError: true}
	if opts.Stdin {
		want[corev1.StreamTypeStdin] = true
	}
	if opts.Stdout {
		want[corev1.StreamTypeStdout] = true
	}
	if opts.Stderr {
		want[corev1.StreamTypeStderr] = true
	}
	if opts.TTY && protocol != spdyProtocolV1 && protocol != spdyProtocolV2 {
		want[corev1.StreamTypeResize] = true
	}
	return &spdySession{ready: make(chan struct{}), want: want, streams: map[string]*spdystream.Stream{}}
}

// accept is the connection's stream handler. It runs on spdystream's frame
// workers, so it never blocks.
func (s *spdySession) accept(st *spdystream.Stream) {
	typ := st.Headers().Get(corev1.StreamType)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || !s.want[typ] {
		_ = st.Reset() // refused, and forgotten, so its frames go nowhere
		return
	}
	delete(s.want, typ)
	s.streams[typ] = st
	if err := st.SendReply(http.Header{}, false); err != nil {
		return // the connection is failing; wait sees it close
	}
	if typ != corev1.StreamTypeStdin && typ != corev1.StreamTypeResize {
		// kubegate only writes to these; whatever a client writes to them
		// is dropped, so that it cannot hold up a frame worker.
		go func() { _, _ = io.Copy(io.Discard, st) }()
	}
	if len(s.want) == 0 {
		s.started = true
		close(s.ready)
	}
}

// wait returns when every expected stream is there, or fails when the
// client goes away or does not open them within timeout.
func (s *spdySession) wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return errors.New("the client left before opening its streams")
	case <-t.C:
		s.mu.Lock()
		defer s.mu.Unlock()
		missing := make([]string, 0, len(s.want))
		for typ := range s.want {
			missing = append(missing, typ)
		}
		return fmt.Errorf("streams %v were not opened within %s", missing, timeout)
	}
}

// close resets every stream, which also releases frame workers waiting to
// hand over data, and closes the connection.
func (s *spdySession) close(conn *spdystream.Connection) {
	s.mu.Lock()
	s.started = true
	streams := s.streams
	s.mu.Unlock()
	for _, st := range streams {
		_ = st.Reset()
	}
	conn.SetCloseTimeout(spdyCloseTimeout)
	_ = conn.Close()
}

// readerConn is a connection read through r and, when w is set, written
// through w.
type readerConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *readerConn) Write(p []byte) (int, error) {
	if c.w == nil {
		return c.Conn.Write(p)
	}
	return c.w.Write(p)
}

// spdyFrameReader is a client's SPDY byte stream with every frame header
// checked against kubegate's limits before spdystream allocates the frame
// (it would take a data frame of up to 16 MiB). It also refuses a control
// frame whose length differs from what spdystream's framer will read of
// it (an RST_STREAM of 12 bytes, a SETTINGS frame longer than its
// entries): the framer would take the rest for the next frame's header,
// whose length this reader would not have checked.
type spdyFrameReader struct {
	r       io.Reader
	maxData int // the data frame limit; zero means spdyMaxDataFrame
	// maxControl is the largest control frame taken; zero means
	// spdyMaxControlFrame.
	maxControl uint32

	hdr  [8]byte
	nhdr int    // header bytes of the current frame seen so far
	left uint32 // payload bytes of the current frame still to come

	length uint32  // the current frame's payload length
	count  [4]byte // a SETTINGS frame's entry count
	ncount int     // its bytes still to come
}

func (f *spdyFrameReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if cerr := f.check(p[:n]); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// check follows the frame boundaries through p. A header split across
// reads is kept until it is whole.
func (f *spdyFrameReader) check(p []byte) error {
	for len(p) > 0 {
		if f.left > 0 {
			n := uint32(min(uint64(len(p)), uint64(f.left)))
			if f.ncount > 0 {
				k := copy(f.count[4-f.ncount:], p[:n])
				f.ncount -= k
				if f.ncount == 0 {
					if entries := binary.BigEndian.Uint32(f.count[:]); uint64(f.length) != 4+8*uint64(entries) {
						return fmt.Errorf("%w: SETTINGS frame of %d bytes with %d entries", ErrSPDYFrameMalformed, f.length, entries)
					}
				}
			}
			p, f.left = p[n:], f.left-n
			continue
		}
		n := copy(f.hdr[f.nhdr:], p)
		f.nhdr += n
		p = p[n:]
		if f.nhdr < len(f.hdr) {
			return nil
		}
		f.nhdr = 0
		length := uint32(f.hdr[5])<<16 | uint32(f.hdr[6])<<8 | uint32(f.hdr[7])
		limit, kind := uint32(frameLimit(f.maxData)), "data"
		if f.hdr[0]&0x80 != 0 {
			limit, kind = spdyMaxControlFrame, "control"
			if f.maxControl > 0 {
				limit = f.maxControl
			}
		}
		if length > limit {
			return fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrSPDYFrameTooLarge, kind, length, limit)
		}
		if f.hdr[0]&0x80 != 0 {
			typ := spdy.ControlFrameType(binary.BigEndian.Uint16(f.hdr[2:4]))
			if err := spdyCheckControlLength(typ, length); err != nil {
				return err
			}
			if typ == spdy.TypeSettings {
				f.ncount = 4
			}
		}
		f.left, f.length = length, length
	}
	return nil
}

// ErrSPDYFrameMalformed is a client control frame whose length does not
// fit its type.
var ErrSPDYFrameMalformed = errors.New("malformed SPDY control frame")

// spdyCheckControlLength checks a control frame's length against what
// spdystream's framer reads for its type: the fixed fields, exactly, for
// fixed-size frames; at least the fixed fields before a header block
// (whose compressed size the framer checks itself).
func spdyCheckControlLength(typ spdy.ControlFrameType, length uint32) error {
	ok := true
	switch typ {
	case spdy.TypeSynStream:
		ok = length >= 10
	case spdy.TypeSynReply, spdy.TypeHeaders:
		ok = length >= 4
	case spdy.TypeRstStream, spdy.TypeGoAway, spdy.TypeWindowUpdate:
		ok = length == 8
	case spdy.TypePing:
		ok = length == 4
	case spdy.TypeSettings:
		ok = length >= 4 // and 4 + 8 × its count, checked as it comes
	}
	if !ok {
		return fmt.Errorf("%w: type %d with %d bytes", ErrSPDYFrameMalformed, typ, length)
	}
	return nil
}

// frameLimit is a configured frame limit, or the default for zero.
func frameLimit(n int) int {
	if n <= 0 {
		return spdyMaxDataFrame
	}
	return n
}
