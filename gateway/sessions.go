package gateway

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// ErrSessionKilled ends a session that an operator killed or that
// shutdown closed; the client sees its message.
var ErrSessionKilled = errors.New("kubegate ended the session")

// LiveSession describes a session in progress.
type LiveSession struct {
	ID string `json:"id"`
	// Node is the kubegate node that carries the session.
	Node      string    `json:"node,omitempty"`
	User      string    `json:"user"`
	Kind      string    `json:"kind"` // exec, attach or portforward
	Namespace string    `json:"namespace"`
	Pod       string    `json:"pod"`
	Container string    `json:"container,omitempty"`
	Command   []string  `json:"command,omitempty"`
	TTY       bool      `json:"tty"`
	Protocol  string    `json:"protocol"`
	Started   time.Time `json:"started"`
}

// Sessions is the registry of live stream sessions on this node. It is
// safe for concurrent use; the zero value is not: use NewSessions.
type Sessions struct {
	mu    sync.Mutex
	live  map[string]*liveEntry
	empty chan struct{} // closed while there are no sessions
}

type liveEntry struct {
	info   LiveSession
	cancel context.CancelCauseFunc
}

// NewSessions returns an empty registry.
func NewSessions() *Sessions {
	s := &Sessions{live: map[string]*liveEntry{}, empty: make(chan struct{})}
	close(s.empty)
	return s
}

// add registers a session and returns a context that Kill cancels, and a
// function to call when the session ends.
func (s *Sessions) add(ctx context.Context, info LiveSession) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	s.mu.Lock()
	if len(s.live) == 0 {
		s.empty = make(chan struct{})
	}
	s.live[info.ID] = &liveEntry{info: info, cancel: cancel}
	s.mu.Unlock()
	return ctx, func() {
		cancel(nil)
		s.mu.Lock()
		delete(s.live, info.ID)
		if len(s.live) == 0 {
			close(s.empty)
		}
		s.mu.Unlock()
	}
}

// List returns the live sessions, oldest first.
func (s *Sessions) List() []LiveSession {
	s.mu.Lock()
	out := make([]LiveSession, 0, len(s.live))
	for _, e := range s.live {
		out = append(out, e.info)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Kill ends a live session; the client is told reason. It reports whether
// the session was live.
func (s *Sessions) Kill(id, reason string) bool {
	s.mu.Lock()
	e, ok := s.live[id]
	s.mu.Unlock()
	if ok {
		e.cancel(fmt.Errorf("%w: %s", ErrSessionKilled, reason))
	}
	return ok
}

// Drain waits until every session has ended or ctx ends; then it kills
// what is left with reason and waits for those to finish (their recordings
// are closed as they end).
func (s *Sessions) Drain(ctx context.Context, reason string) {
	s.mu.Lock()
	empty := s.empty
	s.mu.Unlock()
	select {
	case <-empty:
		return
	case <-ctx.Done():
	}
	for _, l := range s.List() {
		s.Kill(l.ID, reason)
	}
	s.mu.Lock()
	empty = s.empty
	s.mu.Unlock()
	<-empty
}
