package raftnode

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

// signal wakes everybody waiting for the next change of something.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify. Take it before
// checking the condition, then wait on it: a change in between still
// closes it.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// notify closes the channel wait handed out, if any.
func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// appliedFSM is the raft.FSM a node hands Raft: the caller's cluster.FSM,
// plus a signal after every entry it applies and snapshot it restores,
// for waitApplied. (cluster.FSM.Changed does not fire for a command that
// changed nothing, though it moves the applied index.)
type appliedFSM struct {
	fsm     *cluster.FSM
	applied signal
}

var _ raft.FSM = (*appliedFSM)(nil)

func (a *appliedFSM) Apply(l *raft.Log) any {
	res := a.fsm.Apply(l)
	a.applied.notify()
	return res
}

func (a *appliedFSM) Snapshot() (raft.FSMSnapshot, error) { return a.fsm.Snapshot() }

func (a *appliedFSM) Restore(rc io.ReadCloser) error {
	err := a.fsm.Restore(rc)
	a.applied.notify()
	return err
}

// waitApplied waits until the FSM has applied the log entry index (or a
// snapshot at or past it), or ctx ends.
func (a *appliedFSM) waitApplied(ctx context.Context, index uint64) error {
	for {
		ch := a.applied.wait()
		got := a.fsm.AppliedIndex()
		if got >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the state machine to apply entry %d (it has applied %d): %w", index, got, ctxErr(ctx))
		}
	}
}
