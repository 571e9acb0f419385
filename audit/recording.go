package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// ErrRecordingClosed is returned by a Recording's methods after Close.
var ErrRecordingClosed = errors.New("audit recording: closed")

// RecordingConfig configures a Recording.
type RecordingConfig struct {
	// Dir is the root of the recordings. A session goes to
	// Dir/<YYYY-MM-DD>/<SessionID>.cast, the date being the UTC day it
	// started; missing directories are created with mode 0750. Required.
	Dir string
	// SessionID names the session's files. Required: at most 200 of
	// [A-Za-z0-9._-], not starting with a dot.
	SessionID string
	// Width and Height are the terminal size at the start, in columns and
	// rows. Zero means 80 and 24.
	Width, Height uint16
	// SizeFromFirstResize, for a terminal session, holds the header back
	// for the client's first resize, which kubectl sends as the session
	// starts, so that the header carries the terminal's real size. Events
	// that come first (a shell's prompt may overtake the resize) are held
	// in memory, up to headerHoldBytes, and written after the header. The
	// header is written with Width and Height instead once headerWait has
	// passed without a resize, or when held events would exceed the bound.
	SizeFromFirstResize bool
	// Command is the exec argv, written shell-quoted into the header. Empty
	// (attach) leaves "command" out.
	Command []string
	// Title is the header's title, e.g. "kubectl exec dev/toolbox -- sh".
	// Empty leaves it out.
	Title string
	// Meta goes into the header's "env" object: session_id, user,
	// namespace, pod, container, audit_id, protocol, tty, stdin... Never put
	// a token here. Empty leaves "env" out.
	Meta map[string]string
	// Now is the clock events are timed by. Nil means time.Now.
	Now func() time.Time
	// FlushInterval is the longest an event waits in memory before it is
	// written to the file. Zero means 100ms.
	FlushInterval time.Duration
}

// RecordingSummary describes a closed Recording.
type RecordingSummary struct {
	// Path is the .cast file.
	Path string
	// StderrPath is the stderr sidecar, <SessionID>.stderr.jsonl: one line
	// [t, "<base64>"] per stderr chunk, its bytes exactly as received.
	// Empty if the session wrote nothing to stderr.
	StderrPath string
	// RawPath is the raw sidecar, <SessionID>.raw.jsonl: one line
	// [index, t, "code", "<base64>"] for each event of the .cast whose
	// bytes were not valid UTF-8, holding them exactly (see Cast.ApplyRaw).
	// Empty if every byte was valid UTF-8.
	RawPath string
	// SHA256 is the hex SHA-256 of the .cast file's content.
	SHA256 string
	// BytesIn, BytesOut and BytesErr count the bytes of stdin, stdout and
	// stderr as they were passed to the Recording.
	BytesIn, BytesOut, BytesErr int64
	// Events is the number of events in the .cast, not counting the header.
	Events int
	// Duration is the time from the start of the recording to Close.
	Duration time.Duration
}

// stream is one direction of a session's traffic.
type stream int

const (
	stdin stream = iota
	stdout
	stderr
	numStreams
)

func (s stream) code() string {
	if s == stdin {
		return CodeInput
	}
	return CodeOutput
}

// Recording writes an exec or attach session as an asciicast v2 file. It
// satisfies upgrade.Tap. It is safe for concurrent use, and events appear
// in the file in the order the calls that made them took place.
//
// Text: asciicast data is a JSON string, so a chunk's valid UTF-8 goes in
// as it is. A multi-byte sequence cut at the end of a chunk is held back
// and recorded with the next chunk of the same stream (stdin, stdout and
// stderr each have their own), so an event may hold a few bytes less or
// more than the chunk it stands for, and a chunk that is only such a
// fragment makes no event of its own. Each byte that is not part of valid
// UTF-8 becomes U+FFFD in the .cast, and the event's exact bytes go to the
// raw sidecar as well, so nothing is lost. A fragment still held at Close
// is recorded then, as invalid.
//
// Stderr is recorded as "o" events, so a replay shows what the user saw,
// and is also kept apart, byte for byte, in the stderr sidecar.
//
// Events are buffered and reach the file within FlushInterval, a line at a
// time; only a chunk larger than the buffer is written in pieces. A file
// cut short by a crash thus holds whole events up to its last line, which
// ParseCast reports as ErrTruncated.
//
// The first write error is kept: the call that hit it, every later call
// and Close return it. A timed flush that fails is reported by the next
// call.
type Recording struct {
	cfg      RecordingConfig
	start    time.Time
	dir      string // Dir/<YYYY-MM-DD>
	create   func(path string) (recordFile, error)
	newTimer func(d time.Duration, f func()) flushTimer

	mu      sync.Mutex
	cast    *lineFile
	stderr  *lineFile // nil until the first stderr chunk
	raw     *lineFile // nil until the first event with invalid UTF-8
	carry   [numStreams]utf8Carry
	scratch [smallChunk]byte
	last    time.Duration // the latest event time, so times never go back
	bytes   [numStreams]int64
	events  int
	// headerPending: the header waits for the first resize (see
	// RecordingConfig.SizeFromFirstResize); early are the events held
	// meanwhile, earlyBytes their size.
	headerPending bool
	early         []earlyEvent
	earlyBytes    int
	err           error // sticky; also Close's result
	closed        bool
	summary       RecordingSummary

	timer    flushTimer
	armed    bool           // a timed flush is scheduled
	inflight sync.WaitGroup // scheduled timed flushes, waited for by Close
}

