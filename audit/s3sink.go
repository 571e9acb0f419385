package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// S3Sink stores batches of events, and the recordings they refer to, in
// an ObjectStore under the keys store.go describes. Recordings go first,
// so that an event batch in the store never names a recording that is
// not there. Keys are derived from the batch and the recording, so a
// retried Send replaces what it stored before.
type S3Sink struct {
	name  string
	store ObjectStore
}

var _ BatchSink = (*S3Sink)(nil)

// NewS3Sink stores to store. An empty name means "s3".
func NewS3Sink(name string, store ObjectStore) *S3Sink {
	if name == "" {
		name = "s3"
	}
	return &S3Sink{name: name, store: store}
}

// Name implements BatchSink.
func (s *S3Sink) Name() string { return s.name }

// Send implements BatchSink.
func (s *S3Sink) Send(ctx context.Context, b *Batch) error {
	for _, line := range b.Lines {
		if err := s.uploadRecordings(ctx, line); err != nil {
			return err
		}
	}
	body := bytes.Join(b.Lines, []byte("\n"))
	body = append(body, '\n')
	key := EventBatchKey(b.Node, b.First, b.Last)
	if err := s.store.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("audit sink %s: storing %s: %w", s.name, key, err)
	}
	return nil
}

// RecordingKey is where an S3Sink stores the recording file at path: under
// its day folder and name.
func RecordingKey(path string) string {
	return RecordingsPrefix + filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)
}

// EventBatchKey is where an S3Sink stores a batch of node's events.
func EventBatchKey(node string, first, last uint64) string {
	return fmt.Sprintf("%s%s/%020d-%020d.jsonl", EventsPrefix, node, first, last)
}

var recordingAnnotation = []byte(`"` + AnnotationRecording + `"`)

// uploadRecordings stores the recording files an event names.
func (s *S3Sink) uploadRecordings(ctx context.Context, line []byte) error {
	if !bytes.Contains(line, recordingAnnotation) {
		return nil
	}
	var ev struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		return fmt.Errorf("audit sink %s: an event line is not JSON: %w", s.name, err)
	}
	paths := []string{ev.Annotations[AnnotationRecording], ev.Annotations[AnnotationRecordingStderr]}
	if cast := ev.Annotations[AnnotationRecording]; cast != "" {
		paths = append(paths, cast[:len(cast)-len(filepath.Ext(cast))]+".raw.jsonl")
	}
	for i, p := range paths {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if os.IsNotExist(err) && i == 2 {
			continue // no raw sidecar: every byte was UTF-8
		}
		if err != nil {
			return fmt.Errorf("audit sink %s: recording: %w", s.name, err)
		}
		st, err := f.Stat()
		if err == nil {
			err = s.store.Put(ctx, RecordingKey(p), f, st.Size())
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("audit sink %s: storing recording %s: %w", s.name, filepath.Base(p), err)
		}
	}
	return nil
}
