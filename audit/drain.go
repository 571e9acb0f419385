package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// BatchSink is a store outside the node that audit events are drained to
// from the local audit log: a webhook, object storage.
type BatchSink interface {
	// Name identifies the sink in logs, metrics and its cursor file:
	// [a-z0-9-] only.
	Name() string
	// Send stores the batch. It must be idempotent: after a crash a batch
	// is sent again, and may then overlap one sent before; receivers tell
	// events apart by their audit id.
	Send(ctx context.Context, b *Batch) error
}

// Batch is a run of one node's events, in chain order.
type Batch struct {
	Node string
	// First and Last are the sequence numbers of the first and last line.
	First, Last uint64
	// Lines are the events exactly as the node wrote them, without the
	// newline.
	Lines [][]byte
}

// DrainConfig configures a Drainer.
type DrainConfig struct {
	// Path is the file sink's path; its rotated files are read too.
	// Required.
	Path string
	// Node is the node's name, as the file sink writes it. Required.
	Node string
	// Sink receives the batches. Required.
	Sink BatchSink
	// StateDir holds the sink's cursor, <name>.cursor: the last sequence
	// number it has stored. Required.
	StateDir string
	// Notify, if set, wakes the drainer when events are written
	// (FileSink.Notify). Without it, or between signals, the log is
	// looked at every PollInterval.
	Notify <-chan struct{}
	// PollInterval: zero means one second.
	PollInterval time.Duration
	// MaxBatch and MaxBatchBytes bound a batch. Zero means 1000 events
	// and 4 MiB.
	MaxBatch      int
	MaxBatchBytes int
	// MinBackoff and MaxBackoff bound the wait between failed sends,
	// which doubles from the one to the other. Zero means 200ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// MaxBacklog, if positive, is how many bytes of undelivered events
	// the drainer keeps: past it, DropOldest decides.
	MaxBacklog int64
	// DropOldest drops the oldest undelivered events past MaxBacklog,
	// and reports them to OnDrop. False keeps them (and Backlog tells the
	// gateway to refuse requests: fail closed).
	DropOldest bool
	// OnDrop is told about dropped events. Nil ignores them.
	OnDrop func(sink string, first, last uint64, n int)
	// Log receives delivery errors. Nil means slog.Default().
	Log *slog.Logger
}

// Drainer sends a node's audit events to one BatchSink, in order, each
// batch until it is stored, and remembers how far it got across
// restarts.
type Drainer struct {
	cfg DrainConfig
	r   logReader

	mu        sync.Mutex
	cursor    uint64 // the last sequence number stored
	backlog   int64  // bytes of events not yet stored
	inflight  int64  // bytes of the batch being sent
	lastErr   error
	delivered int64 // events stored since start
}

