package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// ErrBacklogFull is the gateway's answer to new requests while a sink is
// too far behind and the spool fails closed.
var ErrBacklogFull = errors.New("audit events cannot be delivered")

// SpoolConfig configures a Spool.
type SpoolConfig struct {
	// File is the local audit log every event is written to first. Its
	// Node is the chain's node name.
	File FileConfig
	// StateDir holds the sinks' cursors. Required with Sinks.
	StateDir string
	// Sinks are the stores outside the node the log is drained to.
	Sinks []BatchSink
	// MaxBacklog bounds, per sink, the bytes of events not yet delivered.
	// Zero means no bound.
	MaxBacklog int64
	// DropOldest, past MaxBacklog, drops a sink's oldest undelivered
	// events (with a warning, an "audit.spool.dropped" audit event and
	// OnDrop), and on a full disk the oldest local file. False fails
	// closed: Healthy reports ErrBacklogFull (or the disk error), and the
	// gateway refuses new requests until the sink catches up.
	DropOldest bool
	// OnDrop is told about dropped events, e.g. to count them. Nil: none.
	OnDrop func(sink string, n int)
	// Retention removes rotated local files this old (by their last
	// write) once every sink has stored their events. Zero keeps them.
	Retention time.Duration
	// Drain tunes the drainers; its Path, Node, Sink, StateDir, Notify,
	// MaxBacklog, DropOldest and OnDrop are set by the spool.
	Drain DrainConfig
	// Log receives the drainers' errors. Nil means slog.Default().
	Log *slog.Logger
}

// Spool is kubegate's audit path: every event is written (and, by policy,
// synced) to the local audit log before the request completes, and
// drainers deliver the log to each sink in order, retrying through
// outages, exactly once per event id as far as the receiver can tell.
type Spool struct {
	cfg      SpoolConfig
	file     *FileSink
	drainers []*Drainer
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

var _ Sink = (*Spool)(nil)

// NewSpool opens the local log and the sinks' cursors. Run starts the
// drainers.
func NewSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Sinks) > 0 && cfg.StateDir == "" {
		return nil, errors.New("audit spool: a state dir is required with sinks")
	}
	file, err := NewFileSink(cfg.File)
	if err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, file: file}
	seen := map[string]bool{}
	for _, sink := range cfg.Sinks {
		if seen[sink.Name()] {
			file.Close()
			return nil, fmt.Errorf("audit spool: two sinks are named %q", sink.Name())
		}
		seen[sink.Name()] = true
		dc := cfg.Drain
		dc.Path, dc.Node, dc.Sink, dc.StateDir = file.cfg.Path, file.cfg.Node, sink, cfg.StateDir
		dc.Notify, dc.MaxBacklog, dc.DropOldest, dc.OnDrop = file.Notify(), cfg.MaxBacklog, cfg.DropOldest, s.dropped
		if dc.Log == nil {
			dc.Log = cfg.Log
		}
		d, err := NewDrainer(dc)
		if err != nil {
			file.Close()
			return nil, err
		}
		s.drainers = append(s.drainers, d)
	}
	return s, nil
}

