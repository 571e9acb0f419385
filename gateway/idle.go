package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/kubegate/kubegate/upgrade"
)

// idleTap passes a session's traffic on to the recording and ends the
// session when neither side has sent anything for the idle timeout.
type idleTap struct {
	next  upgrade.Tap // nil when the session goes unrecorded
	ctx   context.Context
	timer *time.Timer
	d     time.Duration
}

var _ upgrade.Tap = (*idleTap)(nil)

func newIdleTap(ctx context.Context, next upgrade.Tap, d time.Duration, rule string) *idleTap {
	ctx, cancel := context.WithCancelCause(ctx)
	t := &idleTap{next: next, ctx: ctx, d: d}
	t.timer = time.AfterFunc(d, func() {
		cancel(fmt.Errorf("%w: the session was idle for %s (rule %q)", ErrSessionKilled, d, rule))
	})
	return t
}

func (t *idleTap) stop() { t.timer.Stop() }

func (t *idleTap) active() { t.timer.Reset(t.d) }

func (t *idleTap) Input(p []byte) error {
	t.active()
	if t.next == nil {
		return nil
	}
	return t.next.Input(p)
}

func (t *idleTap) Output(p []byte) error {
	t.active()
	if t.next == nil {
		return nil
	}
	return t.next.Output(p)
}

func (t *idleTap) ErrorOutput(p []byte) error {
	t.active()
	if t.next == nil {
		return nil
	}
	return t.next.ErrorOutput(p)
}

func (t *idleTap) Resize(w, h uint16) error {
	t.active()
	if t.next == nil {
		return nil
	}
	return t.next.Resize(w, h)
}
