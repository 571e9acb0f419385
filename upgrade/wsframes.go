package upgrade

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// ErrWebSocketFragmented is a client that split a message into fragments.
// The WebSocket server kubegate uses (x/net/websocket, under
// k8s.io/streaming's wsstream) hands each fragment on as a message of its
// own, whose first byte would be taken for a channel number: the session
// ends rather than misroute stdin. kubectl and client-go never fragment.
var ErrWebSocketFragmented = errors.New("fragmented WebSocket messages are not supported")

// ErrWebSocketFrameTooLarge is a client frame over wsMaxFrame.
var ErrWebSocketFrameTooLarge = errors.New("WebSocket frame too large")

// wsMaxFrame is the default bound of a client's WebSocket frame, as
// spdyMaxDataFrame is SPDY's: the WebSocket server would buffer a whole
// frame of up to 32 MiB. kubectl and client-go send stdin in frames of at
// most 32 KiB.
const wsMaxFrame = spdyMaxDataFrame

// wsCheckingWriter hijacks into a connection whose incoming WebSocket
// frames are checked before the WebSocket server reads them, and whose
// outgoing bytes go through out, if it is set.
type wsCheckingWriter struct {
	http.ResponseWriter
	maxFrame int       // zero means wsMaxFrame
	out      *wsOutput // nil: the server writes to the connection itself
}

func (w wsCheckingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := hijack(w.ResponseWriter)
	if err != nil {
		return nil, nil, err
	}
	// rw.Writer is the HTTP server's fresh buffer on c: it is kept, and
	// pointed at out.
	if w.out != nil && rw.Writer.Buffered() == 0 {
		w.out.conn = c
		rw.Writer.Reset(w.out)
	}
	// rw.Reader holds what the HTTP server read ahead and reads on from c.
	return c, bufio.NewReadWriter(bufio.NewReader(&wsFrameReader{r: rw.Reader, maxFrame: w.maxFrame}), rw.Writer), nil
}

// wsFrameReader follows the frame boundaries of a client's WebSocket byte
// stream and fails on a fragmented message or a frame over wsMaxFrame.
type wsFrameReader struct {
	r        io.Reader
	maxFrame int // zero means wsMaxFrame

	hdr  [14]byte // the longest header: 2 + 8 (length) + 4 (mask)
	nhdr int      // header bytes of the current frame seen so far
	left uint64   // payload bytes of the current frame still to come
}

func (f *wsFrameReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if cerr := f.check(p[:n]); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// check follows the frames through p. A header split across reads is kept
// until it is whole.
func (f *wsFrameReader) check(p []byte) error {
	for len(p) > 0 {
		if f.left > 0 {
			n := min(uint64(len(p)), f.left)
			p, f.left = p[n:], f.left-n
			continue
		}
		// Take header bytes one at a time until the header is whole: its
		// size is known from its second byte on.
		f.hdr[f.nhdr] = p[0]
		f.nhdr++
		p = p[1:]
		size, ok := wsHeaderSize(f.hdr[:f.nhdr])
		if !ok || f.nhdr < size {
			continue
		}
		fin, opcode := f.hdr[0]&0x80 != 0, f.hdr[0]&0x0f
		if opcode == 0 || opcode < 8 && !fin {
			return fmt.Errorf("%w (opcode %d, fin %t)", ErrWebSocketFragmented, opcode, fin)
		}
		f.left = wsPayloadLength(f.hdr[:size])
		f.nhdr = 0
		if limit := uint64(frameLimit(f.maxFrame)); f.left > limit {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrWebSocketFrameTooLarge, f.left, limit)
		}
	}
	return nil
}

