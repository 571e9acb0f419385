package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/policy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// memApprovals applies commands to an in-memory state machine, as a
// single-node cluster would after committing them.
type memApprovals struct{ fsm *cluster.FSM }

func (m memApprovals) Apply(_ context.Context, c cluster.Command) (cluster.Result, error) {
	return m.fsm.ApplyCommand(c), nil
}
func (m memApprovals) FSM() *cluster.FSM { return m.fsm }

// people authenticates "Bearer <user>" as that user; bob and carol are in
// group ops.
type people struct{}

func (people) Authenticate(_ context.Context, r *http.Request) (*identity.Principal, error) {
	user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || user == "" {
		return nil, identity.ErrNoToken
	}
	groups := []string{"devs"}
	if user == "bob" || user == "carol" {
		groups = []string{"ops"}
	}
	return &identity.Principal{User: user, Groups: groups}, nil
}

// holdPolicy holds deletes for one approver of group ops, and allows
// deletes of configmaps that a grant covers.
type holdPolicy struct{ timeout time.Duration }

func (p holdPolicy) Decide(in policy.Input) policy.Decision {
	if in.Request.Verb != "delete" {
		return policy.Decision{Action: policy.Allow, Rule: "rest"}
	}
	for _, g := range in.Grants {
		if g.Scope.Covers(&in.Request) {
			return policy.Decision{Action: policy.Allow, Rule: "hold-deletes", Grant: g.ID}
		}
	}
	return policy.Decision{Action: policy.RequireApproval, Rule: "hold-deletes", Message: "deletes need a person",
		HoldTimeout: p.timeout, Approvers: policy.Approvers{Groups: []string{"ops"}, Count: 1}}
}

type holdFixture struct {
	url  string
	fsm  *cluster.FSM
	sink *memSink
}

