package upgrade

import (
	"io"
	"sync"
)

// spdyFrameWriter passes each SPDY frame on in one Write. spdystream's
// framer writes a frame field by field (a SYN_REPLY in five writes, a
// RST_STREAM in five, a data frame in three) straight to the connection,
// and over TLS every write is a record of its own and a system call: an
// `exec -- true` session sent its client some thirty records where half a
// dozen do, and the client read as many. The writer follows the frame
// boundaries from each frame's 8-byte header, gathers the frame and writes
// it whole; a frame too large to gather goes on in two writes, header
// and payload.
//
// The framer writes under its own lock, one whole frame at a time, so the
// writer needs none. A gathered frame borrows a pooled buffer only while
// the framer writes it: an idle session holds none. After a failed write
// every write fails: the frame stream is broken.
type spdyFrameWriter struct {
	w io.Writer

	hdr  [8]byte
	nhdr int     // header bytes of the current frame so far
	left int     // payload bytes of the current frame still to come
	buf  *[]byte // the frame so far, while one is gathered; nil while a large payload passes through
	err  error
}

// spdyGatherMax is the largest frame gathered whole: kubectl and
// client-go write at most 32 KiB of data at a time.
const spdyGatherMax = 32<<10 + 8

var spdyFrameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, spdyGatherMax); return &b }}

func (f *spdyFrameWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := len(p)
	for len(p) > 0 {
		if f.nhdr < len(f.hdr) {
			k := copy(f.hdr[f.nhdr:], p)
			f.nhdr += k
			p = p[k:]
			if f.nhdr < len(f.hdr) {
				break
			}
			// Data and control frames alike end their header with a
			// 24-bit payload length.
			f.left = int(f.hdr[5])<<16 | int(f.hdr[6])<<8 | int(f.hdr[7])
			switch {
			case f.left == 0:
				f.flush(f.hdr[:])
			case len(f.hdr)+f.left <= spdyGatherMax:
				f.buf = spdyFrameBuffers.Get().(*[]byte)
				*f.buf = append((*f.buf)[:0], f.hdr[:]...)
			default:
				f.flush(f.hdr[:]) // the payload passes through
			}
			continue
		}
		k := min(len(p), f.left)
		f.left -= k
		if f.buf == nil {
			f.flush(p[:k])
		} else {
			*f.buf = append(*f.buf, p[:k]...)
			if f.left == 0 {
				f.flush(*f.buf)
			}
		}
		p = p[k:]
	}
	if f.err != nil {
		return 0, f.err
	}
	return n, nil
}

// flush writes b and, at a frame's end, gets ready for the next; a
// gathered frame's buffer goes back to the pool.
func (f *spdyFrameWriter) flush(b []byte) {
	if f.err == nil {
		_, f.err = f.w.Write(b)
	}
	if f.left == 0 {
		f.nhdr = 0
		if f.buf != nil {
			spdyFrameBuffers.Put(f.buf)
			f.buf = nil
		}
	}
}
