package upgrade

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
// frames are checked before the WebSocket server reads them.
type wsCheckingWriter struct {
	http.ResponseWriter
	maxFrame int // zero means wsMaxFrame
}

func (w wsCheckingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := hijack(w.ResponseWriter)
	if err != nil {
		return nil, nil, err
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
