package raftnode

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/cluster"
)

var (
	t0    = time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	alice = cluster.Person{User: "alice", Groups: []string{"dev"}}
	bob   = cluster.Person{User: "bob", Groups: []string{"sre"}}
)

// testCtx is a generous bound for waits that normally take milliseconds.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testConfig(t *testing.T, dir string) Config {
	return Config{
		ID:      "node-1",
		DataDir: dir,
		FSM:     cluster.NewFSM(),
		Log:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// open opens a node on dir and closes it at the end of the test.
func open(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// apply applies c and fails the test on any error, the FSM's included.
func apply(t *testing.T, n *Node, c cluster.Command) cluster.Result {
	t.Helper()
	res, err := n.Apply(testCtx(t), c)
	if err != nil {
		t.Fatalf("%s %s: %v", c.Op, c.ID, err)
	}
	if res.Err != nil {
		t.Fatalf("%s %s: refused: %v", c.Op, c.ID, res.Err)
	}
	return res
}

func createHold(id string) cluster.Command {
	return cluster.Command{Op: cluster.OpCreate, Now: t0, Request: &cluster.Request{
		ID: id, Kind: cluster.KindHold, Requester: alice, ExpiresAt: t0.Add(time.Hour),
		ApproverGroups: []string{"sre"}, ApprovalsRequired: 1, Fingerprint: "fp-" + id,
	}}
}

func createGrant(id string) cluster.Command {
	return cluster.Command{Op: cluster.OpCreate, Now: t0, Request: &cluster.Request{
		ID: id, Kind: cluster.KindGrant, Requester: alice, ExpiresAt: t0.Add(time.Hour),
		ApproverGroups: []string{"sre"}, ApprovalsRequired: 1, Duration: time.Hour,
		Scope: cluster.Scope{Verbs: []string{"get"}, Namespaces: []string{"prod"}},
	}}
}

func approve(id string, at time.Duration) cluster.Command {
	return cluster.Command{Op: cluster.OpApprove, Now: t0.Add(at), ID: id, By: bob}
}

func TestReopenRestoresState(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot bool
	}{{"log replay", false}, {"snapshot and log", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			if tc.snapshot {
				cfg.SnapshotThreshold = 2 // keeps 2 entries behind a snapshot
			}
			n := open(t, cfg)
			apply(t, n, createHold("h1"))
			apply(t, n, createGrant("gr1"))
			if res := apply(t, n, approve("gr1", time.Minute)); res.Grant == nil {
				t.Fatal("approving gr1 made no grant")
			}
			if tc.snapshot {
				if err := n.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			apply(t, n, createHold("h2"))
			apply(t, n, approve("h1", 2*time.Minute))
			wantReqs, wantGrants := n.FSM().Requests(cluster.Filter{}), n.FSM().Grants("")
			wantIndex := n.FSM().AppliedIndex()
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}

			cfg.FSM = cluster.NewFSM()
			n = open(t, cfg)
			if tc.snapshot {
				first, err := n.store.FirstIndex()
				if err != nil {
					t.Fatal(err)
				}
				if first <= 1 {
					t.Errorf("log starts at %d after a snapshot; want it compacted, so the state must come from the snapshot", first)
				}
			}
			if got := n.FSM().Requests(cluster.Filter{}); !reflect.DeepEqual(got, wantReqs) {
				t.Errorf("requests after reopen:\n%+v\nwant\n%+v", got, wantReqs)
			}
			if got := n.FSM().Grants(""); !reflect.DeepEqual(got, wantGrants) {
				t.Errorf("grants after reopen:\n%+v\nwant\n%+v", got, wantGrants)
			}
			if got := n.FSM().AppliedIndex(); got != wantIndex {
				t.Errorf("FSM AppliedIndex after reopen = %d, want %d", got, wantIndex)
			}
			// And it goes on from there.
			if res := apply(t, n, cluster.Command{Op: cluster.OpUse, Now: t0.Add(3 * time.Minute), ID: "h1", UsedBy: "req-1"}); res.Request.State != cluster.StateUsed {
				t.Errorf("use after reopen: state %s, want used", res.Request.State)
			}
		})
	}
}

func TestPendingHoldSurvivesRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n := open(t, cfg)
	apply(t, n, createHold("h1"))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.FSM = cluster.NewFSM()
	n = open(t, cfg)
	if r, ok := n.FSM().Get("h1"); !ok || r.State != cluster.StatePending {
		t.Fatalf("after restart Get(h1) = %+v, %v; want it pending", r, ok)
	}
	changed := n.FSM().Changed("h1")
	if res := apply(t, n, approve("h1", time.Minute)); res.Request.State != cluster.StateApproved {
		t.Fatalf("approve after restart: state %s, want approved", res.Request.State)
	}
	select {
	case <-changed:
	default:
		t.Error("the approval did not wake the hold's watchers")
	}
}

