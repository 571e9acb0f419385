package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// FileConfig configures a FileSink.
type FileConfig struct {
	// Path is the JSON-lines file events are appended to. Required.
	Path string
	// MaxSizeBytes rotates the file once it grows past this size: it is
	// renamed to Path.<UTC timestamp> and a new one is started. Zero means
	// never rotate.
	MaxSizeBytes int64
	// MaxAge rotates the file once it has been written to for this long
	// (counted from when the sink opened it). Zero means never by age.
	MaxAge time.Duration
	// Fsync syncs the file after every event, before Write returns. False
	// leaves flushing to the operating system, or to FsyncInterval. Either
	// way an event is in the file (the page cache) when Write returns, so
	// it survives the process being killed; Fsync also covers the machine
	// losing power.
	Fsync bool
	// FsyncInterval, when set and Fsync is not, syncs the file this often
	// while events come in: a power loss loses at most this much.
	FsyncInterval time.Duration
	// Node names this node in the event chain (see AnnotationAuditID).
	// Empty means "kubegate".
	Node string
	// Now is the clock used to name rotated files. Nil means time.Now.
	Now func() time.Time
}

// FileSink appends events as JSON lines (one audit.k8s.io/v1 Event a line)
// to a local file, each chained to the one before (see chain.go). It is
// safe for concurrent use.
type FileSink struct {
	cfg FileConfig

	// qmu guards the queue of callers waiting for the writer (see Write);
	// it is never held while encoding or writing.
	qmu     sync.Mutex
	leading bool      // a caller is writing batches
	queue   []*waiter // events that arrived while it was

	mu      sync.Mutex
	buf     []byte    // a batch's lines, reused (under mu)
	keys    []string  // scratch for appendEventJSON (under mu)
	ends    []int     // where each line of buf ends, with its newline
	hashes  []string  // each line's LineHash
	encoded []*waiter // the batch's waiters whose events have a line
	f       *os.File
	size    int64
	err     error     // the last write error, cleared by a later success
	opened  time.Time // when f was opened, for MaxAge
	seq     uint64    // the last event's sequence number
	prev    string    // the last event's LineHash
	dirty   bool      // written since the last sync
	syncing bool      // a timed sync is scheduled
	waiters []chan struct{}
}

var _ Sink = (*FileSink)(nil)

// NewFileSink opens (or creates) cfg.Path for appending.
func NewFileSink(cfg FileConfig) (*FileSink, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit file sink: path is required")
	}
	if cfg.MaxSizeBytes < 0 {
		return nil, errors.New("audit file sink: maxSizeBytes must not be negative")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Node == "" {
		cfg.Node = "kubegate"
	}
	s := &FileSink{cfg: cfg}
	if err := s.open(); err != nil {
		return nil, err
	}
	if err := s.recoverChain(); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

func (s *FileSink) open() error {
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o750); err != nil {
		return fmt.Errorf("audit file sink: creating directory: %w", err)
	}
	f, err := os.OpenFile(s.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("audit file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit file sink: %w", err)
	}
	s.f, s.size, s.opened = f, st.Size(), s.cfg.Now()
	return nil
}

// Write appends ev as one line, chained to the event before. ev itself is
// not changed. Write returns when the line is written (and synced, with
// Fsync), or with the error that kept it out of the file.
//
// Events that arrive while another caller is writing are grouped: the next
// caller to write takes every event queued meanwhile and writes their lines
// with one system call, in the order they arrived.
func (s *FileSink) Write(_ context.Context, ev *auditv1.Event) error {
	s.qmu.Lock()
	if !s.leading {
		s.leading = true
		s.qmu.Unlock()
		me := getWaiter(ev)
		err := s.lead([]*waiter{me}, me)
		putWaiter(me)
		return err
	}
	w := getWaiter(ev)
	s.queue = append(s.queue, w)
	s.qmu.Unlock()
	r := <-w.res
	err := r.err
	if r.lead != nil {
		err = s.lead(r.lead, w)
	}
	putWaiter(w)
	return err
}

// waiter is a queued event and where its result goes: an error (nil when
// written), or the batch it is to write itself.
type waiter struct {
	ev  *auditv1.Event
	err error
	res chan waiterResult
}

type waiterResult struct {
	err  error
	lead []*waiter
}

var waiters = sync.Pool{New: func() any { return &waiter{res: make(chan waiterResult, 1)} }}

func getWaiter(ev *auditv1.Event) *waiter {
	w := waiters.Get().(*waiter)
	w.ev = ev
	return w
}

func putWaiter(w *waiter) {
	w.ev, w.err = nil, nil
	waiters.Put(w)
}

// lead writes batch (which holds me), tells the others their result, and
// hands the events queued meanwhile to the first of them, who writes them
// next: no caller writes more than one batch.
func (s *FileSink) lead(batch []*waiter, me *waiter) error {
	s.mu.Lock()
	s.writeBatch(batch)
	s.mu.Unlock()
	for _, w := range batch {
		if w != me {
			w.res <- waiterResult{err: w.err}
		}
	}
	s.qmu.Lock()
	next := s.queue
	s.queue = nil
	if len(next) == 0 {
		s.leading = false
	}
	s.qmu.Unlock()
	if len(next) > 0 {
		next[0].res <- waiterResult{lead: next}
	}
	return me.err
}

