package audit

import (
	"bytes"
	"errors"
	"os"
	"slices"
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
	r.cast.dst = &cutWriter{w: r.cast.f, budget: bufferSize + 100} // the next borrowed buffer writes here
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

// TestRecordingSizeFromFirstResize: a terminal session's header waits for
// the first resize and carries its size, events that come first held back
// after it; once headerWait has passed, or held events would exceed
// headerHoldBytes, the header is written with the configured size.
func TestRecordingSizeFromFirstResize(t *testing.T) {
	for _, tc := range []struct {
		name          string
		act           func(r *Recording, ft *fakeTimer, wait func())
		width, height int
		events        []string // event codes, in order
	}{
		{"resize first", func(r *Recording, _ *fakeTimer, _ func()) {
			r.Resize(133, 42)
			r.Output([]byte("$ "))
			r.Resize(100, 30)
		}, 133, 42, []string{"r", "o", "r"}},
		{"output first", func(r *Recording, _ *fakeTimer, _ func()) {
			r.Output([]byte("$ "))
			r.Input([]byte("l"))
			r.Resize(133, 42)
		}, 133, 42, []string{"o", "i", "r"}},
		{"timer within the wait", func(r *Recording, ft *fakeTimer, _ func()) {
			r.Output([]byte("$ "))
			ft.fire()
			r.Resize(133, 42)
		}, 133, 42, []string{"o", "r"}},
		{"timer after the wait", func(r *Recording, ft *fakeTimer, wait func()) {
			r.Output([]byte("$ "))
			wait()
			ft.fire()
			r.Resize(133, 42)
		}, 80, 24, []string{"o", "r"}},
		{"output after the wait", func(r *Recording, _ *fakeTimer, wait func()) {
			wait()
			r.Output([]byte("$ "))
			r.Resize(133, 42)
		}, 80, 24, []string{"o", "r"}},
		{"held output over the bound", func(r *Recording, _ *fakeTimer, _ func()) {
			r.Output(bytes.Repeat([]byte("x"), headerHoldBytes/2))
			r.Output(bytes.Repeat([]byte("y"), headerHoldBytes/2+1))
			r.Resize(133, 42)
		}, 80, 24, []string{"o", "o", "r"}},
		{"exit first", func(r *Recording, _ *fakeTimer, _ func()) {
			r.Output([]byte("bye"))
			r.Exit(0)
		}, 80, 24, []string{"o", "x"}},
		{"nothing", func(*Recording, *fakeTimer, func()) {}, 80, 24, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock(time.Millisecond)
			r, ft := record(t, RecordingConfig{SizeFromFirstResize: true, Now: clock.Now})
			if !ft.armed() {
				t.Fatal("no flush is scheduled for the held-back header")
			}
			tc.act(r, ft, func() { clock.advance(headerWait) })
			c := readCast(t, closeRecording(t, r).Path)
			if c.Header.Width != tc.width || c.Header.Height != tc.height {
				t.Errorf("header size %dx%d, want %dx%d", c.Header.Width, c.Header.Height, tc.width, tc.height)
			}
			var codes []string
			for _, e := range c.Events {
				codes = append(codes, e.Code)
			}
			if !slices.Equal(codes, tc.events) {
				t.Errorf("events %v, want %v", codes, tc.events)
			}
			for i := 1; i < len(c.Events); i++ {
				if c.Events[i].Time < c.Events[i-1].Time {
					t.Errorf("event %d at %v before event %d at %v", i, c.Events[i].Time, i-1, c.Events[i-1].Time)
				}
			}
		})
	}
}

// TestRecordingHeldHeaderReachesDisk: a held-back header is on disk after
// the first timed flush past headerWait, so a session that crashes
// without a resize still leaves a valid recording.
func TestRecordingHeldHeaderReachesDisk(t *testing.T) {
	clock := newFakeClock(time.Millisecond)
	r, ft := record(t, RecordingConfig{SizeFromFirstResize: true, Now: clock.Now})
	defer r.Close()
	ft.fire()
	if b, _ := os.ReadFile(r.cast.path); len(b) != 0 {
		t.Fatalf("the file holds %q while the header waits for a resize", b)
	}
	if !ft.armed() {
		t.Fatal("no flush is scheduled after the first")
	}
	clock.advance(headerWait)
	ft.fire()
	if c, err := castOnDisk(t, r); err != nil || c.Header.Version != 2 {
		t.Fatalf("after the flush: %+v, %v; want a valid header", c, err)
	}
}

// TestRecordingReleasesBufferWhenIdle checks that a timed flush gives the
// buffers back, so an idle session holds none, and that the next event
// borrows one again.
func TestRecordingReleasesBufferWhenIdle(t *testing.T) {
	r, ft := record(t, RecordingConfig{})
	defer r.Close()
	r.Output([]byte("first\n"))
	if r.cast.w == nil {
		t.Fatal("an event waits, but no buffer holds it")
	}
	ft.fire()
	if r.cast.w != nil {
		t.Fatal("the timed flush kept the buffer")
	}
	r.Output([]byte("second\n"))
	ft.fire()
	c, err := castOnDisk(t, r)
	if err != nil || c.Output() != "first\nsecond\n" {
		t.Fatalf("on disk: %q, %v", c.Output(), err)
	}
}

// TestRecordingBufferSize checks that short events wait in a small buffer,
// and that a long event, or short ones that fill the small buffer, get the
// full one, with every event on disk in order after the flush.
func TestRecordingBufferSize(t *testing.T) {
	r, ft := record(t, RecordingConfig{})
	defer r.Close()
	var want bytes.Buffer
	output := func(p []byte) {
		t.Helper()
		if err := r.Output(p); err != nil {
			t.Fatal(err)
		}
		want.Write(p)
	}
	size := func() int {
		if r.cast.w == nil {
			return 0
		}
		return r.cast.w.Size()
	}

	output([]byte("$ ls\n"))
	if size() != smallBuffer {
		t.Fatalf("a short event borrowed a buffer of %d bytes, want %d", size(), smallBuffer)
	}
	output(bytes.Repeat([]byte("x"), shortEventData+1))
	if size() != bufferSize {
		t.Fatalf("after a long event the buffer has %d bytes, want %d", size(), bufferSize)
	}
	ft.fire()
	if size() != 0 {
		t.Fatal("the timed flush kept the buffer")
	}

	line := append(bytes.Repeat([]byte("y"), 99), '\n')
	for size() != bufferSize {
		if want.Len() > 2*smallBuffer {
			t.Fatalf("short events filled %d bytes and still wait in a buffer of %d", want.Len(), size())
		}
		output(line)
	}
	ft.fire()
	c, err := castOnDisk(t, r)
	if err != nil || c.Output() != want.String() {
		t.Fatalf("on disk: %d bytes of output (%v), want %d", len(c.Output()), err, want.Len())
	}
}
