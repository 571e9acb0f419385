package upgrade

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// A port-forward capture (PortForwardConfig.Capture) is a sequence of
// records, one per chunk relayed, in the order they were relayed:
//
//	1 byte   direction: '>' client to pod, '<' pod to client
//	8 bytes  time since the connection started, nanoseconds, big endian
//	4 bytes  payload length, big endian, at most PortForwardCaptureMaxPayload
//	payload  the bytes, as relayed
//
// A chunk is captured before it is forwarded, so a capture may end with a
// chunk the receiver never got when the connection failed.
const (
	portForwardCaptureHeaderLen = 13
	// PortForwardCaptureMaxPayload is the largest payload of a record.
	PortForwardCaptureMaxPayload = 1 << 20
)

// PortForwardCaptureRecord is one record of a port-forward capture.
type PortForwardCaptureRecord struct {
	// ToPod is true for bytes the client sent to the pod.
	ToPod bool
	// Offset is the time since the connection started.
	Offset time.Duration
	// Data is the relayed bytes. ParsePortForwardCaptureRecord returns a
	// slice of its input.
	Data []byte
}

// ErrPortForwardCaptureFormat is a malformed capture record.
var ErrPortForwardCaptureFormat = errors.New("malformed port-forward capture record")

// ParsePortForwardCaptureRecord decodes the record at the start of b and
// returns it with its length. When b holds only part of a record it returns
// n == 0 and no error: the caller needs more bytes. Each header field is
// checked as soon as b holds it.
func ParsePortForwardCaptureRecord(b []byte) (rec PortForwardCaptureRecord, n int, err error) {
	if len(b) < 1 {
		return PortForwardCaptureRecord{}, 0, nil
	}
	if b[0] != '>' && b[0] != '<' {
		return PortForwardCaptureRecord{}, 0, fmt.Errorf("%w: direction byte %#x", ErrPortForwardCaptureFormat, b[0])
	}
	if len(b) > 1 && b[1]&0x80 != 0 {
		return PortForwardCaptureRecord{}, 0, fmt.Errorf("%w: negative offset", ErrPortForwardCaptureFormat)
	}
	if len(b) < portForwardCaptureHeaderLen {
		return PortForwardCaptureRecord{}, 0, nil
	}
	size := binary.BigEndian.Uint32(b[9:13])
	if size > PortForwardCaptureMaxPayload {
		return PortForwardCaptureRecord{}, 0, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrPortForwardCaptureFormat, size, PortForwardCaptureMaxPayload)
	}
	end := portForwardCaptureHeaderLen + int(size)
	if len(b) < end {
		return PortForwardCaptureRecord{}, 0, nil
	}
	return PortForwardCaptureRecord{
		ToPod:  b[0] == '>',
		Offset: time.Duration(binary.BigEndian.Uint64(b[1:9])),
		Data:   b[portForwardCaptureHeaderLen:end],
	}, end, nil
}

// AppendPortForwardCaptureRecord appends rec's encoding to b.
func AppendPortForwardCaptureRecord(b []byte, rec PortForwardCaptureRecord) []byte {
	dir := byte('<')
	if rec.ToPod {
		dir = '>'
	}
	b = append(b, dir)
	b = binary.BigEndian.AppendUint64(b, uint64(max(rec.Offset, 0)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec.Data)))
	return append(b, rec.Data...)
}

// portForwardCapture writes one connection's records. Both directions'
// copiers write to it, so writes are serialized.
type portForwardCapture struct {
	mu     sync.Mutex
	w      io.WriteCloser
	start  time.Time
	header [portForwardCaptureHeaderLen]byte
	err    error
}

func newPortForwardCapture(w io.WriteCloser, start time.Time) *portForwardCapture {
	return &portForwardCapture{w: w, start: start}
}

func (c *portForwardCapture) toPod(p []byte) error   { return c.record('>', p) }
func (c *portForwardCapture) fromPod(p []byte) error { return c.record('<', p) }

// record writes one record; after a failure every call fails.
func (c *portForwardCapture) record(dir byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	for len(p) > 0 {
		chunk := p[:min(len(p), PortForwardCaptureMaxPayload)]
		p = p[len(chunk):]
		c.header[0] = dir
		binary.BigEndian.PutUint64(c.header[1:9], uint64(time.Since(c.start)))
		binary.BigEndian.PutUint32(c.header[9:13], uint32(len(chunk)))
		if _, err := c.w.Write(c.header[:]); err != nil {
			c.err = fmt.Errorf("%w: %w", ErrPortForwardCapture, err)
			return c.err
		}
		if _, err := c.w.Write(chunk); err != nil {
			c.err = fmt.Errorf("%w: %w", ErrPortForwardCapture, err)
			return c.err
		}
	}
	return nil
}

// Close closes the writer.
func (c *portForwardCapture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Close()
}
