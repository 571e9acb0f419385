package audit

import (
	"context"
	"errors"
	"io"
	"iter"
)

// ObjectStore is the part of an S3-compatible object store the audit
// sinks and readers use. Keys are slash-separated; Put of an existing key
// replaces it, so a retried upload is harmless.
type ObjectStore interface {
	// Put stores size bytes from r under key (multipart for large ones).
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the object under key; ErrObjectNotFound if there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List yields the keys under prefix in lexical order.
	List(ctx context.Context, prefix string) iter.Seq2[string, error]
}

// ErrObjectNotFound is an ObjectStore Get of a key that does not exist.
var ErrObjectNotFound = errors.New("object not found")

// Object keys under a store's prefix:
//
//	events/<node>/<first seq, 20 digits>-<last seq, 20 digits>.jsonl
//	    a batch of event lines, exactly as the node wrote them
//	recordings/<YYYY-MM-DD>/<session>.cast (and .stderr.jsonl, .raw.jsonl)
//	    a session's recording, uploaded before the batch holding its
//	    session.end event
//
// Zero-padded sequence numbers make lexical order the chain's order. A
// batch retried after a crash may overlap one stored before; readers drop
// events whose audit id they have seen (the lines are identical).
const (
	EventsPrefix     = "events/"
	RecordingsPrefix = "recordings/"
)