// bufferSize is the .cast's write buffer, and so the most memory an event
// takes whatever its size.
const bufferSize = 64 << 10

// NewRecording creates the session's .cast file and writes its header.
func NewRecording(cfg RecordingConfig) (*Recording, error) {
	return newRecording(cfg, createFile, realTimer)
}

func newRecording(cfg RecordingConfig, create func(string) (recordFile, error), newTimer func(time.Duration, func()) flushTimer) (*Recording, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Width == 0 {
		cfg.Width = 80
	}
	if cfg.Height == 0 {
		cfg.Height = 24
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	start := cfg.Now()
	r := &Recording{
		cfg:      cfg,
		start:    start,
		dir:      filepath.Join(cfg.Dir, start.UTC().Format(time.DateOnly)),
		create:   create,
		newTimer: newTimer,
	}
	if err := os.MkdirAll(r.dir, 0o750); err != nil {
		return nil, fmt.Errorf("audit recording %s: creating directory: %w", cfg.SessionID, err)
	}
	cast, err := openLineFile(create, r.path(".cast"), bufferSize, true)
	if err != nil {
		return nil, fmt.Errorf("audit recording %s: %w", cfg.SessionID, err)
	}
	r.cast = cast
	if cfg.SizeFromFirstResize {
		r.headerPending = true
		r.armFlush()
		return r, nil
	}
	if err := r.writeHeader(); err != nil {
		cast.close()
		return nil, fmt.Errorf("audit recording %s: writing header: %w", cfg.SessionID, err)
	}
	if err := r.cast.release(); err != nil {
		cast.close()
		return nil, fmt.Errorf("audit recording %s: writing header: %w", cfg.SessionID, err)
	}
	return r, nil
}

func (cfg *RecordingConfig) validate() error {
	if cfg.Dir == "" {
		return errors.New("audit recording: dir is required")
	}
	if !validSessionID(cfg.SessionID) {
		return fmt.Errorf("audit recording: session id %q: want 1 to 200 of [A-Za-z0-9._-], not starting with a dot", cfg.SessionID)
	}
	if cfg.FlushInterval < 0 {
		return errors.New("audit recording: flush interval must not be negative")
	}
	return nil
}

func validSessionID(id string) bool {
	if id == "" || len(id) > 200 || id[0] == '.' {
		return false
	}
	for _, c := range []byte(id) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func (r *Recording) path(suffix string) string {
	return filepath.Join(r.dir, r.cfg.SessionID+suffix)
}

// writeHeader writes the header line into the buffer.
func (r *Recording) writeHeader() error {
	line, err := encodeHeader(CastHeader{
		Version:   2,
		Width:     int(r.cfg.Width),
		Height:    int(r.cfg.Height),
		Timestamp: r.start.Unix(),
		Command:   shellJoin(r.cfg.Command),
		Title:     r.cfg.Title,
		Env:       r.cfg.Meta,
	})
	if err != nil {
		return err
	}
	_, err = r.cast.buf().Write(line)
	return err
}

// pendingHeader writes the header if it is still held back; every event
// goes after it. Called with mu held.
func (r *Recording) pendingHeader() {
	if r.headerPending && r.err == nil {
		r.headerPending = false
		r.fail(r.writeHeader())
		for _, e := range r.early {
			r.writeAt(e.s, e.d, e.p)
		}
		r.early, r.earlyBytes = nil, 0
	}
}

// How long and how much a terminal session's header waits for the first
// resize while events come (RecordingConfig.SizeFromFirstResize).
const (
	headerWait      = 2 * time.Second
	headerHoldBytes = 64 << 10
)

// earlyEvent is an event held until the header is written.
type earlyEvent struct {
	s stream
	d time.Duration
	p []byte
}

// holdEarly keeps an event that comes while the header waits for the
// first resize, and reports whether it did.
func (r *Recording) holdEarly(s stream, d time.Duration, p []byte) bool {
	if !r.headerPending || d >= headerWait || r.earlyBytes+len(p) > headerHoldBytes {
		return false
	}
	r.early = append(r.early, earlyEvent{s: s, d: d, p: bytes.Clone(p)})
	r.earlyBytes += len(p)
	return true
}

// Input records data the client sent to stdin, as an "i" event.
func (r *Recording) Input(p []byte) error { return r.write(stdin, p) }

// Output records data from stdout (or the terminal), as an "o" event.
func (r *Recording) Output(p []byte) error { return r.write(stdout, p) }

// ErrorOutput records data from stderr, as an "o" event and in the stderr
// sidecar.
func (r *Recording) ErrorOutput(p []byte) error { return r.write(stderr, p) }

// Resize records a terminal size change as an "r" event, "COLSxROWS".
func (r *Recording) Resize(width, height uint16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(); err != nil {
		return err
	}
	if r.headerPending {
		r.cfg.Width, r.cfg.Height = width, height
	}
	r.pendingHeader()
	var size [16]byte
	b := strconv.AppendUint(size[:0], uint64(width), 10)
	b = append(b, 'x')
	b = strconv.AppendUint(b, uint64(height), 10)
	r.fail(r.writeEvent(r.elapsed(), CodeResize, b, nil))
	r.armFlush()
	return r.err
}

// Exit records the session's exit status as an "x" event (asciicast v3's
// exit event, which asciicast v2 players skip), so that the recording
// itself says how the session ended.
func (r *Recording) Exit(code int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(); err != nil {
		return err
	}
	r.pendingHeader()
	var buf [20]byte
	r.fail(r.writeEvent(r.elapsed(), CodeExit, strconv.AppendInt(buf[:0], int64(code), 10), nil))
	r.armFlush()
	return r.err
}

func (r *Recording) write(s stream, p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	r.bytes[s] += int64(len(p))
	d := r.elapsed()
	if !r.holdEarly(s, d, p) {
		r.pendingHeader()
		r.writeAt(s, d, p)
	}
	r.armFlush()
	return r.err
}

// writeAt writes an event of stream s at offset d.
func (r *Recording) writeAt(s stream, d time.Duration, p []byte) {
	if s == stderr {
		r.fail(r.writeStderr(d, p))
	}
	if head, body := r.carry[s].split(p, &r.scratch); r.err == nil && len(head)+len(body) > 0 {
		r.fail(r.writeEvent(d, s.code(), head, body))
	}
}

// usable returns why the recording takes no more events, if it does not.
func (r *Recording) usable() error {
	if r.err != nil {
		return r.err
	}
	if r.closed {
		return ErrRecordingClosed
	}
	return nil
}

// fail keeps err as the sticky error unless one is kept already.
func (r *Recording) fail(err error) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("audit recording %s: %w", r.cfg.SessionID, err)
	}
}

