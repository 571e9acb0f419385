package audit

import (
	"fmt"
	"time"
)

// flushTimer is the part of *time.Timer a Recording uses to schedule
// flushes; tests fire a fake one by hand.
type flushTimer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

func realTimer(d time.Duration, f func()) flushTimer { return time.AfterFunc(d, f) }

// armFlush schedules a flush FlushInterval from now if events (or a held
// back header) are waiting and none is scheduled yet. It is called with mu held after
// each event, so no event waits longer than FlushInterval. There is no
// goroutine while nothing is buffered.
func (r *Recording) armFlush() {
	if r.armed || r.err != nil || r.buffered() == 0 && !r.headerPending {
		return
	}
	r.armed = true
	r.inflight.Add(1)
	if r.timer == nil {
		r.timer = r.newTimer(r.cfg.FlushInterval, r.timedFlush)
		return
	}
	r.timer.Reset(r.cfg.FlushInterval)
}

// stopFlush cancels a scheduled flush; called with mu held by Close. A
// flush that is already running finds the recording closed and returns.
func (r *Recording) stopFlush() {
	if r.armed && r.timer.Stop() {
		r.armed = false
		r.inflight.Done()
	}
}

// timedFlush writes the buffered events to the files. It runs on the
// timer's goroutine.
func (r *Recording) timedFlush() {
	defer r.inflight.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = false
	if r.closed || r.err != nil {
		return
	}
	if r.headerPending && r.elapsed() < headerWait {
		r.armFlush() // still waiting for the first resize
		return
	}
	r.pendingHeader()
	for _, l := range []*lineFile{r.cast, r.stderr, r.raw} {
		if l != nil {
			if err := l.release(); err != nil {
				r.fail(fmt.Errorf("flushing %s: %w", l.path, err))
				return
			}
		}
	}
}

// buffered returns how many bytes wait in the buffers.
func (r *Recording) buffered() int {
	n := r.cast.buffered()
	if r.stderr != nil {
		n += r.stderr.buffered()
	}
	if r.raw != nil {
		n += r.raw.buffered()
	}
	return n
}
