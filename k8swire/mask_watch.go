package k8swire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// watchReadSize is how much MaskWatch asks its reader for at a time.
const watchReadSize = 32 << 10

// MaskWatch copies a watch stream from r to w event by event, masking each
// event's object as MaskBody would, and calls flush (if not nil) after
// each event. It holds one event at a time, at most MaxWatchEvent bytes.
//
// contentType is the response's: JSON (events are JSON objects
// {"type":..,"object":..}, one per line or concatenated; they are written
// one per line) or application/vnd.kubernetes.protobuf;stream=watch (each
// event a metav1.WatchEvent in a 4-byte big-endian length-prefixed frame,
// its object a protobuf-encoded runtime.Unknown).
//
// It returns nil when r ends between events; an event that does not decode,
// is too large (ErrWatchEventTooLarge) or is cut short ends the copy with
// an error wrapping ErrUnmaskable, and nothing of that event is written.
// Errors from r and w are returned as they are.
func (m *Masker) MaskWatch(req *Request, contentType string, r io.Reader, w io.Writer, flush func()) error {
	if flush == nil {
		flush = func() {}
	}
	rules := m.requestRules(req)
	if len(rules) == 0 && m.patterns == nil {
		return copyFlushing(r, w, flush)
	}
	switch mt, _ := mediaType(contentType); {
	case isJSONMediaType(mt):
		return m.watchJSON(req, rules, r, w, flush)
	case mt == ContentTypeProtobuf:
		return m.watchProtobuf(req, rules, r, w, flush)
	}
	return fmt.Errorf("%w: watch content type %q cannot be masked", ErrUnmaskable, contentType)
}

// copyFlushing copies r to w, flushing after each write.
func copyFlushing(r io.Reader, w io.Writer, flush func()) error {
	buf := make([]byte, watchReadSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			flush()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (m *Masker) tooLarge() error {
	return fmt.Errorf("%w: %w (limit %d bytes)", ErrUnmaskable, ErrWatchEventTooLarge, m.maxWatchEvent)
}

// jsonFramer finds where the JSON object that starts a buffer ends, across
// reads: it tracks nesting and strings only, the masker validates the rest.
type jsonFramer struct {
	pos   int // bytes of the event scanned so far
	depth int
	inStr bool
	esc   bool
}

// end scans b, the event so far (b[0] == '{'), from where it stopped, and
// returns the event's length, or 0 if it needs more bytes.
func (f *jsonFramer) end(b []byte) int {
	for ; f.pos < len(b); f.pos++ {
		c := b[f.pos]
		switch {
		case f.esc:
			f.esc = false
		case f.inStr:
			switch c {
			case '\\':
				f.esc = true
			case '"':
				f.inStr = false
			}
		case c == '"':
			f.inStr = true
		case c == '{' || c == '[':
			f.depth++
		case c == '}' || c == ']':
			f.depth--
			if f.depth == 0 {
				f.pos++
				return f.pos
			}
		}
	}
	return 0
}

func (m *Masker) watchJSON(req *Request, rules []*maskRule, r io.Reader, w io.Writer, flush func()) error {
	buf := make([]byte, 0, watchReadSize)
	var out []byte
	var f jsonFramer
	start := 0 // where the current event starts in buf
	eof := false
	for {
		start = skipSpace(buf, start)
		if start < len(buf) {
			if buf[start] != '{' {
				return fmt.Errorf("%w: decoding JSON watch event: %w", ErrUnmaskable, syntaxErr(start, "want '{'"))
			}
			if n := f.end(buf[start:]); n > 0 {
				if n > m.maxWatchEvent {
					return m.tooLarge()
				}
				masked, _, err := m.maskJSON(req, rules, buf[start:start+n], true)
				if err != nil {
					return err
				}
				out = append(append(out[:0], masked...), '\n')
				if _, err := w.Write(out); err != nil {
					return err
				}
				flush()
				start += n
				f = jsonFramer{}
				continue
			}
			if len(buf)-start > m.maxWatchEvent {
				return m.tooLarge()
			}
		}
		if eof {
			if start < len(buf) {
				return fmt.Errorf("%w: watch stream ended inside an event: %w", ErrUnmaskable, io.ErrUnexpectedEOF)
			}
			return nil
		}
		// Need more: keep the event so far at the front, and read.
		buf = slices.Grow(buf[:copy(buf, buf[start:])], watchReadSize)
		start = 0
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			eof = true
		case err != nil:
			return err
		}
	}
}

func (m *Masker) watchProtobuf(req *Request, rules []*maskRule, r io.Reader, w io.Writer, flush func()) error {
	var hdr [4]byte
	var payload, out []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: watch stream ended inside a frame header: %w", ErrUnmaskable, err)
			}
			return err
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if uint64(size) > uint64(m.maxWatchEvent) {
			return m.tooLarge()
		}
		if cap(payload) < int(size) {
			payload = make([]byte, size)
		}
		payload = payload[:size]
		if _, err := io.ReadFull(r, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: watch stream ended inside an event: %w", ErrUnmaskable, io.ErrUnexpectedEOF)
			}
			return err
		}
		frame, _, err := m.maskProtobufEvent(req, rules, payload)
		if err != nil {
			return err
		}
		out = binary.BigEndian.AppendUint32(out[:0], uint32(len(frame)))
		out = append(out, frame...)
		if _, err := w.Write(out); err != nil {
			return err
		}
		flush()
	}
}

