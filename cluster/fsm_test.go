package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// step is one entry of testdata/transcript.json: a command and what
// applying it must give.
type step struct {
	Name        string  `json:"name"`
	Cmd         Command `json:"cmd"`
	WantErr     string  `json:"wantErr"`     // name of the sentinel error, "" for none
	WantChanged bool    `json:"wantChanged"` // Result.Changed
	WantState   State   `json:"wantState"`   // Result.Request.State, "" for no request
	WantID      string  `json:"wantID"`      // Result.Request.ID, "" to skip
	WantGrant   string  `json:"wantGrant"`   // Result.Grant.ID, "" for no grant
}

// sentinels names the state machine's errors for the transcript.
var sentinels = map[string]error{
	"ErrNotFound":       ErrNotFound,
	"ErrGrantNotFound":  ErrGrantNotFound,
	"ErrAlreadyDecided": ErrAlreadyDecided,
	"ErrExpired":        ErrExpired,
	"ErrSelfApproval":   ErrSelfApproval,
	"ErrNotApprover":    ErrNotApprover,
	"ErrNotApproved":    ErrNotApproved,
	"ErrInvalidCommand": ErrInvalidCommand,
	"ErrGrantRevoked":   ErrGrantRevoked,
	"ErrDuplicateID":    ErrDuplicateID,
	"ErrNotGrantHolder": ErrNotGrantHolder,
	"ErrUnknownCommand": ErrUnknownCommand,
}

func loadTranscript(t testing.TB) []step {
	t.Helper()
	b, err := os.ReadFile("testdata/transcript.json")
	if err != nil {
		t.Fatal(err)
	}
	var steps []step
	if err := json.Unmarshal(b, &steps); err != nil {
		t.Fatalf("testdata/transcript.json: %v", err)
	}
	return steps
}

// replay applies the first n steps (all for n < 0) to a new FSM.
func replay(steps []step, n int) *FSM {
	f := NewFSM()
	if n < 0 {
		n = len(steps)
	}
	for _, s := range steps[:n] {
		f.ApplyCommand(s.Cmd)
	}
	return f
}