func TestSecondOpenOfDataDirFails(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n := open(t, cfg)
	second := cfg
	second.FSM = cluster.NewFSM()
	second.ID = "node-2"
	n2, err := Open(testCtx(t), second)
	if err == nil {
		n2.Close()
		t.Fatal("a second Open of the same data directory succeeded")
	}
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second Open: %v, want ErrDataDirInUse", err)
	}
	// The first node is unharmed.
	apply(t, n, createHold("h1"))
}

func TestClosedNode(t *testing.T) {
	n := open(t, testConfig(t, t.TempDir()))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := n.Apply(testCtx(t), createHold("h1")); !errors.Is(err, cluster.ErrClusterShutdown) {
		t.Errorf("Apply after Close: %v, want ErrClusterShutdown", err)
	}
	if err := n.Ready(); !errors.Is(err, cluster.ErrClusterShutdown) {
		t.Errorf("Ready after Close: %v, want ErrClusterShutdown", err)
	}
	if err := n.Snapshot(); !errors.Is(err, cluster.ErrClusterShutdown) {
		t.Errorf("Snapshot after Close: %v, want ErrClusterShutdown", err)
	}
	if got := n.Stats().State; got != "Shutdown" {
		t.Errorf("Stats().State after Close = %q, want Shutdown", got)
	}
}

func TestApply(t *testing.T) {
	n := open(t, testConfig(t, t.TempDir()))
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready after Open: %v", err)
	}
	st := n.Stats()
	if st.State != "Leader" || st.Leader != "node-1" || st.CommitIndex == 0 || st.LastIndex < st.CommitIndex {
		t.Errorf("Stats after Open = %+v, want the leader, node-1, with entries committed", st)
	}

	// A refusal is the FSM's, not the replication layer's.
	res, err := n.Apply(testCtx(t), approve("nope", 0))
	if err != nil || !errors.Is(res.Err, cluster.ErrNotFound) {
		t.Errorf("approve of nothing = %v, %v; want a nil error and Result.Err ErrNotFound", res.Err, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := n.Apply(ctx, createHold("h1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context: %v, want context.Canceled", err)
	}
	if _, ok := n.FSM().Get("h1"); ok {
		t.Error("a command with a cancelled context was applied")
	}
	// The FSM has applied the entry by the time Apply returns.
	before := n.FSM().AppliedIndex()
	apply(t, n, createHold("h1"))
	if got := n.FSM().AppliedIndex(); got <= before {
		t.Errorf("FSM AppliedIndex after Apply = %d, want more than %d", got, before)
	}
	if _, ok := n.FSM().Get("h1"); !ok {
		t.Error("h1 is not readable right after Apply returned")
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	used := cluster.NewFSM()
	used.ApplyCommand(createHold("h1"))
	for name, mutate := range map[string]func(*Config){
		"no id":          func(c *Config) { c.ID = "" },
		"no data dir":    func(c *Config) { c.DataDir = "" },
		"no fsm":         func(c *Config) { c.FSM = nil },
		"used fsm":       func(c *Config) { c.FSM = used },
		"negative apply": func(c *Config) { c.ApplyTimeout = -time.Second },
	} {
		cfg := testConfig(t, t.TempDir())
		mutate(&cfg)
		if n, err := Open(testCtx(t), cfg); err == nil {
			n.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestReopenUnderAnotherIDFails(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n := open(t, cfg)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.ID, cfg.FSM = "node-2", cluster.NewFSM()
	n, err := Open(testCtx(t), cfg)
	if err == nil {
		n.Close()
		t.Fatal("Open under another id succeeded")
	}
	if errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not a voter") {
		t.Fatalf("Open under another id: %v, want a prompt 'not a voter' error", err)
	}
	// The data directory was released.
	cfg.ID, cfg.FSM = "node-1", cluster.NewFSM()
	open(t, cfg)
}

func TestRaftLogBridge(t *testing.T) {
	var buf bytes.Buffer
	hl := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	hl.Info("chatter")
	hl.Named("snapshot").Warn("slow disk", "took", "3s", "index", 7)
	hl.Error("failed to append", "error", errors.New("disk full"))
	got := buf.String()
	for _, want := range []string{
		`level=WARN msg="slow disk" module=raft.snapshot index=7 took=3s`,
		`level=ERROR msg="failed to append" module=raft error="disk full"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("bridged log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "chatter") {
		t.Errorf("info-level raft logs were passed on:\n%s", got)
	}
}
