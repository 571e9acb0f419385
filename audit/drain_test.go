package audit

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memSink is a BatchSink that keeps what it stores and fails while told to.
type memSink struct {
	name string

	mu      sync.Mutex
	lines   [][]byte
	batches int
	fail    error // returned by Send while set
	tries   int
}

func (m *memSink) Name() string { return m.name }

func (m *memSink) Send(_ context.Context, b *Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tries++
	if m.fail != nil {
		return m.fail
	}
	m.batches++
	for _, l := range b.Lines {
		m.lines = append(m.lines, bytes.Clone(l))
	}
	return nil
}

func (m *memSink) setFail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

func (m *memSink) stored() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.lines)
}

func testSpool(t *testing.T, cfg SpoolConfig) (*Spool, string) {
	t.Helper()
	dir := t.TempDir()
	if cfg.File.Path == "" {
		cfg.File.Path = filepath.Join(dir, "audit.log")
	}
	cfg.File.Node = "n1"
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Drain.PollInterval = 10 * time.Millisecond
	cfg.Drain.MinBackoff = time.Millisecond
	cfg.Drain.MaxBackoff = 5 * time.Millisecond
	s, err := NewSpool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.Run(ctx)
	t.Cleanup(func() { cancel(); s.Close() })
	return s, cfg.File.Path
}

// TestSpoolDeliversEveryEventOnce: events written across rotations reach
// the sink in order, byte for byte as in the local log, once each.
func TestSpoolDeliversEveryEventOnce(t *testing.T) {
	sink := &memSink{name: "mem"}
	s, path := testSpool(t, SpoolConfig{File: FileConfig{MaxSizeBytes: 2000}, Sinks: []BatchSink{sink}})
	writeN(t, s.File(), 60, "a")
	waitFor(t, "every event delivered", func() bool { return s.Status()[0].Cursor == 60 })
	local := logLines(t, path)
	if files, _ := AuditFiles(path); len(files) < 3 {
		t.Errorf("%d files: the test wants rotations", len(files))
	}
	if !slices.EqualFunc(local, sink.stored(), bytes.Equal) {
		t.Error("the sink's lines differ from the local log's")
	}
	checkChain(t, sink.stored(), "n1", 1)
	if st := s.Status()[0]; st.Cursor != 60 || st.Delivered != 60 || st.Err != nil {
		t.Errorf("status %+v", st)
	}
}

// TestSpoolResumesFromCursor: a restarted spool sends only what its sink
// has not stored.
func TestSpoolResumesFromCursor(t *testing.T) {
	dir := t.TempDir()
	cfg := SpoolConfig{File: FileConfig{Path: filepath.Join(dir, "audit.log"), Node: "n1"}, StateDir: filepath.Join(dir, "state"),
		Drain: DrainConfig{PollInterval: 10 * time.Millisecond}}
	first := &memSink{name: "mem"}
	cfg.Sinks = []BatchSink{first}
	s, err := NewSpool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Run(context.Background())
	writeN(t, s.File(), 10, "a")
	waitFor(t, "the first ten delivered", func() bool { return len(first.stored()) == 10 })
	s.Close()

	second := &memSink{name: "mem"}
	cfg.Sinks = []BatchSink{second}
	s, err = NewSpool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Run(context.Background())
	writeN(t, s.File(), 5, "b")
	waitFor(t, "the next five delivered", func() bool { return len(second.stored()) == 5 })
	checkChain(t, second.stored(), "n1", 11)
}

// TestSpoolRetriesThroughAnOutage: while the sink fails nothing is lost;
// once it is back, everything arrives once, in order.
func TestSpoolRetriesThroughAnOutage(t *testing.T) {
	sink := &memSink{name: "mem", fail: errors.New("down")}
	s, _ := testSpool(t, SpoolConfig{Sinks: []BatchSink{sink}})
	writeN(t, s.File(), 20, "a")
	waitFor(t, "retries", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.tries > 3 })
	if st := s.Status()[0]; st.Err == nil || !strings.Contains(st.Err.Error(), "down") {
		t.Errorf("status during the outage: %+v", st)
	}
	sink.setFail(nil)
	writeN(t, s.File(), 5, "b")
	waitFor(t, "everything delivered", func() bool { return len(sink.stored()) == 25 })
	checkChain(t, sink.stored(), "n1", 1)
}

// TestSpoolFailsClosed: past the backlog limit, Healthy refuses (the
// gateway answers 503) naming the sink; when it catches up, it admits
// again.
func TestSpoolFailsClosed(t *testing.T) {
	sink := &memSink{name: "mem", fail: errors.New("connection refused")}
	s, _ := testSpool(t, SpoolConfig{Sinks: []BatchSink{sink}, MaxBacklog: 2000})
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy before any event: %v", err)
	}
	writeN(t, s.File(), 30, "a")
	waitFor(t, "the backlog limit and the sink's error to show", func() bool {
		err := s.Healthy()
		return err != nil && strings.Contains(err.Error(), "connection refused")
	})
	if err := s.Healthy(); !errors.Is(err, ErrBacklogFull) || !strings.Contains(err.Error(), "sink mem") {
		t.Errorf("Healthy = %v", err)
	}
	sink.setFail(nil)
	// Healthy admits again as soon as the backlog is under the limit,
	// before the rest is delivered.
	waitFor(t, "the sink to catch up", func() bool { return s.Healthy() == nil })
	waitFor(t, "all 30 events delivered", func() bool { return len(sink.stored()) == 30 })
	checkChain(t, sink.stored(), "n1", 1)
}

// TestSpoolDropsOldest: past the limit, a failing sink's oldest events are
// dropped, loudly: an audit event says which, and Healthy stays fine.
func TestSpoolDropsOldest(t *testing.T) {
	sink := &memSink{name: "mem", fail: errors.New("down")}
	var mu sync.Mutex
	dropped := 0
	s, path := testSpool(t, SpoolConfig{Sinks: []BatchSink{sink}, MaxBacklog: 2000, DropOldest: true,
		OnDrop: func(_ string, n int) { mu.Lock(); dropped += n; mu.Unlock() }})
	writeN(t, s.File(), 30, "a")
	waitFor(t, "events to be dropped", func() bool { mu.Lock(); defer mu.Unlock(); return dropped > 0 })
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy with drop-oldest: %v", err)
	}
	var found bool
	for _, l := range logLines(t, path) {
		if bytes.Contains(l, []byte(`"kubegate.dev/event":"audit.spool.dropped"`)) && bytes.Contains(l, []byte(`"kubegate.dev/dropped-sink":"mem"`)) {
			found = true
		}
	}
	if !found {
		t.Error("no audit.spool.dropped event in the log")
	}
	sink.setFail(nil)
	writeN(t, s.File(), 3, "b")
	waitFor(t, "new events delivered", func() bool {
		return slices.ContainsFunc(sink.stored(), func(l []byte) bool { return bytes.Contains(l, []byte(`"b-2"`)) })
	})
}
