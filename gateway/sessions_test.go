package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSessionsKillAndDrain(t *testing.T) {
	s := NewSessions()
	ctxA, doneA := s.add(context.Background(), LiveSession{ID: "a", Started: time.Unix(1, 0)})
	ctxB, doneB := s.add(context.Background(), LiveSession{ID: "b", Started: time.Unix(2, 0)})
	if l := s.List(); len(l) != 2 || l[0].ID != "a" || l[1].ID != "b" {
		t.Fatalf("List = %+v, want a then b", l)
	}
	if !s.Kill("a", "policy review") || s.Kill("nope", "x") {
		t.Fatal("Kill reports the wrong sessions as live")
	}
	<-ctxA.Done()
	if err := context.Cause(ctxA); !errors.Is(err, ErrSessionKilled) || !strings.Contains(err.Error(), "policy review") {
		t.Errorf("killed session's cause = %v", err)
	}
	doneA()

	// Drain with an expired deadline kills what is left and returns once
	// its session has finished.
	go func() {
		<-ctxB.Done()
		doneB()
	}()
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	s.Drain(expired, "shutting down")
	if err := context.Cause(ctxB); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("drained session's cause = %v", err)
	}
	if l := s.List(); len(l) != 0 {
		t.Errorf("sessions left after Drain: %+v", l)
	}
	// With nothing live, Drain returns at once even with a live deadline.
	s.Drain(context.Background(), "unused")
}