// Run delivers to the sinks until ctx ends or Close.
func (s *Spool) Run(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	for _, d := range s.drainers {
		s.wg.Go(func() { _ = d.Run(ctx) })
	}
	// Backlogs grow while a drainer waits on its sink: keep them fresh
	// for Healthy.
	s.wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, d := range s.drainers {
					_ = d.updateBacklog()
				}
			}
		}
	})
	if s.cfg.Retention > 0 {
		s.wg.Go(func() {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				if err := s.Prune(time.Now()); err != nil {
					s.cfg.Log.Warn("pruning the audit log", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
}

// Prune removes the rotated local files older than Retention (by their
// last write, at now) whose events every sink has stored.
func (s *Spool) Prune(now time.Time) error {
	files, err := AuditFiles(s.file.cfg.Path)
	if err != nil {
		return err
	}
	stored := ^uint64(0) // what every sink has
	for _, d := range s.drainers {
		stored = min(stored, d.Status().Cursor)
	}
	for _, f := range files {
		if f == s.file.cfg.Path {
			break // the active file
		}
		st, err := os.Stat(f)
		if err != nil || now.Sub(st.ModTime()) < s.cfg.Retention {
			break // files are in order: the rest are newer
		}
		last, err := lastLine(f, false)
		if err != nil {
			return err
		}
		if lineSeq(last) > stored {
			break
		}
		if err := os.Remove(f); err != nil {
			return err
		}
		s.cfg.Log.Info("removed an old audit file every sink has stored", "file", filepath.Base(f))
	}
	return nil
}

// Write appends ev to the local log. On a full disk it fails (and Healthy
// with it, so the gateway refuses new requests) unless DropOldest is set:
// then the oldest rotated file goes, undelivered or not, loudly, and the
// write is tried again.
func (s *Spool) Write(ctx context.Context, ev *auditv1.Event) error {
	err := s.file.Write(ctx, ev)
	if !errors.Is(err, syscall.ENOSPC) || !s.cfg.DropOldest {
		return err
	}
	files, lerr := AuditFiles(s.file.cfg.Path)
	if lerr != nil || len(files) < 2 {
		return err // nothing to drop but the active file
	}
	first, _ := firstLine(files[0])
	last, _ := lastLine(files[0], false)
	if rerr := os.Remove(files[0]); rerr != nil {
		return err
	}
	s.cfg.Log.Error("the audit log's disk is full: dropped its oldest file", "file", filepath.Base(files[0]))
	from, to := lineSeq(first), lineSeq(last)
	n := 0
	if from > 0 && to >= from {
		n = int(to - from + 1)
	}
	s.dropped("local", from, to, n)
	return s.file.Write(ctx, ev)
}

// Healthy reports whether new requests may go ahead: the local log takes
// events and, when failing closed, every sink is within its backlog.
func (s *Spool) Healthy() error {
	if err := s.file.Healthy(); err != nil {
		return err
	}
	if s.cfg.MaxBacklog <= 0 || s.cfg.DropOldest {
		return nil
	}
	for _, d := range s.drainers {
		if st := d.Status(); st.Backlog > s.cfg.MaxBacklog {
			cause := "it is behind"
			if st.Err != nil {
				cause = st.Err.Error()
			}
			return fmt.Errorf("%w: sink %s has %d bytes of events waiting, over the %d-byte limit (%s)",
				ErrBacklogFull, st.Sink, st.Backlog, s.cfg.MaxBacklog, cause)
		}
	}
	return nil
}

// Status reports each sink's progress.
func (s *Spool) Status() []DrainStatus {
	out := make([]DrainStatus, len(s.drainers))
	for i, d := range s.drainers {
		out[i] = d.Status()
	}
	return out
}

// File is the local audit log.
func (s *Spool) File() *FileSink { return s.file }

// Close stops the drainers and closes the log.
func (s *Spool) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return s.file.Close()
}

// dropped records, in the log itself, that a sink lost events.
func (s *Spool) dropped(sink string, first, last uint64, n int) {
	if s.cfg.OnDrop != nil {
		defer s.cfg.OnDrop(sink, n)
	}
	now := metav1.NewMicroTime(time.Now())
	ev := &auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:                    auditv1.LevelMetadata,
		AuditID:                  types.UID(rand.Text()),
		Stage:                    auditv1.StageResponseComplete,
		RequestReceivedTimestamp: now,
		StageTimestamp:           now,
		Annotations: map[string]string{
			AnnotationEvent:        "audit.spool.dropped",
			AnnotationDroppedSink:  sink,
			AnnotationDroppedFirst: strconv.FormatUint(first, 10),
			AnnotationDroppedLast:  strconv.FormatUint(last, 10),
			AnnotationDroppedCount: strconv.Itoa(n),
		},
	}
	if err := s.file.Write(context.Background(), ev); err != nil {
		s.cfg.Log.Error("recording dropped audit events", "sink", sink, "err", err)
	}
}

// Annotations of an "audit.spool.dropped" event.
const (
	AnnotationDroppedSink  = "kubegate.dev/dropped-sink"
	AnnotationDroppedFirst = "kubegate.dev/dropped-first-seq"
	AnnotationDroppedLast  = "kubegate.dev/dropped-last-seq"
	AnnotationDroppedCount = "kubegate.dev/dropped-events"
)
