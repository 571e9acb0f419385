package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// Fsync syncs the file after every event. False leaves flushing to the
	// operating system.
	Fsync bool
	// Now is the clock used to name rotated files. Nil means time.Now.
	Now func() time.Time
}

// FileSink appends events as JSON lines (one audit.k8s.io/v1 Event a line)
// to a local file. It is safe for concurrent use.
type FileSink struct {
	cfg FileConfig

	mu   sync.Mutex
	f    *os.File
	size int64
	err  error // the last write error, cleared by a later success
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
	s := &FileSink{cfg: cfg}
	if err := s.open(); err != nil {
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
	s.f, s.size = f, st.Size()
	return nil
}

// Write appends ev as one line.
func (s *FileSink) Write(_ context.Context, ev *auditv1.Event) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("audit file sink: encoding event: %w", err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = s.write(line)
	return s.err
}

func (s *FileSink) write(line []byte) error {
	if s.f == nil {
		return errors.New("audit file sink: closed")
	}
	if s.cfg.MaxSizeBytes > 0 && s.size > 0 && s.size+int64(len(line)) > s.cfg.MaxSizeBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(line)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("audit file sink: writing %s: %w", s.cfg.Path, err)
	}
	if s.cfg.Fsync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("audit file sink: syncing %s: %w", s.cfg.Path, err)
		}
	}
	return nil
}

func (s *FileSink) rotate() error {
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
	err := s.f.Close()
	s.f = nil
	return err
}
