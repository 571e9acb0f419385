package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/cluster"
)

// Raft timeouts for the network tests: short, for loopback, but not so
// short that a busy -race run calls elections for nothing.
const (
	testHeartbeat = 250 * time.Millisecond
	testElection  = 250 * time.Millisecond
)

// testLog returns a logger writing to the test's output until the test
// ends; later writes (a transport goroutine noticing a closed connection)
// are dropped. Call it before opening nodes, so that its cleanup runs
// after theirs.
func testLog(t *testing.T) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, nil))
}

type testWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w == nil {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.w = nil
	w.mu.Unlock()
}

// testCluster is a set of nodes over real TLS on 127.0.0.1, all with
// certificates from one CA.
type testCluster struct {
	t     *testing.T
	ca    *testCA
	log   *slog.Logger
	nodes map[string]*Node
	cfgs  map[string]Config
	// mutate, if set, changes every node's Config before Open.
	mutate func(*Config)
}

func newTestCluster(t *testing.T) *testCluster {
	return &testCluster{t: t, ca: newCA(t, "kubegate cluster CA"), log: testLog(t),
		nodes: make(map[string]*Node), cfgs: make(map[string]Config)}
}

// config is a network Config for the node id on a fresh data directory.
func (c *testCluster) config(id string) Config {
	cfg := Config{
		ID: id, DataDir: c.t.TempDir(), FSM: cluster.NewFSM(), Log: c.log.With("node", id),
		Bind: "127.0.0.1:0", TLS: c.ca.tlsConfig(c.t, id),
		HeartbeatTimeout: testHeartbeat, ElectionTimeout: testElection,
	}
	if c.mutate != nil {
		c.mutate(&cfg)
	}
	return cfg
}

// open opens a node with cfg, which it records for reopen, and closes it at
// the end of the test.
func (c *testCluster) open(cfg Config) *Node {
	c.t.Helper()
	n, err := Open(testCtx(c.t), cfg)
	if err != nil {
		c.t.Fatalf("Open %s: %v", cfg.ID, err)
	}
	c.t.Cleanup(func() { n.Close() })
	cfg.Bind = n.Addr() // a restart keeps the address
	c.nodes[cfg.ID], c.cfgs[cfg.ID] = n, cfg
	return n
}

// start bootstraps n1 and joins n2..nN to it, and waits until every node
// sees all N members.
func (c *testCluster) start(size int) []*Node {
	c.t.Helper()
	cfg := c.config("n1")
	cfg.Bootstrap = true
	nodes := []*Node{c.open(cfg)}
	for i := 2; i <= size; i++ {
		cfg := c.config(fmt.Sprintf("n%d", i))
		cfg.Join = []string{nodes[0].Addr()}
		nodes = append(nodes, c.open(cfg))
	}
	for _, n := range nodes {
		eventually(c.t, n.ID()+" sees every member", func() error {
			ms, err := n.Members()
			if err != nil {
				return err
			}
			if len(ms) != size {
				return fmt.Errorf("members %+v", ms)
			}
			return nil
		})
	}
	return nodes
}

// reopen opens the closed node id again from its data directory, at its
// address, with a new FSM.
func (c *testCluster) reopen(id string) *Node {
	c.t.Helper()
	cfg := c.cfgs[id]
	cfg.FSM = cluster.NewFSM()
	return c.open(cfg)
}

// eventually waits until cond returns nil, failing the test with its last
// error after a generous deadline. It polls: some conditions (contact with
// a leader) have no event to wait on.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	ctx := testCtx(t)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// leader waits until one of nodes leads, is Ready, and every one of nodes
// knows it, and returns it and the others.
func leader(t *testing.T, nodes ...*Node) (lead *Node, followers []*Node) {
	t.Helper()
	eventually(t, "a leader everybody knows", func() error {
		lead, followers = nil, nil
		for _, n := range nodes {
			if n.Stats().State == "Leader" {
				lead = n
			} else {
				followers = append(followers, n)
			}
		}
		if lead == nil {
			return fmt.Errorf("no leader among %d nodes", len(nodes))
		}
		for _, n := range nodes {
			if err := n.Ready(); err != nil {
				return fmt.Errorf("%s: %w", n.ID(), err)
			}
			if id, _ := n.Leader(); id != lead.ID() {
				return fmt.Errorf("%s knows leader %q, not %s", n.ID(), id, lead.ID())
			}
		}
		return nil
	})
	return lead, followers
}

