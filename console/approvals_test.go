package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/cluster"
)

// localApprovals is a lone replica: commands apply at once.
type localApprovals struct{ fsm *cluster.FSM }

func (l localApprovals) Apply(_ context.Context, c cluster.Command) (cluster.Result, error) {
	return l.fsm.ApplyCommand(c), nil
}
func (l localApprovals) FSM() *cluster.FSM { return l.fsm }

// sseReader reads the named events of a server-sent event stream.
type sseReader struct{ sc *bufio.Scanner }

func (s sseReader) next(t *testing.T) (string, approvalsView) {
	t.Helper()
	var name string
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var v approvalsView
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
				t.Fatalf("event %s: %v", name, err)
			}
			return name, v
		}
	}
	t.Fatalf("event stream ended: %v", s.sc.Err())
	return "", approvalsView{}
}

// TestEventsFollowTheReplicatedState watches the approvals stream while
// commands change the state underneath, as decisions made on another node
// or with the CLI do once replicated.
func TestEventsFollowTheReplicatedState(t *testing.T) {
	fsm := cluster.NewFSM()
	h := newHarness(t, Config{Approvals: localApprovals{fsm}})
	c := h.browser(t)
	h.signIn(t, c, "ann@example.com", "approvers")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/ui/api/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := sseReader{bufio.NewScanner(resp.Body)}
	if name, v := events.next(t); name != "approvals" || len(v.Pending) != 0 {
		t.Fatalf("first event %s %+v, want an empty approvals list", name, v)
	}
	now := time.Now()
	res := fsm.ApplyCommand(cluster.Command{Op: cluster.OpCreate, Now: now, Request: &cluster.Request{
		ID: "r1", Kind: cluster.KindHold, Requester: cluster.Person{User: "agent@example.com"}, ExpiresAt: now.Add(time.Hour),
		Rule: "prod", ApproverGroups: []string{"idp:approvers"}, ApprovalsRequired: 1,
		Target: cluster.Target{Verb: "delete", Resource: "configmaps", Namespace: "prod", Name: "x"},
	}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	_, v := events.next(t)
	if len(v.Pending) != 1 || v.Pending[0].ID != "r1" || !v.Pending[0].CanDecide || v.Pending[0].Summary != `delete configmaps "x" in namespace "prod"` {
		t.Fatalf("after the hold: %+v", v.Pending)
	}
	res = fsm.ApplyCommand(cluster.Command{Op: cluster.OpApprove, Now: now, ID: "r1", Reason: "from the CLI",
		By: cluster.Person{User: "bob@example.com", Groups: []string{"idp:approvers"}}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	_, v = events.next(t)
	if len(v.Pending) != 0 || len(v.Decided) != 1 || v.Decided[0].State != cluster.StateApproved ||
		v.Decided[0].Approvals[0].By.User != "bob@example.com" || v.Decided[0].Approvals[0].Reason != "from the CLI" {
		t.Fatalf("after the approval: %+v", v)
	}
	// Shutdown ends the stream.
	h.c.Shutdown()
	for events.sc.Scan() {
	}
}

// TestCanDecide: own requests, other approver groups and auditors cannot.
func TestCanDecide(t *testing.T) {
	fsm := cluster.NewFSM()
	now := time.Now()
	for _, r := range []cluster.Request{
		{ID: "mine", Requester: cluster.Person{User: "ann@example.com"}, ApproverGroups: []string{"idp:approvers"}},
		{ID: "other-group", Requester: cluster.Person{User: "x"}, ApproverGroups: []string{"idp:dbas"}},
		{ID: "ok", Requester: cluster.Person{User: "x"}, ApproverGroups: []string{"idp:approvers"}},
	} {
		r.Kind, r.ExpiresAt, r.ApprovalsRequired = cluster.KindHold, now.Add(time.Hour), 1
		if res := fsm.ApplyCommand(cluster.Command{Op: cluster.OpCreate, Now: now, Request: &r}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	h := newHarness(t, Config{Approvals: localApprovals{fsm}})
	for _, tc := range []struct {
		sess *session
		want map[string]bool
	}{
		{&session{role: RoleApprover}, map[string]bool{"mine": false, "other-group": false, "ok": true}},
		{&session{role: RoleAuditor}, map[string]bool{"mine": false, "other-group": false, "ok": false}},
	} {
		tc.sess.principal = principal("ann@example.com", "idp:approvers")
		for _, r := range h.c.snapshot(tc.sess).Pending {
			if r.CanDecide != tc.want[r.ID] {
				t.Errorf("%s: canDecide(%s) = %v, want %v", tc.sess.role, r.ID, r.CanDecide, tc.want[r.ID])
			}
		}
	}
}