func newHoldGateway(t *testing.T, timeout time.Duration, approvals Approvals) *holdFixture {
	t.Helper()
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"Status","status":"Success","details":{"name":%q}}`, r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	f := &holdFixture{sink: &memSink{}}
	if m, ok := approvals.(memApprovals); ok {
		f.fsm = m.fsm
	}
	g, err := New(Config{
		Upstream: u, Transport: upstream.Client().Transport, Authenticator: people{}, Policy: holdPolicy{timeout: timeout},
		Audit: f.sink, Approvals: approvals, GrantApprovers: policy.Approvers{Groups: []string{"ops"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g)
	t.Cleanup(front.Close)
	f.url = front.URL
	return f
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (f *holdFixture) call(t *testing.T, ctx context.Context, user, method, path string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, f.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{code: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

// pending waits for a pending hold and returns it.
func (f *holdFixture) pending(t *testing.T) cluster.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		changed := f.fsm.Changed("")
		if rs := f.fsm.Requests(cluster.Filter{State: cluster.StatePending, Kind: cluster.KindHold}); len(rs) > 0 {
			return rs[0]
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("no request was held")
		}
	}
}

func statusMessage(t *testing.T, b []byte) string {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("reply is not a Status: %v: %s", err, b)
	}
	return st.Message
}

const cmPath = "/api/v1/namespaces/prod/configmaps/web"

func TestHoldReleasedByApproval(t *testing.T) {
	f := newHoldGateway(t, time.Hour, memApprovals{cluster.NewFSM()})
	ctx := context.Background()
	done := make(chan reply, 1)
	go func() { done <- f.call(t, ctx, "alice", http.MethodDelete, cmPath, nil) }()
	held := f.pending(t)
	if held.Requester.User != "alice" || held.Rule != "hold-deletes" || held.Target.Name != "web" {
		t.Fatalf("held request %+v", held)
	}
	if r := f.call(t, ctx, "alice", http.MethodPost, APIPrefix+"requests/"+held.ID+"/approve", nil); r.code != http.StatusForbidden || !strings.Contains(statusMessage(t, r.body), "own access request") {
		t.Errorf("self approval: %d %s", r.code, r.body)
	}
	if r := f.call(t, ctx, "dave", http.MethodPost, APIPrefix+"requests/"+held.ID+"/approve", nil); r.code != http.StatusForbidden || !strings.Contains(statusMessage(t, r.body), "not in a group") {
		t.Errorf("approval by a non-approver: %d %s", r.code, r.body)
	}
	r := f.call(t, ctx, "bob", http.MethodPost, APIPrefix+"requests/"+held.ID+"/approve", DecisionSpec{Reason: "fine"})
	if r.code != http.StatusOK {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	got := <-done
	if got.code != http.StatusOK || !strings.Contains(got.header.Get("Warning"), "approved by bob (fine)") {
		t.Fatalf("released request: %d %v %s", got.code, got.header, got.body)
	}
	if st, _ := f.fsm.Get(held.ID); st.State != cluster.StateUsed {
		t.Errorf("after release the request is %s, want used", st.State)
	}
	ev := f.sink.find(func(a map[string]string) bool { return a["kubegate.dev/hold-outcome"] != "" })
	if ev["kubegate.dev/hold-outcome"] != "approved" || ev["kubegate.dev/approved-by"] != "bob" || ev["kubegate.dev/access-request"] != held.ID {
		t.Errorf("audit annotations %v", ev)
	}
	if ev := f.sink.find(func(a map[string]string) bool {
		return a["kubegate.dev/event"] == "api.request.approve" && a["kubegate.dev/decision"] == ""
	}); ev["kubegate.dev/access-request-state"] != "approved" {
		t.Errorf("approval audit annotations %v", ev)
	}
}

func TestHoldDeniedAndExpired(t *testing.T) {
	ctx := context.Background()
	t.Run("denied", func(t *testing.T) {
		f := newHoldGateway(t, time.Hour, memApprovals{cluster.NewFSM()})
		done := make(chan reply, 1)
		go func() { done <- f.call(t, ctx, "alice", http.MethodDelete, cmPath, nil) }()
		held := f.pending(t)
		if r := f.call(t, ctx, "bob", http.MethodPost, APIPrefix+"requests/"+held.ID+"/deny", nil); r.code != http.StatusBadRequest {
			t.Errorf("deny without reason: %d %s", r.code, r.body)
		}
		if r := f.call(t, ctx, "bob", http.MethodPost, APIPrefix+"requests/"+held.ID+"/deny", DecisionSpec{Reason: "change freeze"}); r.code != http.StatusOK {
			t.Fatalf("deny: %d %s", r.code, r.body)
		}
		got := <-done
		msg := statusMessage(t, got.body)
		if got.code != http.StatusForbidden || !strings.Contains(msg, "denied by bob: change freeze") || !strings.Contains(msg, held.ID) {
			t.Fatalf("denied request: %d %s", got.code, msg)
		}
		// A retry of the same call right after gets the same answer.
		again := f.call(t, ctx, "alice", http.MethodDelete, cmPath, nil)
		if again.code != http.StatusForbidden || !strings.Contains(statusMessage(t, again.body), "change freeze") {
			t.Errorf("retry after denial: %d %s", again.code, again.body)
		}
		if r := f.call(t, ctx, "carol", http.MethodPost, APIPrefix+"requests/"+held.ID+"/approve", nil); r.code != http.StatusConflict {
			t.Errorf("approving a denied request: %d %s", r.code, r.body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f := newHoldGateway(t, 20*time.Millisecond, memApprovals{cluster.NewFSM()})
		got := f.call(t, ctx, "alice", http.MethodDelete, cmPath, nil)
		if msg := statusMessage(t, got.body); got.code != http.StatusForbidden || !strings.Contains(msg, "nobody approved it") {
			t.Fatalf("expired hold: %d %s", got.code, msg)
		}
	})
	t.Run("no approval state fails closed", func(t *testing.T) {
		f := newHoldGateway(t, time.Hour, nil)
		got := f.call(t, ctx, "alice", http.MethodDelete, cmPath, nil)
		if got.code != http.StatusServiceUnavailable || !strings.Contains(statusMessage(t, got.body), "approvals are unavailable") {
			t.Fatalf("hold without approvals: %d %s", got.code, got.body)
		}
	})
}

func TestHoldClientGoneLeavesPendingForRetry(t *testing.T) {
	f := newHoldGateway(t, time.Hour, memApprovals{cluster.NewFSM()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan reply, 1)
	go func() { done <- f.call(t, ctx, "alice", http.MethodDelete, cmPath, nil) }()
	held := f.pending(t)
	cancel()
	<-done
	// The approval comes once kubegate has seen the client go (its event
	// says the request was left pending), as when kubectl was killed.
	if ev := f.sink.find(func(a map[string]string) bool { return a["kubegate.dev/hold-outcome"] == "pending" }); ev == nil {
		t.Fatal("the abandoned hold was never audited")
	}
	if r := f.call(t, context.Background(), "bob", http.MethodPost, APIPrefix+"requests/"+held.ID+"/approve", nil); r.code != http.StatusOK {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	got := f.call(t, context.Background(), "alice", http.MethodDelete, cmPath, nil)
	if got.code != http.StatusOK || !strings.Contains(got.header.Get("Warning"), held.ID) {
		t.Fatalf("retry after approval: %d %v %s", got.code, got.header, got.body)
	}
	if n := len(f.fsm.Requests(cluster.Filter{})); n != 1 {
		t.Errorf("the retry opened another request: %d requests", n)
	}
}

func TestGrantRequestAPI(t *testing.T) {
	f := newHoldGateway(t, time.Hour, memApprovals{cluster.NewFSM()})
	ctx := context.Background()
	spec := GrantRequestSpec{GrantScope: policy.GrantScope{Verbs: []string{"delete"}, Resources: []string{"configmaps"}, Namespaces: []string{"prod"}},
		Duration: policy.Duration(time.Hour), Reason: "cleanup"}
	for _, bad := range []GrantRequestSpec{
		{GrantScope: spec.GrantScope, Duration: policy.Duration(time.Hour)},
		{GrantScope: spec.GrantScope, Duration: policy.Duration(100 * time.Hour), Reason: "x"},
		{GrantScope: policy.GrantScope{Verbs: []string{"delete"}}, Duration: policy.Duration(time.Hour), Reason: "x"},
	} {
		if r := f.call(t, ctx, "alice", http.MethodPost, APIPrefix+"requests", bad); r.code != http.StatusBadRequest {
			t.Errorf("bad grant request %+v: %d %s", bad, r.code, r.body)
		}
	}
	r := f.call(t, ctx, "alice", http.MethodPost, APIPrefix+"requests", spec)
	if r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var v RequestView
	_ = json.Unmarshal(r.body, &v)
	if !strings.Contains(v.Summary, "grant of delete on configmaps in namespaces prod for 1h0m0s") {
		t.Errorf("summary %q", v.Summary)
	}
	if r := f.call(t, ctx, "bob", http.MethodPost, APIPrefix+"requests/"+v.ID+"/approve", nil); r.code != http.StatusOK {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	// The grant lets the delete through at once.
	if got := f.call(t, ctx, "alice", http.MethodDelete, cmPath, nil); got.code != http.StatusOK {
		t.Fatalf("delete under a grant: %d %s", got.code, got.body)
	}
	var mine GrantList
	r = f.call(t, ctx, "alice", http.MethodGet, APIPrefix+"grants", nil)
	_ = json.Unmarshal(r.body, &mine)
	if len(mine.Items) != 1 || mine.Items[0].Holder.User != "alice" {
		t.Fatalf("grants: %s", r.body)
	}
	if r := f.call(t, ctx, "dave", http.MethodPost, APIPrefix+"grants/"+mine.Items[0].ID+"/revoke", nil); r.code != http.StatusForbidden {
		t.Errorf("revoke by a stranger: %d %s", r.code, r.body)
	}
	if r := f.call(t, ctx, "bob", http.MethodPost, APIPrefix+"grants/"+mine.Items[0].ID+"/revoke", DecisionSpec{Reason: "done"}); r.code != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.code, r.body)
	}
	var list RequestList
	r = f.call(t, ctx, "dave", http.MethodGet, APIPrefix+"requests", nil)
	_ = json.Unmarshal(r.body, &list)
	if len(list.Items) != 0 {
		t.Errorf("dave sees others' requests: %s", r.body)
	}
	if r := f.call(t, ctx, "alice", http.MethodGet, APIPrefix+"nothing", nil); r.code != http.StatusBadRequest {
		t.Errorf("unknown API path: %d %s", r.code, r.body)
	}
}

// find returns the annotations of the first event match accepts. The
// gateway writes a request's event after its reply, so it waits for one.
func (m *memSink) find(match func(map[string]string) bool) map[string]string {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for {
		m.mu.Lock()
		for _, ev := range m.evs {
			if match(ev.Annotations) {
				m.mu.Unlock()
				return ev.Annotations
			}
		}
		m.mu.Unlock()
		select {
		case <-tick.C:
		case <-deadline:
			return nil
		}
	}
}