// wsHeaderSize is the size of the frame header that begins with h, once h
// holds enough of it to tell.
func wsHeaderSize(h []byte) (int, bool) {
	if len(h) < 2 {
		return 0, false
	}
	size := 2
	switch h[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if h[1]&0x80 != 0 {
		size += 4 // masking key
	}
	return size, true
}

// wsPayloadLength reads the payload length of a whole frame header.
func wsPayloadLength(h []byte) uint64 {
	switch n := h[1] & 0x7f; n {
	case 126:
		return uint64(h[2])<<8 | uint64(h[3])
	case 127:
		var l uint64
		for _, b := range h[2:10] {
			l = l<<8 | uint64(b)
		}
		return l
	default:
		return uint64(n)
	}
}

// wsOutput carries everything kubegate writes to a client's WebSocket
// connection. The WebSocket server under wsstream (x/net/websocket) writes
// the handshake and its frames through it, and a busy session's stdout and
// stderr go around wsstream (writeMessage): wsstream copies each message
// into a freshly allocated frame, nearly all of a streaming session's
// garbage. The server's frames are gathered here until whole and written
// under the same lock as writeMessage's, so the two never interleave
// within a frame.
type wsOutput struct {
	conn net.Conn
	idle time.Duration // each message moves the connection's deadline this far ahead

	mu sync.Mutex // one frame at a time on conn

	// Only the WebSocket server's goroutines write (under its own lock):
	// state is where its bytes stand, pending the start of a frame not yet
	// whole.
	state   wsOutState
	head    []byte // the start of the HTTP response, to tell 101 from a refusal
	tail    uint32 // the header's last four bytes, to find its end
	pending []byte
}

type wsOutState int

const (
	wsOutHandshake wsOutState = iota // the HTTP response header
	wsOutFrames                      // the connection was upgraded: frames
	wsOutRaw                         // a refused handshake: its body, as it is
)

// wsUpgraded begins the response of an accepted WebSocket handshake.
const wsUpgraded = "HTTP/1.1 101 "

// Write takes what the WebSocket server writes: the response header and,
// once upgraded, its frames, each passed on when whole.
func (o *wsOutput) Write(p []byte) (int, error) {
	n := len(p)
	if o.state == wsOutHandshake {
		end := o.headerEnd(p)
		if err := o.write(p[:end]); err != nil {
			return 0, err
		}
		p = p[end:]
	}
	if o.state != wsOutFrames {
		if err := o.write(p); err != nil {
			return 0, err
		}
		return n, nil
	}
	if len(o.pending) == 0 {
		// Frames that arrive whole go out from p itself.
		whole := wsWholeFrames(p)
		if err := o.write(p[:whole]); err != nil {
			return 0, err
		}
		p = p[whole:]
	}
	if len(p) == 0 {
		return n, nil
	}
	o.pending = append(o.pending, p...)
	whole := wsWholeFrames(o.pending)
	if whole == 0 {
		return n, nil
	}
	err := o.write(o.pending[:whole])
	o.pending = o.pending[:copy(o.pending, o.pending[whole:])]
	if cap(o.pending) > 4<<10 && len(o.pending) == 0 {
		o.pending = nil // an idle session keeps no large buffer
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// headerEnd follows the HTTP response header through p and returns how
// much of p belongs to it; when the header ends there, it also decides
// the state that follows.
func (o *wsOutput) headerEnd(p []byte) int {
	for i, b := range p {
		if len(o.head) < len(wsUpgraded) {
			o.head = append(o.head, b)
		}
		o.tail = o.tail<<8 | uint32(b)
		if o.tail == '\r'<<24|'\n'<<16|'\r'<<8|'\n' {
			o.state = wsOutRaw
			if string(o.head) == wsUpgraded {
				o.state = wsOutFrames
			}
			o.head = nil
			return i + 1
		}
	}
	return len(p)
}

// wsWholeFrames returns the length of the whole frames p begins with.
func wsWholeFrames(p []byte) int {
	at := 0
	for {
		size, ok := wsHeaderSize(p[at:])
		if !ok || len(p)-at < size {
			return at
		}
		frame := uint64(size) + wsPayloadLength(p[at:at+size])
		if uint64(len(p)-at) < frame {
			return at
		}
		at += int(frame)
	}
}

// write passes bytes on to the connection under the frame lock.
func (o *wsOutput) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := o.conn.Write(p)
	return err
}

// wsMessageBuffers hold a frame of up to a 32 KiB message, only while it
// is written.
var wsMessageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, wsFrameHeaderMax+1+32<<10); return &b }}

// wsFrameHeaderMax is the longest header of a frame the server sends
// (unmasked, with a 64-bit length).
const wsFrameHeaderMax = 10

// writeMessage sends p as one binary message on channel ch, as wsstream
// does for a binary channel protocol, and moves the connection's deadline
// ahead as wsstream does for each message.
func (o *wsOutput) writeMessage(ch byte, p []byte) (int, error) {
	bp := wsMessageBuffers.Get().(*[]byte)
	defer wsMessageBuffers.Put(bp)
	frame := appendWSHeader((*bp)[:0], len(p)+1)
	frame = append(frame, ch)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.idle > 0 {
		_ = o.conn.SetDeadline(time.Now().Add(o.idle))
	}
	var err error
	if len(frame)+len(p) <= cap(frame) {
		_, err = o.conn.Write(append(frame, p...))
	} else if _, err = o.conn.Write(frame); err == nil {
		_, err = o.conn.Write(p)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// appendWSHeader appends the header of an unmasked, final binary frame of
// n payload bytes.
func appendWSHeader(dst []byte, n int) []byte {
	const finBinary = 0x80 | 0x2
	switch {
	case n <= 125:
		return append(dst, finBinary, byte(n))
	case n < 1<<16:
		return append(dst, finBinary, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, finBinary, 127), uint64(n))
	}
}

// wsChannelWriter writes messages on one channel of a wsOutput.
type wsChannelWriter struct {
	out *wsOutput
	ch  byte
}

func (w wsChannelWriter) Write(p []byte) (int, error) { return w.out.writeMessage(w.ch, p) }
