package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Line is one stored event line.
type Line struct {
	// File is the file, or the object's key, the line was read from.
	File string
	// N is the line's number in File, from 1.
	N int
	// Bytes is the line exactly as stored, without its line ending.
	Bytes []byte
	// Incomplete is true for a last line without a newline: a write in
	// progress, or one a crash cut short.
	Incomplete bool
}

// Where is "file:line" or "key:line".
func (l Line) Where() string { return l.File + ":" + strconv.Itoa(l.N) }

// Source is where stored audit events are read from: a node's local files
// (FileSource) or an object store (StoreSource).
type Source interface {
	// Lines yields the stored event lines in order: file by file (object
	// by object), each from its first line to its last. It stops after
	// yielding an error.
	Lines(ctx context.Context) iter.Seq2[Line, error]
	// OpenRecording opens the recording an event names in its
	// AnnotationRecording. One that does not exist is an error matching
	// ErrRecordingNotFound.
	RecordingOpener
}

var (
	_ Source = (*FileSource)(nil)
	_ Source = (*StoreSource)(nil)
)

// FileSource reads the files of a FileSink: the audit file and its
// rotated siblings, <file>.<UTC timestamp>, oldest first.
type FileSource struct {
	files      []string
	recordings string
}

// NewFileSource reads the audit files at path: a directory holding a
// FileSink's audit.log and its rotated siblings, or the path of an audit
// file, read after its rotated siblings. A rotated file's own path reads
// that file alone.
//
// Recordings are opened at the path an event names, unless recordingsDir
// is set: then at recordingsDir/<date>/<file>, the last two elements of
// that path (a copy of a node's recordings directory).
func NewFileSource(path, recordingsDir string) (*FileSource, error) {
	st, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	if err == nil && st.IsDir() {
		path = filepath.Join(path, "audit.log")
	}
	files, err := AuditFiles(path)
	if err != nil {
		return nil, fmt.Errorf("audit events %s: %w", path, err)
	}
	if len(files) == 1 {
		if _, err := os.Stat(files[0]); err != nil {
			return nil, fmt.Errorf("audit events: %w", err)
		}
	}
	return &FileSource{files: files, recordings: recordingsDir}, nil
}

// Files returns the files the source reads, in order.
func (s *FileSource) Files() []string { return append([]string(nil), s.files...) }

// Lines yields the lines of every file. The files are all opened first,
// so a rotation while they are read loses none.
func (s *FileSource) Lines(ctx context.Context) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		open := make([]*os.File, 0, len(s.files))
		defer func() {
			for _, f := range open {
				f.Close()
			}
		}()
		for _, name := range s.files {
			f, err := os.Open(name)
			if err != nil {
				yield(Line{}, fmt.Errorf("audit events: %w", err))
				return
			}
			open = append(open, f)
		}
		for i, f := range open {
			if !readLines(ctx, s.files[i], f, yield) {
				return
			}
		}
	}
}

// OpenRecording opens the .cast file at path, or, with a recordings
// directory, the file of the same day and name there.
func (s *FileSource) OpenRecording(_ context.Context, path string) (io.ReadCloser, error) {
	if s.recordings != "" {
		day, name, err := recordingDayName(path)
		if err != nil {
			return nil, err
		}
		path = filepath.Join(s.recordings, day, name)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrRecordingNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	return f, nil
}

// StoreSource reads the event batches and recordings an ObjectStore holds
// (see EventsPrefix).
type StoreSource struct {
	store ObjectStore
}

// NewStoreSource reads the events and recordings in store.
func NewStoreSource(store ObjectStore) *StoreSource { return &StoreSource{store: store} }

// Lines yields the lines of every object under EventsPrefix, in key order.
func (s *StoreSource) Lines(ctx context.Context) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		for key, err := range s.store.List(ctx, EventsPrefix) {
			if err != nil {
				yield(Line{}, fmt.Errorf("listing audit events: %w", err))
				return
			}
			if !s.object(ctx, key, yield) {
				return
			}
		}
	}
}

func (s *StoreSource) object(ctx context.Context, key string, yield func(Line, error) bool) bool {
	rc, err := s.store.Get(ctx, key)
	if err != nil {
		yield(Line{}, fmt.Errorf("reading audit events %s: %w", key, err))
		return false
	}
	defer rc.Close()
	return readLines(ctx, key, rc, yield)
}

// OpenRecording opens recordings/<date>/<file>, from the last two
// elements of the path the event names.
func (s *StoreSource) OpenRecording(ctx context.Context, path string) (io.ReadCloser, error) {
	day, name, err := recordingDayName(path)
	if err != nil {
		return nil, err
	}
	key := RecordingsPrefix + day + "/" + name
	rc, err := s.store.Get(ctx, key)
	if errors.Is(err, ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s: %w", ErrRecordingNotFound, key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("recording %s: %w", key, err)
	}
	return rc, nil
}

// recordingDayName splits a recording's path, .../<YYYY-MM-DD>/<file>,
// into its last two elements, as the S3 sink names it in a store.
func recordingDayName(path string) (day, name string, err error) {
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '\\' })
	if len(parts) < 2 || slices.Contains(parts[len(parts)-2:], "..") {
		return "", "", fmt.Errorf("%w: %q is not .../<YYYY-MM-DD>/<file>", ErrRecordingNotFound, path)
	}
	return parts[len(parts)-2], parts[len(parts)-1], nil
}

// readLines yields the lines of r, named name, until yield returns false
// or ctx is done. It reports whether to go on.
func readLines(ctx context.Context, name string, r io.Reader, yield func(Line, error) bool) bool {
	lr := newLineReader(r)
	for {
		if err := ctx.Err(); err != nil {
			yield(Line{}, err)
			return false
		}
		b, complete, err := lr.next()
		if err == io.EOF {
			return true
		}
		if err != nil {
			yield(Line{}, fmt.Errorf("reading audit events %s: %w", name, err))
			return false
		}
		if !yield(Line{File: name, N: lr.n, Bytes: b, Incomplete: !complete}, nil) {
			return false
		}
	}
}

// Sources reads several sources as one, in order: a node's local log and
// the object store it streams to, say. An event both hold is read twice;
// VerifyChain and Search keep identical copies once, and VerifyChain
// reports copies that differ. A recording is opened from the first source
// that has it.
type Sources []Source

var _ Source = Sources(nil)

// Lines implements Source.
func (s Sources) Lines(ctx context.Context) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		for _, src := range s {
			for l, err := range src.Lines(ctx) {
				if !yield(l, err) || err != nil {
					return
				}
			}
		}
	}
}

// OpenRecording implements Source.
func (s Sources) OpenRecording(ctx context.Context, path string) (io.ReadCloser, error) {
	err := fmt.Errorf("%s: %w", path, ErrRecordingNotFound)
	for _, src := range s {
		rc, oerr := src.OpenRecording(ctx, path)
		if oerr == nil {
			return rc, nil
		}
		if !errors.Is(oerr, ErrRecordingNotFound) {
			return nil, oerr
		}
		err = oerr
	}
	return nil, err
}
