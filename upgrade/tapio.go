package upgrade

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// tapSet feeds a Tap and remembers its first failure. Unless the session
// may go on without a recording, a failure cancels the session.
type tapSet struct {
	tap      Tap
	failOpen bool
	cancel   context.CancelCauseFunc

	mu    sync.Mutex
	first error
}

func (t *tapSet) record(f func(Tap) error) error {
	if t.tap == nil {
		return nil
	}
	err := f(t.tap)
	if err == nil {
		return nil
	}
	t.mu.Lock()
	if t.first == nil {
		t.first = err
	}
	t.mu.Unlock()
	if t.failOpen {
		return nil
	}
	err = fmt.Errorf("%w: %w", ErrRecordingFailed, err)
	t.cancel(err)
	return err
}

func (t *tapSet) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

func (t *tapSet) input(p []byte) error { return t.record(func(tap Tap) error { return tap.Input(p) }) }
func (t *tapSet) output(p []byte) error {
	return t.record(func(tap Tap) error { return tap.Output(p) })
}
func (t *tapSet) errorOutput(p []byte) error {
	return t.record(func(tap Tap) error { return tap.ErrorOutput(p) })
}
func (t *tapSet) resize(w, h uint16) error {
	return t.record(func(tap Tap) error { return tap.Resize(w, h) })
}

// tappedReader is the client's stdin on its way upstream: what it reads is
// recorded before it is forwarded.
type tappedReader struct {
	r      io.Reader
	record func([]byte) error
}

func (t *tappedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		if rerr := t.record(p[:n]); rerr != nil {
			return 0, rerr
		}
	}
	return n, err
}

// tappedWriter is stdout or stderr on its way to the client: it is recorded,
// then written. A client that went away cancels the session.
type tappedWriter struct {
	w      io.Writer
	record func([]byte) error
	cancel context.CancelCauseFunc
	filter OutputFilter  // nil: output passes as it is
	delay  time.Duration // idle flush of what filter holds back; 0: none

	mu     sync.Mutex // serializes the filter and writes to the client
	timer  *time.Timer
	closed bool
}

// OutputFilter rewrites an output stream on its way to the client, such as
// a masker of secret values. Write returns what may pass now (it may hold
// back a tail that could still turn out to be part of a match); Flush
// returns what is held back once the stream ends. Neither may keep p.
type OutputFilter interface {
	Write(p []byte) []byte
	Flush() []byte
}

func (t *tappedWriter) Write(p []byte) (int, error) {
	if t.filter == nil {
		if err := t.pass(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.pass(t.filter.Write(p)); err != nil {
		return 0, err
	}
	if t.delay > 0 {
		if t.timer == nil {
			t.timer = time.AfterFunc(t.delay, t.idleFlush)
		} else {
			t.timer.Reset(t.delay)
		}
	}
	return len(p), nil
}

// idleFlush passes on what the filter held back while output paused.
func (t *tappedWriter) idleFlush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		_ = t.pass(t.filter.Flush())
	}
}

// pass records and writes filtered bytes.
func (t *tappedWriter) pass(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := t.record(p); err != nil {
		return err
	}
	if _, err := t.w.Write(p); err != nil {
		t.cancel(fmt.Errorf("writing to the client: %w", err))
		return err
	}
	return nil
}

// flush passes on what the filter held back, at the end of the session.
func (t *tappedWriter) flush() {
	if t.filter == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.closed = true
	if err := t.pass(t.filter.Flush()); err != nil {
		// The tail could not be recorded (or written): end the session
		// with that, rather than let the client take a short stream for
		// a whole one.
		t.cancel(fmt.Errorf("passing on the last output: %w", err))
	}
}

// recordResizes records each of the client's resizes as it arrives, and
// then hands it on to out, until in or ctx ends or recording fails.
// Recording at arrival rather than when the upstream takes the size puts
// the terminal's first size ahead of anything else in the recording.
func recordResizes(ctx context.Context, in <-chan serverremotecommand.TerminalSize, out chan<- serverremotecommand.TerminalSize, record func(w, h uint16) error) {
	defer close(out)
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-in:
			if !ok || record(s.Width, s.Height) != nil {
				return
			}
			select {
			case out <- s:
			case <-ctx.Done():
				return
			}
		}
	}
}

// sizeQueue hands the client's resizes to the upstream executor.
type sizeQueue struct {
	ctx context.Context
	ch  <-chan serverremotecommand.TerminalSize
}

var _ clientremotecommand.TerminalSizeQueue = (*sizeQueue)(nil)

// Next returns the next size, or nil when resizing is over.
func (q *sizeQueue) Next() *clientremotecommand.TerminalSize {
	select {
	case <-q.ctx.Done():
		return nil
	case s, ok := <-q.ch:
		if !ok {
			return nil
		}
		return &clientremotecommand.TerminalSize{Width: s.Width, Height: s.Height}
	}
}