// NewDrainer reads the sink's cursor and finds its place in the log.
func NewDrainer(cfg DrainConfig) (*Drainer, error) {
	switch {
	case cfg.Path == "" || cfg.Node == "" || cfg.Sink == nil || cfg.StateDir == "":
		return nil, errors.New("audit drainer: path, node, sink and state dir are required")
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = 4 << 20
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Log = cfg.Log.With("sink", cfg.Sink.Name())
	d := &Drainer{cfg: cfg, r: logReader{path: cfg.Path}}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("audit drainer %s: %w", cfg.Sink.Name(), err)
	}
	b, err := os.ReadFile(d.cursorPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("audit drainer %s: reading cursor: %w", cfg.Sink.Name(), err)
	default:
		if d.cursor, err = strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err != nil {
			return nil, fmt.Errorf("audit drainer %s: cursor %s: %w", cfg.Sink.Name(), d.cursorPath(), err)
		}
	}
	if err := d.updateBacklog(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Drainer) cursorPath() string {
	return filepath.Join(d.cfg.StateDir, d.cfg.Sink.Name()+".cursor")
}

// Run drains until ctx ends.
func (d *Drainer) Run(ctx context.Context) error {
	defer d.r.close()
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	for {
		b, err := d.read()
		if err != nil {
			d.fail(err)
		}
		if b != nil {
			if err := d.send(ctx, b); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.cfg.Notify:
		case <-tick.C:
		}
	}
}

// read collects the next batch of events past the cursor, nil if there is
// none yet.
func (d *Drainer) read() (*Batch, error) {
	b := &Batch{Node: d.cfg.Node}
	size := 0
	for len(b.Lines) < d.cfg.MaxBatch && size < d.cfg.MaxBatchBytes {
		l, err := d.r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if l.seq <= d.cursor {
			continue // stored before, or a line from before chaining
		}
		if len(b.Lines) == 0 {
			b.First = l.seq
		}
		b.Last = l.seq
		b.Lines = append(b.Lines, bytes.Clone(l.line))
		size += len(l.line)
	}
	d.mu.Lock()
	d.inflight = int64(size)
	d.mu.Unlock()
	if err := d.updateBacklog(); err != nil {
		return nil, err
	}
	if len(b.Lines) == 0 {
		return nil, nil
	}
	return b, nil
}

// send stores b, retrying with backoff. Past MaxBacklog with DropOldest,
// it gives the batch up as dropped.
func (d *Drainer) send(ctx context.Context, b *Batch) error {
	wait := d.cfg.MinBackoff
	for {
		err := d.cfg.Sink.Send(ctx, b)
		if err == nil {
			d.advance(b.Last, len(b.Lines))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.fail(fmt.Errorf("sending events %d-%d: %w", b.First, b.Last, err))
		var ra *RetryAfterError
		if errors.As(err, &ra) && ra.After > wait {
			wait = min(ra.After, d.cfg.MaxBackoff)
		}
		if d.cfg.DropOldest && d.over() {
			d.cfg.Log.Warn("audit sink is behind its backlog limit: dropping its oldest events", "first", b.First, "last", b.Last, "events", len(b.Lines))
			if d.cfg.OnDrop != nil {
				d.cfg.OnDrop(d.cfg.Sink.Name(), b.First, b.Last, len(b.Lines))
			}
			d.advance(b.Last, 0)
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, d.cfg.MaxBackoff)
	}
}

// advance stores the new cursor.
func (d *Drainer) advance(seq uint64, n int) {
	tmp := d.cursorPath() + ".tmp"
	err := writeSynced(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"))
	if err == nil {
		err = os.Rename(tmp, d.cursorPath())
	}
	d.mu.Lock()
	d.cursor = seq
	d.backlog -= d.inflight
	d.inflight = 0
	d.delivered += int64(n)
	d.lastErr = nil
	d.mu.Unlock()
	if err != nil {
		// The events are stored; after a restart they are sent again,
		// which the sink takes (Send is idempotent).
		d.fail(fmt.Errorf("saving cursor: %w", err))
	}
}

func (d *Drainer) fail(err error) {
	d.cfg.Log.Warn("audit sink", "err", err)
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
}

func (d *Drainer) updateBacklog() error {
	n, err := d.r.rest()
	if err != nil {
		return fmt.Errorf("audit drainer %s: %w", d.cfg.Sink.Name(), err)
	}
	d.mu.Lock()
	d.backlog = n + int64(len(d.r.pending)) + d.inflight
	d.mu.Unlock()
	return nil
}

func (d *Drainer) over() bool {
	_ = d.updateBacklog()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.MaxBacklog > 0 && d.backlog > d.cfg.MaxBacklog
}

// DrainStatus is a drainer's progress.
type DrainStatus struct {
	Sink      string
	Cursor    uint64 // the last sequence number stored
	Backlog   int64  // bytes of events not stored yet, read or not
	Delivered int64  // events stored since start
	Err       error  // the last failure, nil after a success
}

// Status reports the drainer's progress.
func (d *Drainer) Status() DrainStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return DrainStatus{Sink: d.cfg.Sink.Name(), Cursor: d.cursor, Backlog: d.backlog, Delivered: d.delivered, Err: d.lastErr}
}

// RetryAfterError is a sink's failure that says when to try again.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// writeSynced writes b to path and syncs it.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