// state encodes f's state as a snapshot without the applied index, so that
// states reached through ApplyCommand and through Apply compare equal.
func state(t testing.TB, f *FSM) []byte {
	t.Helper()
	f.mu.RLock()
	d := f.data()
	f.mu.RUnlock()
	d.AppliedIndex = 0
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// snapshotBytes takes and persists a raft snapshot of f.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// checkStep reports how res differs from what s wants.
func checkStep(t *testing.T, i int, s step, res Result) {
	t.Helper()
	at := fmt.Sprintf("step %q (#%d)", s.Name, i)
	if s.WantErr != "" {
		want, ok := sentinels[s.WantErr]
		if !ok {
			t.Fatalf("%s: unknown error name %q", at, s.WantErr)
		}
		if !errors.Is(res.Err, want) {
			t.Errorf("%s: err = %v, want %s", at, res.Err, s.WantErr)
		}
		if res.Changed || res.Request != nil || res.Grant != nil {
			t.Errorf("%s: a refusal returned %+v", at, res)
		}
		return
	}
	if res.Err != nil {
		t.Errorf("%s: err = %v, want none", at, res.Err)
		return
	}
	if res.Changed != s.WantChanged {
		t.Errorf("%s: changed = %v, want %v", at, res.Changed, s.WantChanged)
	}
	switch {
	case s.WantState == "" && res.Request != nil:
		t.Errorf("%s: got request %q, want none", at, res.Request.ID)
	case s.WantState != "" && res.Request == nil:
		t.Errorf("%s: no request, want one in state %s", at, s.WantState)
	case res.Request != nil:
		if res.Request.State != s.WantState {
			t.Errorf("%s: state = %s, want %s", at, res.Request.State, s.WantState)
		}
		if s.WantID != "" && res.Request.ID != s.WantID {
			t.Errorf("%s: request %q, want %q", at, res.Request.ID, s.WantID)
		}
	}
	switch {
	case s.WantGrant == "" && res.Grant != nil:
		t.Errorf("%s: got grant %q, want none", at, res.Grant.ID)
	case s.WantGrant != "" && (res.Grant == nil || res.Grant.ID != s.WantGrant):
		t.Errorf("%s: grant = %+v, want %q", at, res.Grant, s.WantGrant)
	}
}

// TestTranscript replays testdata/transcript.json, checking each result,
// that refusals and no-ops leave the state byte-for-byte as it was, that a
// second replay gives a byte-identical snapshot, and that the snapshot
// matches the golden file (go test -run TestTranscript -update rewrites it).
func TestTranscript(t *testing.T) {
	steps := loadTranscript(t)
	f := NewFSM()
	for i, s := range steps {
		before := state(t, f)
		res := f.ApplyCommand(s.Cmd)
		checkStep(t, i, s, res)
		after := state(t, f)
		if changed := !bytes.Equal(before, after); changed != res.Changed {
			t.Errorf("step %q (#%d): state changed = %v, but Result.Changed = %v", s.Name, i, changed, res.Changed)
		}
	}

	got := snapshotBytes(t, f)
	if again := snapshotBytes(t, replay(steps, -1)); !bytes.Equal(got, again) {
		t.Errorf("replaying the transcript twice gave different snapshots:\n%s\n%s", got, again)
	}

	var indented bytes.Buffer
	if err := json.Indent(&indented, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	indented.WriteByte('\n')
	const golden = "testdata/transcript.snapshot.json"
	if *update {
		if err := os.WriteFile(golden, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(indented.Bytes(), want) {
		t.Errorf("snapshot differs from %s (run with -update if the change is intended):\n%s", golden, indented.Bytes())
	}
}

// TestTranscriptCoversEveryError makes sure every error the state machine
// can return is exercised by the transcript.
func TestTranscriptCoversEveryError(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range loadTranscript(t) {
		seen[s.WantErr] = true
	}
	for name := range sentinels {
		if !seen[name] {
			t.Errorf("no transcript step expects %s", name)
		}
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

var (
	t0    = time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	alice = Person{User: "alice", Groups: []string{"dev"}}
	bob   = Person{User: "bob", Groups: []string{"sre"}}
	carol = Person{User: "carol", Groups: []string{"sre"}}
)

func hold(id string, approvals int) *Request {
	return &Request{
		ID: id, Kind: KindHold, Requester: alice, ExpiresAt: t0.Add(5 * time.Minute),
		ApproverGroups: []string{"sre"}, ApprovalsRequired: approvals, Fingerprint: "fp-" + id,
	}
}

func mustApply(t *testing.T, f *FSM, c Command) Result {
	t.Helper()
	res := f.ApplyCommand(c)
	if res.Err != nil {
		t.Fatalf("%s %s: %v", c.Op, c.ID, res.Err)
	}
	return res
}

func TestChanged(t *testing.T) {
	f := NewFSM()
	h1, anything, other := f.Changed("h1"), f.Changed(""), f.Changed("other")
	if f.Changed("h1") != h1 {
		t.Error("two Changed calls before a change gave different channels")
	}
	mustApply(t, f, Command{Op: OpCreate, Now: t0, Request: hold("h1", 1)})
	if !closed(h1) || !closed(anything) || closed(other) {
		t.Fatalf("after create: h1 %v, anything %v, other %v; want true, true, false", closed(h1), closed(anything), closed(other))
	}

	// Nothing wakes on a no-op or a refusal.
	h1, anything = f.Changed("h1"), f.Changed("")
	mustApply(t, f, Command{Op: OpExpire, Now: t0, ID: "h1"})
	if res := f.ApplyCommand(Command{Op: OpApprove, Now: t0, ID: "h1", By: alice}); res.Err == nil {
		t.Fatal("self approval succeeded")
	}
	if closed(h1) || closed(anything) {
		t.Fatal("a no-op or refused command closed a Changed channel")
	}

	// A waiter blocked on the channel wakes when the change applies.
	woke := make(chan Request)
	go func() {
		for {
			ch := f.Changed("h1")
			if r, _ := f.Get("h1"); r.State != StatePending {
				woke <- r
				return
			}
			<-ch
		}
	}()
	mustApply(t, f, Command{Op: OpApprove, Now: t0, ID: "h1", By: bob})
	select {
	case r := <-woke:
		if r.State != StateApproved {
			t.Fatalf("waiter saw %s, want approved", r.State)
		}
	case <-time.After(time.Minute):
		t.Fatal("waiter did not wake")
	}
	if !closed(anything) || closed(other) {
		t.Fatal("approve: the any-change channel is open or an unrelated one closed")
	}

	// A grant's id wakes at its creation and its revocation.
	g := f.Changed("g-gr")
	mustApply(t, f, Command{Op: OpCreate, Now: t0, Request: &Request{
		ID: "gr", Kind: KindGrant, Requester: alice, ExpiresAt: t0.Add(time.Hour),
		ApproverGroups: []string{"sre"}, ApprovalsRequired: 1, Duration: time.Hour,
	}})
	if closed(g) {
		t.Fatal("creating request gr woke its future grant's watchers")
	}
	mustApply(t, f, Command{Op: OpApprove, Now: t0, ID: "gr", By: bob})
	if !closed(g) {
		t.Fatal("the grant's creation did not wake its watchers")
	}
	g = f.Changed("g-gr")
	mustApply(t, f, Command{Op: OpRevoke, Now: t0, GrantID: "g-gr", By: alice})
	if !closed(g) {
		t.Fatal("revoke did not wake the grant's watchers")
	}

	// Restore wakes everybody.
	snap := snapshotBytes(t, f)
	if err := f.Restore(readCloser(snap)); err != nil {
		t.Fatal(err)
	}
	if !closed(other) {
		t.Fatal("Restore did not wake an unrelated watcher")
	}
}

func TestResultsAndReadsAreCopies(t *testing.T) {
	f := NewFSM()
	in := hold("h1", 1)
	res := mustApply(t, f, Command{Op: OpCreate, Now: t0, Request: in})
	in.Requester.Groups[0] = "changed-input"
	res.Request.ApproverGroups[0] = "changed-result"
	got, _ := f.Get("h1")
	got.Requester.Groups[0] = "changed-get"
	by := Person{User: "bob", Groups: []string{"sre"}}
	res = mustApply(t, f, Command{Op: OpApprove, Now: t0, ID: "h1", By: by})
	by.Groups[0] = "changed-by"
	res.Request.Approvals[0].By.User = "changed-result"
	f.Requests(Filter{})[0].Approvals[0].By.Groups[0] = "changed-list"

	r, _ := f.Get("h1")
	if r.Requester.Groups[0] != "dev" || r.ApproverGroups[0] != "sre" ||
		r.Approvals[0].By.User != "bob" || r.Approvals[0].By.Groups[0] != "sre" {
		t.Fatalf("state shares memory with a command, result or read: %+v", r)
	}
}

func TestRequestsAndGrantsFilterAndOrder(t *testing.T) {
	f := NewFSM()
	// Created out of id order, two at the same instant.
	for _, c := range []struct {
		id   string
		at   time.Duration
		user string
		kind Kind
	}{
		{"c", 0, "alice", KindHold}, {"b", time.Second, "alice", KindGrant},
		{"a", time.Second, "dave", KindGrant}, {"d", -time.Second, "dave", KindHold},
	} {
		r := &Request{ID: c.id, Kind: c.kind, Requester: Person{User: c.user}, ExpiresAt: t0.Add(time.Hour),
			ApproverGroups: []string{"sre"}, ApprovalsRequired: 1, Duration: time.Hour}
		mustApply(t, f, Command{Op: OpCreate, Now: t0.Add(c.at), Request: r})
	}
	ids := func(rs []Request) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		filter Filter
		want   string
	}{
		{Filter{}, "d,c,a,b"},
		{Filter{Kind: KindGrant}, "a,b"},
		{Filter{Requester: "alice"}, "c,b"},
		{Filter{Kind: KindHold, Requester: "dave"}, "d"},
		{Filter{State: StateApproved}, ""},
	} {
		if got := ids(f.Requests(tc.filter)); got != tc.want {
			t.Errorf("Requests(%+v) = %q, want %q", tc.filter, got, tc.want)
		}
	}

	mustApply(t, f, Command{Op: OpApprove, Now: t0.Add(2 * time.Second), ID: "b", By: carol})
	mustApply(t, f, Command{Op: OpApprove, Now: t0.Add(time.Second), ID: "a", By: carol})
	mustApply(t, f, Command{Op: OpRevoke, Now: t0.Add(3 * time.Second), GrantID: "g-a", By: carol})
	var grants []string
	for _, g := range f.Grants("") {
		grants = append(grants, g.ID)
	}
	if got := strings.Join(grants, ","); got != "g-a,g-b" {
		t.Errorf("Grants(\"\") = %q, want g-a,g-b (revoked ones included, by NotBefore)", got)
	}
	if got := f.Grants("alice"); len(got) != 1 || got[0].ID != "g-b" || !got[0].ActiveAt(t0.Add(time.Minute)) {
		t.Errorf("Grants(alice) = %+v, want g-b, active", got)
	}
	if g, ok := f.Grant("g-a"); !ok || g.ActiveAt(t0.Add(time.Minute)) {
		t.Errorf("Grant(g-a) = %+v, %v; want a revoked grant", g, ok)
	}
	if r, ok := f.Get("a"); !ok || r.GrantID != "g-a" || r.State != StateApproved {
		t.Errorf("Get(a) = %+v, %v; want approved with grant g-a", r, ok)
	}
}

// TestConcurrentReads runs readers and watchers alongside the writer; it
// is for the race detector.
func TestConcurrentReads(t *testing.T) {
	steps := loadTranscript(t)
	f := NewFSM()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				ch := f.Changed("")
				_ = f.Requests(Filter{Kind: KindHold})
				_ = f.Grants("")
				_, _ = f.Get("h1")
				_ = f.AppliedIndex()
				select {
				case <-ch:
				case <-stop:
					return
				}
			}
		})
	}
	for i, s := range steps {
		b, err := json.Marshal(s.Cmd)
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(&raft.Log{Index: uint64(i + 1), Data: b})
		if i == len(steps)/2 {
			if _, err := f.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if len(f.Requests(Filter{})) == 0 {
		t.Fatal("no requests after the transcript")
	}
}