// maskProtobufEvent masks the object of one protobuf metav1.WatchEvent.
func (m *Masker) maskProtobufEvent(req *Request, rules []*maskRule, event []byte) ([]byte, bool, error) {
	var ev metav1.WatchEvent
	if err := ev.Unmarshal(event); err != nil {
		return nil, false, fmt.Errorf("%w: decoding protobuf watch event: %w", ErrUnmaskable, err)
	}
	obj, changed, err := m.maskProtobufBody(req, rules, ev.Object.Raw)
	if err != nil || !changed {
		return event, false, err
	}
	ev.Object.Raw = obj
	out, err := ev.Marshal()
	if err != nil {
		return nil, false, fmt.Errorf("%w: encoding protobuf watch event: %w", ErrUnmaskable, err)
	}
	return out, true, nil
}

// MaskWatchEvent masks one whole watch event, as a WebSocket watch sends
// each in a message of its own: JSON ({"type":..,"object":..}) or a
// protobuf metav1.WatchEvent without the length prefix of an HTTP watch
// stream, per contentType (the upgrade response's). It reports whether it
// changed anything; errors wrap ErrUnmaskable and the event must not be
// sent. Events over MaxWatchEvent are refused (ErrWatchEventTooLarge).
func (m *Masker) MaskWatchEvent(req *Request, contentType string, event []byte) ([]byte, bool, error) {
	rules := m.requestRules(req)
	if len(rules) == 0 && m.patterns == nil {
		return event, false, nil
	}
	if len(event) > m.maxWatchEvent {
		return nil, false, m.tooLarge()
	}
	switch mt, _ := mediaType(contentType); {
	case isJSONMediaType(mt):
		return m.maskJSON(req, rules, event, true)
	case mt == ContentTypeProtobuf:
		return m.maskProtobufEvent(req, rules, event)
	}
	return nil, false, fmt.Errorf("%w: watch content type %q cannot be masked", ErrUnmaskable, contentType)
}

// MaxWatchEvent is the largest watch event, in bytes, the Masker reads
// (MaskConfig.MaxWatchEvent); DefaultMaxWatchEvent for a nil Masker.
func (m *Masker) MaxWatchEvent() int {
	if m == nil {
		return DefaultMaxWatchEvent
	}
	return m.maxWatchEvent
}

// CheckWatchEventType reports, wrapping ErrUnmaskable, a watch content
// type whose events MaskWatchEvent cannot read.
func CheckWatchEventType(contentType string) error {
	if mt, _ := mediaType(contentType); isJSONMediaType(mt) || mt == ContentTypeProtobuf {
		return nil
	}
	return fmt.Errorf("%w: watch content type %q cannot be masked", ErrUnmaskable, contentType)
}
