package audit

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

// castOnDisk parses what the .cast holds on disk right now, as a reader
// would after a crash.
func castOnDisk(t *testing.T, r *Recording) (*Cast, error) {
	t.Helper()
	b, err := os.ReadFile(r.cast.path)
	if err != nil {
		t.Fatal(err)
	}
	return ParseCast(bytes.NewReader(b))
}

func TestRecordingTimedFlush(t *testing.T) {
	r, ft := record(t, RecordingConfig{FlushInterval: 250 * time.Millisecond})
	defer r.Close()
	if ft.created != 0 {
		t.Fatal("a flush is scheduled before any event")
	}
	r.Output([]byte("one"))
	r.Input([]byte("two"))
	r.ErrorOutput([]byte("three"))
	if !ft.armed() || ft.d != 250*time.Millisecond {
		t.Fatalf("after events: flush scheduled %v in %v, want in 250ms", ft.armed(), ft.d)
	}
	if c, err := castOnDisk(t, r); err != nil || len(c.Events) != 0 {
		t.Fatalf("before the flush the file holds %d events (%v), want none", len(c.Events), err)
	}
	ft.fire()
	c, err := castOnDisk(t, r)
	if err != nil || len(c.Events) != 3 {
		t.Fatalf("after the flush the file holds %d events (%v), want 3", len(c.Events), err)
	}
	if ft.armed() {
		t.Error("a flush is scheduled with nothing buffered")
	}
	stderr, err := os.ReadFile(r.stderr.path)
	if err != nil || bytes.Count(stderr, []byte("\n")) != 1 {
		t.Errorf("stderr sidecar after the flush: %q, %v", stderr, err)
	}

	r.Output([]byte("four"))
	if !ft.armed() || ft.created != 1 {
		t.Fatalf("after another event: scheduled %v, timers made %d; want the one timer reset", ft.armed(), ft.created)
	}
	ft.fire()
	if c, err := castOnDisk(t, r); err != nil || len(c.Events) != 4 {
		t.Fatalf("after the second flush the file holds %d events (%v), want 4", len(c.Events), err)
	}
}

// TestRecordingFlushesWithRealTimer waits for events to reach the file
// without Close.
func TestRecordingFlushesWithRealTimer(t *testing.T) {
	r, err := NewRecording(RecordingConfig{Dir: t.TempDir(), SessionID: "s1", FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, chunk := range []string{"first", "second"} {
		if err := r.Output([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, chunk+" on disk", func() bool {
			c, err := castOnDisk(t, r)
			return err == nil && len(c.Events) == i+1
		})
	}
}

// TestRecordingCrash reads the file as a crash would leave it: after a
// timed flush it ends in a whole line; in the middle of a chunk larger
// than the buffer it ends in part of one, which reads as ErrTruncated
// after the whole events.
func TestRecordingCrash(t *testing.T) {
	r, ft := record(t, RecordingConfig{})
	defer r.Close()
	r.Output([]byte("before\n"))
	r.Resize(100, 30)
	ft.fire()
	c, err := castOnDisk(t, r)
	if err != nil || len(c.Events) != 2 {
		t.Fatalf("after a flush: %d events, %v; want 2 and no error", len(c.Events), err)
	}

	// A write that fails part way leaves the file as a crash would.
	r.cast.w.Reset(&cutWriter{w: r.cast.f, budget: bufferSize + 100})
	if err := r.Output(bytes.Repeat([]byte("z"), 3*bufferSize)); !errors.Is(err, errDiskFull) {
		t.Fatalf("Output: %v, want the write error", err)
	}
	c, err = castOnDisk(t, r)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseCast: %v, want ErrTruncated", err)
	}
	if len(c.Events) != 2 || c.Output() != "before\n" {
		t.Errorf("events before the cut: %+v", c.Events)
	}
}

// cutWriter passes budget bytes on, then fails.
type cutWriter struct {
	w      recordFile
	budget int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) <= c.budget {
		c.budget -= len(p)
		return c.w.Write(p)
	}
	n, _ := c.w.Write(p[:c.budget])
	c.budget = 0
	return n, errDiskFull
}
