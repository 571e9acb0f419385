package audit

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The relay's interface, repeated here because audit must not import
// upgrade: a Recording must satisfy it.
type tap interface {
	Input(p []byte) error
	Output(p []byte) error
	ErrorOutput(p []byte) error
	Resize(width, height uint16) error
}

var _ tap = (*Recording)(nil)

var start = time.Date(2026, 3, 4, 23, 59, 58, 0, time.UTC)

// fakeClock advances by step on every reading.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newFakeClock(step time.Duration) *fakeClock { return &fakeClock{t: start, step: step} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

// fakeTimer is a flushTimer the test fires by hand.
type fakeTimer struct {
	mu      sync.Mutex
	f       func()
	d       time.Duration
	active  bool
	created int
}

func (ft *fakeTimer) new(d time.Duration, f func()) flushTimer {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.f, ft.d, ft.active = f, d, true
	ft.created++
	return ft
}

func (ft *fakeTimer) Reset(d time.Duration) bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	was := ft.active
	ft.d, ft.active = d, true
	return was
}

func (ft *fakeTimer) Stop() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	was := ft.active
	ft.active = false
	return was
}

func (ft *fakeTimer) armed() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.active
}

// fire runs the flush if it is scheduled, as the timer's goroutine would.
func (ft *fakeTimer) fire() bool {
	ft.mu.Lock()
	f, was := ft.f, ft.active
	ft.active = false
	ft.mu.Unlock()
	if was {
		f()
	}
	return was
}

var errDiskFull = errors.New("test: no space left on device")

// failingFile is a real file that fails every write once budget bytes
// have been written.
type failingFile struct {
	*os.File
	mu     sync.Mutex
	budget int
}

func (f *failingFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(p) <= f.budget {
		f.budget -= len(p)
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:f.budget])
	f.budget = 0
	return n, errDiskFull
}

// createFailing returns a create seam whose .cast file fails after budget
// bytes, and whose files with failSuffix cannot be created.
func createFailing(budget int, failSuffix string) func(string) (recordFile, error) {
	return func(path string) (recordFile, error) {
		if failSuffix != "" && strings.HasSuffix(path, failSuffix) {
			return nil, errDiskFull
		}
		f, err := createFile(path)
		if err != nil || !strings.HasSuffix(path, ".cast") {
			return f, err
		}
		return &failingFile{File: f.(*os.File), budget: budget}, nil
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// advance moves the clock d forward.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