// writeBatch encodes the batch's events, each chained to the one before,
// and appends their lines, setting each waiter's err. Call with mu held.
func (s *FileSink) writeBatch(batch []*waiter) {
	s.buf = s.buf[:0]
	s.ends, s.hashes = s.ends[:0], s.hashes[:0]
	seq, prev := s.seq, s.prev
	ok := s.encoded[:0]
	for _, w := range batch {
		start := len(s.buf)
		if err := s.encode(w.ev, seq+1, prev); err != nil {
			s.buf = s.buf[:start]
			w.err = fmt.Errorf("audit file sink: encoding event: %w", err)
			continue
		}
		seq++
		prev = LineHash(s.buf[start:])
		s.ends = append(s.ends, len(s.buf))
		s.hashes = append(s.hashes, prev)
		ok = append(ok, w)
	}
	if len(ok) > 0 {
		n, err := s.writeLines(s.buf, s.ends)
		s.err = err
		for i, w := range ok {
			if i >= n {
				w.err = err
			}
		}
		if n > 0 {
			s.seq += uint64(n)
			s.prev = s.hashes[n-1]
			for _, w := range s.waiters {
				select {
				case w <- struct{}{}:
				default:
				}
			}
		}
	}
	clear(ok)
	s.encoded = ok
	if cap(s.buf) > maxBatchBuffer {
		s.buf = nil
	}
}

// maxBatchBuffer bounds the batch buffer kept between batches.
const maxBatchBuffer = 1 << 20

// encode appends ev's line, with its place in the chain, to buf: the
// bytes json.Marshal gives for a copy of ev carrying the chain annotations,
// and a newline. appendEventJSON writes them for the events it knows;
// encoding/json the others.
func (s *FileSink) encode(ev *auditv1.Event, seq uint64, prev string) error {
	id := FormatAuditID(s.cfg.Node, seq)
	var ok bool
	if s.buf, s.keys, ok = appendEventJSON(s.buf, ev, s.keys, id, prev); ok {
		s.buf = append(s.buf, '\n')
		return nil
	}
	chained := *ev
	chained.Annotations = make(map[string]string, len(ev.Annotations)+2)
	maps.Copy(chained.Annotations, ev.Annotations)
	chained.Annotations[AnnotationAuditID] = id
	chained.Annotations[AnnotationAuditPrev] = prev
	line, err := json.Marshal(&chained)
	if err != nil {
		return err
	}
	s.buf = append(append(s.buf, line...), '\n')
	return nil
}

// Head returns the last event's sequence number and chain hash.
func (s *FileSink) Head() (seq uint64, hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq, s.prev
}

// Notify returns a channel that receives (without blocking the sink, so
// several events may make one signal) after events are written.
func (s *FileSink) Notify() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	return ch
}

// writeLines appends lines (ends[i] is where line i ends) with as few
// writes as rotation allows, and returns how many lines are in the file.
func (s *FileSink) writeLines(lines []byte, ends []int) (int, error) {
	done, start := 0, 0
	for done < len(ends) {
		if s.f == nil {
			return done, errors.New("audit file sink: closed")
		}
		// Rotate before a line that would go past the limits, as if the
		// lines were written one by one; write the lines up to the next
		// such line in one go.
		if s.mustRotate(ends[done] - start) {
			if err := s.rotate(); err != nil {
				return done, err
			}
		}
		end := done + 1
		for end < len(ends) && !s.mustRotateAt(s.size+int64(ends[end-1]-start), ends[end]-ends[end-1]) {
			end++
		}
		if err := s.write(lines[start:ends[end-1]]); err != nil {
			return done, err
		}
		done, start = end, ends[end-1]
	}
	return done, nil
}

// mustRotate says whether the file must be rotated before a line of n
// bytes is appended.
func (s *FileSink) mustRotate(n int) bool { return s.mustRotateAt(s.size, n) }

// mustRotateAt is mustRotate for a file of size bytes.
func (s *FileSink) mustRotateAt(size int64, n int) bool {
	tooOld := s.cfg.MaxAge > 0 && s.cfg.Now().Sub(s.opened) > s.cfg.MaxAge
	return size > 0 && (tooOld || s.cfg.MaxSizeBytes > 0 && size+int64(n) > s.cfg.MaxSizeBytes)
}

// write appends whole lines with one write and syncs them as configured.
// A torn write is taken back, so the next line starts clean.
func (s *FileSink) write(lines []byte) error {
	n, err := s.f.Write(lines)
	if err != nil {
		if n > 0 {
			if terr := s.f.Truncate(s.size); terr != nil {
				s.size += int64(n)
			}
		}
		return fmt.Errorf("audit file sink: writing %s: %w", s.cfg.Path, err)
	}
	s.size += int64(n)
	switch {
	case s.cfg.Fsync:
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("audit file sink: syncing %s: %w", s.cfg.Path, err)
		}
	case s.cfg.FsyncInterval > 0:
		s.dirty = true
		if !s.syncing {
			s.syncing = true
			time.AfterFunc(s.cfg.FsyncInterval, s.timedSync)
		}
	}
	return nil
}

// timedSync syncs what was written since the last sync (FsyncInterval).
func (s *FileSink) timedSync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncing = false
	if s.f == nil || !s.dirty {
		return
	}
	s.dirty = false
	if err := s.f.Sync(); err != nil {
		s.err = fmt.Errorf("audit file sink: syncing %s: %w", s.cfg.Path, err)
	}
}

func (s *FileSink) rotate() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit file sink: syncing before rotation: %w", err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audit file sink: closing for rotation: %w", err)
	}
	s.f = nil
	rotated := s.cfg.Path + "." + s.cfg.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(s.cfg.Path, rotated); err != nil {
		return fmt.Errorf("audit file sink: rotating: %w", err)
	}
	return s.open()
}

// Healthy returns the error of the last write, or nil if it succeeded.
func (s *FileSink) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := errors.Join(s.f.Sync(), s.f.Close())
	s.f = nil
	return err
}