// elapsed returns the time since the start, never less than last time.
func (r *Recording) elapsed() time.Duration {
	d := r.cfg.Now().Sub(r.start)
	if d < r.last {
		d = r.last
	}
	r.last = d
	return d
}

// writeEvent writes one event whose data is head followed by body, and
// their exact bytes to the raw sidecar if they are not valid UTF-8.
func (r *Recording) writeEvent(d time.Duration, code string, head, body []byte) error {
	w := r.cast
	if err := w.reserveEvent(64, len(head)+len(body)); err != nil {
		return err
	}
	bw := w.buf()
	if _, err := bw.Write(appendEventPrefix(bw.AvailableBuffer(), d, code)); err != nil {
		return err
	}
	invHead, err := writeText(bw, head)
	if err != nil {
		return err
	}
	invBody, err := writeText(bw, body)
	if err != nil {
		return err
	}
	if _, err := bw.WriteString(eventSuffix); err != nil {
		return err
	}
	index := r.events
	r.events++
	if !invHead && !invBody {
		return nil
	}
	if r.raw == nil {
		if r.raw, err = openLineFile(r.create, r.path(".raw.jsonl"), 16<<10, false); err != nil {
			return err
		}
	}
	return r.raw.writeRawLine(index, d, code, head, body)
}

func (r *Recording) writeStderr(d time.Duration, p []byte) error {
	if r.stderr == nil {
		var err error
		if r.stderr, err = openLineFile(r.create, r.path(".stderr.jsonl"), 16<<10, false); err != nil {
			return err
		}
	}
	return r.stderr.writeStderrLine(d, p)
}

// Close records what the streams still hold back, flushes, syncs and
// closes the files, and returns the summary. Later calls return the same.
func (r *Recording) Close() (RecordingSummary, error) {
	r.mu.Lock()
	if !r.closed {
		r.close()
	}
	summary, err := r.summary, r.err
	r.mu.Unlock()
	r.inflight.Wait()
	return summary, err
}

// close does Close's work with mu held.
func (r *Recording) close() {
	r.closed = true
	r.stopFlush()
	r.pendingHeader()
	d := r.elapsed()
	for s := range numStreams {
		if rest := r.carry[s].take(); len(rest) > 0 && r.err == nil {
			r.fail(r.writeEvent(d, s.code(), rest, nil))
		}
	}
	for _, l := range []*lineFile{r.cast, r.stderr, r.raw} {
		if l != nil {
			if err := l.close(); err != nil {
				r.fail(fmt.Errorf("closing %s: %w", l.path, err))
			}
		}
	}
	r.summary = RecordingSummary{
		Path:     r.cast.path,
		SHA256:   r.cast.hexSum(),
		BytesIn:  r.bytes[stdin],
		BytesOut: r.bytes[stdout],
		BytesErr: r.bytes[stderr],
		Events:   r.events,
		Duration: d,
	}
	if r.stderr != nil {
		r.summary.StderrPath = r.stderr.path
	}
	if r.raw != nil {
		r.summary.RawPath = r.raw.path
	}
}