// waitFSM waits until cond holds on f, waking on f's changes.
func waitFSM(t *testing.T, f *cluster.FSM, what string, cond func(*cluster.FSM) bool) {
	t.Helper()
	ctx := testCtx(t)
	for {
		ch := f.Changed("")
		if cond(f) {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// snapshotOf is f's snapshot as bytes.
func snapshotOf(t *testing.T, f *cluster.FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := s.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

type bufSink struct{ bytes.Buffer }

func (*bufSink) ID() string    { return "buf" }
func (*bufSink) Cancel() error { return nil }
func (*bufSink) Close() error  { return nil }

// converged waits until every node's FSM has the same snapshot.
func converged(t *testing.T, nodes ...*Node) {
	t.Helper()
	eventually(t, "the FSMs converge", func() error {
		want := snapshotOf(t, nodes[0].FSM())
		for _, n := range nodes[1:] {
			if got := snapshotOf(t, n.FSM()); !bytes.Equal(got, want) {
				return fmt.Errorf("%s's state differs from %s's:\n%s\n%s", n.ID(), nodes[0].ID(), got, want)
			}
		}
		return nil
	})
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestThreeNodes(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.start(3)
	lead, followers := leader(t, nodes...)

	ms, err := followers[0].Members()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	leaders := 0
	for _, m := range ms {
		ids = append(ids, m.ID)
		if m.Suffrage != "Voter" {
			t.Errorf("member %+v is not a voter", m)
		}
		if m.Leader {
			leaders++
			if m.ID != lead.ID() || m.Address != lead.Addr() {
				t.Errorf("leader member %+v, want %s at %s", m, lead.ID(), lead.Addr())
			}
		}
	}
	if !reflect.DeepEqual(ids, []string{"n1", "n2", "n3"}) || leaders != 1 {
		t.Errorf("Members = %+v; want n1, n2, n3 with one leader", ms)
	}

	// A write on a follower is forwarded, and the follower reads it at once.
	f := followers[0]
	res := apply(t, f, createGrant("gr1"))
	if res.Request == nil || res.Request.State != cluster.StatePending {
		t.Fatalf("create via a follower: %+v", res)
	}
	if r, ok := f.FSM().Get("gr1"); !ok || r.State != cluster.StatePending {
		t.Fatalf("the follower does not read its own write: %+v, %v", r, ok)
	}
	res = apply(t, followers[1], approve("gr1", time.Minute))
	if res.Grant == nil || res.Request.State != cluster.StateApproved {
		t.Fatalf("approve via the other follower: %+v", res)
	}
	if _, ok := followers[1].FSM().Grant(res.Grant.ID); !ok {
		t.Fatal("the approving follower does not read the grant it made")
	}
	// The state machine's refusals come back from the leader as such.
	res, err = f.Apply(testCtx(t), approve("nope", 0))
	if err != nil || !errors.Is(res.Err, cluster.ErrNotFound) {
		t.Errorf("forwarded approve of nothing = %v, %v; want Result.Err ErrNotFound", res.Err, err)
	}
	apply(t, lead, createHold("h1"))
	converged(t, nodes...)

	st := f.Stats()
	if st.State != "Follower" || st.Leader != lead.ID() || st.NumPeers != 2 || st.Term == 0 || st.LastContact.IsZero() {
		t.Errorf("follower Stats = %+v", st)
	}
	if err := f.Sync(testCtx(t)); err != nil {
		t.Errorf("Sync on a follower: %v", err)
	}
}

func TestApprovalOnOneNodeReleasesHoldOnAnother(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.start(3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	apply(t, n3, createHold("h1"))
	waitFSM(t, n1.FSM(), "h1 on n1", func(f *cluster.FSM) bool { _, ok := f.Get("h1"); return ok })
	// The gateway holding the call on n1 watches the request.
	changed := n1.FSM().Changed("h1")
	if r, _ := n1.FSM().Get("h1"); r.State != cluster.StatePending {
		t.Fatalf("h1 on n1 is %s, want pending", r.State)
	}
	apply(t, n2, approve("h1", time.Minute))
	select {
	case <-changed:
	case <-testCtx(t).Done():
		t.Fatal("the approval on n2 did not wake the watcher on n1")
	}
	if r, _ := n1.FSM().Get("h1"); r.State != cluster.StateApproved {
		t.Fatalf("h1 on n1 is %s after the wake-up, want approved", r.State)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newTestCluster(t)
	c.mutate = func(cfg *Config) { cfg.Handlers = echoHandlers(cfg.ID) }
	nodes := c.start(3)
	_, followers := leader(t, nodes...)
	apply(t, followers[0], createHold("h1"))
	if _, errs := followers[1].CallAll(testCtx(t), "test.echo", "x"); len(errs) != 0 {
		t.Fatal(errs)
	}
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the nodes' goroutines end", func() error {
		if now := runtime.NumGoroutine(); now > before {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines, %d before:\n%s", now, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}
