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

	mu      sync.Mutex
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
// not changed.
func (s *FileSink) Write(_ context.Context, ev *auditv1.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	chained := *ev
	chained.Annotations = make(map[string]string, len(ev.Annotations)+2)
	maps.Copy(chained.Annotations, ev.Annotations)
	chained.Annotations[AnnotationAuditID] = FormatAuditID(s.cfg.Node, s.seq+1)
	chained.Annotations[AnnotationAuditPrev] = s.prev
	line, err := json.Marshal(&chained)
	if err != nil {
		return fmt.Errorf("audit file sink: encoding event: %w", err)
	}
	s.err = s.write(append(line, '\n'))
	if s.err != nil {
		return s.err
	}
	s.seq++
	s.prev = LineHash(line)
	for _, w := range s.waiters {
		select {
		case w <- struct{}{}:
		default:
		}
	}
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

func (s *FileSink) write(line []byte) error {
	if s.f == nil {
		return errors.New("audit file sink: closed")
	}
	tooOld := s.cfg.MaxAge > 0 && s.cfg.Now().Sub(s.opened) > s.cfg.MaxAge
	if s.size > 0 && (tooOld || s.cfg.MaxSizeBytes > 0 && s.size+int64(len(line)) > s.cfg.MaxSizeBytes) {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(line)
	if err != nil {
		if n > 0 {
			// Take the torn line back, so the next one starts clean.
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
