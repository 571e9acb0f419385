package raftnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

func TestAddAndRemoveFromAFollower(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.start(2)
	_, followers := leader(t, nodes...)

	// n3 starts with neither Bootstrap nor Join: it waits to be added.
	cfg := c.config("n3")
	cfg.Bind = freeAddr(t)
	type opened struct {
		n   *Node
		err error
	}
	done := make(chan opened, 1)
	go func() {
		n, err := Open(testCtx(t), cfg)
		done <- opened{n, err}
	}()
	if err := followers[0].AddVoter(testCtx(t), "n3", cfg.Bind); err != nil {
		t.Fatalf("AddVoter from a follower: %v", err)
	}
	var n3 *Node
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("Open of the node waiting to be added: %v", o.err)
		}
		n3 = o.n
		t.Cleanup(func() { n3.Close() })
	case <-testCtx(t).Done():
		t.Fatal("Open did not return after the node was added")
	}
	// Adding it again changes nothing.
	if err := nodes[0].AddVoter(testCtx(t), "n3", cfg.Bind); err != nil {
		t.Errorf("AddVoter again: %v", err)
	}
	all := append(slices.Clone(nodes), n3)
	leader(t, all...)
	apply(t, n3, createHold("h1"))
	converged(t, all...)

	// Remove n2 from n3, whichever of them leads.
	if err := n3.RemoveServer(testCtx(t), "n2"); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	eventually(t, "n2 is gone", func() error {
		ms, err := nodes[0].Members()
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		if !reflect.DeepEqual(ids, []string{"n1", "n3"}) {
			return fmt.Errorf("members %v", ids)
		}
		return nil
	})
	if err := n3.RemoveServer(testCtx(t), "n2"); err != nil {
		t.Errorf("RemoveServer of a non-member: %v, want nil", err)
	}
}

func TestOpenWaitingToBeAddedEndsWithContext(t *testing.T) {
	c := newTestCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	n, err := Open(ctx, c.config("lonely"))
	if err == nil {
		n.Close()
		t.Fatal("Open with no state, Bootstrap or Join returned a node")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waits for a member to add it") {
		t.Errorf("Open = %v; want DeadlineExceeded, saying it waits to be added", err)
	}
}

func TestNewNodeCatchesUpFromSnapshot(t *testing.T) {
	c := newTestCluster(t)
	c.mutate = func(cfg *Config) { cfg.SnapshotThreshold = 2 }
	n1 := c.start(1)[0]
	for i := range 6 {
		apply(t, n1, createHold(fmt.Sprintf("h%d", i)))
	}
	apply(t, n1, approve("h0", time.Minute))
	if err := n1.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := n1.store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= 1 {
		t.Fatalf("the leader's log starts at %d after a snapshot; want it compacted", first)
	}

	cfg := c.config("n2")
	cfg.Join = []string{n1.Addr()}
	n2 := c.open(cfg)
	// Open returned after catching up: the state is there.
	if got, want := n2.FSM().Requests(cluster.Filter{}), n1.FSM().Requests(cluster.Filter{}); !reflect.DeepEqual(got, want) {
		t.Errorf("the new node's requests:\n%+v\nwant\n%+v", got, want)
	}
	snaps, err := n2.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) == 0 {
		t.Error("the new node has no snapshot: it did not catch up from one")
	}
	apply(t, n2, createHold("after"))
	converged(t, n1, n2)
}

func TestOpenRefusesBadNetworkConfig(t *testing.T) {
	ca := newCA(t, "ca")
	good := func() Config {
		return Config{ID: "n1", DataDir: t.TempDir(), FSM: cluster.NewFSM(), Bind: "127.0.0.1:0", TLS: ca.tlsConfig(t, "n1"), Bootstrap: true}
	}
	handler := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	for name, mutate := range map[string]func(*Config){
		"no TLS":              func(c *Config) { c.TLS = nil },
		"TLS without a CA":    func(c *Config) { c.TLS.RootCAs = nil },
		"TLS without a cert":  func(c *Config) { c.TLS.Certificates = nil },
		"join without bind":   func(c *Config) { c.Bind, c.TLS, c.Bootstrap, c.Join = "", nil, false, []string{"127.0.0.1:1"} },
		"TLS without bind":    func(c *Config) { c.Bind = "" },
		"unspecified host":    func(c *Config) { c.Bind = ":0" },
		"bad advertise":       func(c *Config) { c.Advertise = "0.0.0.0:7001" },
		"election too short":  func(c *Config) { c.HeartbeatTimeout, c.ElectionTimeout = time.Second, 500*time.Millisecond },
		"heartbeat too short": func(c *Config) { c.HeartbeatTimeout = time.Millisecond },
		"reserved handler": func(c *Config) {
			c.Handlers = map[string]func(context.Context, json.RawMessage) (any, error){"apply": handler}
		},
	} {
		cfg := good()
		mutate(&cfg)
		if n, err := Open(testCtx(t), cfg); err == nil {
			n.Close()
			t.Errorf("%s: Open succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// And the good one works; Bootstrap wins over Join, so that every
	// node can be given the same Join list.
	cfg := good()
	cfg.Join = []string{freeAddr(t)}
	n, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
}

func TestCallersTransport(t *testing.T) {
	log := testLog(t)
	a1, t1 := raft.NewInmemTransport("")
	a2, t2 := raft.NewInmemTransport("")
	t1.Connect(a2, t2)
	t2.Connect(a1, t1)
	cfg := func(id string, tr raft.Transport) Config {
		return Config{ID: id, DataDir: t.TempDir(), FSM: cluster.NewFSM(), Log: log, Transport: tr,
			HeartbeatTimeout: testHeartbeat, ElectionTimeout: testElection}
	}
	c1 := cfg("n1", t1)
	c1.Bootstrap = true
	n1 := open(t, c1)

	done := make(chan error, 1)
	var n2 *Node
	go func() {
		var err error
		n2, err = Open(testCtx(t), cfg("n2", t2))
		done <- err
	}()
	if err := n1.AddVoter(testCtx(t), "n2", string(a2)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Open of the added node: %v", err)
	}
	t.Cleanup(func() { n2.Close() })
	apply(t, n1, createHold("h1"))
	waitFSM(t, n2.FSM(), "h1 on n2", func(f *cluster.FSM) bool { _, ok := f.Get("h1"); return ok })
	// Without peer RPC a follower cannot forward.
	if _, err := n2.Apply(testCtx(t), createHold("h2")); !errors.Is(err, cluster.ErrNotLeader) {
		t.Errorf("Apply on a follower without peer RPC: %v, want ErrNotLeader", err)
	}
}

// TestJoinWithForeignCertificateFailsAtOnce: a node whose certificate the
// cluster's CA never signed gets a clear error from Open, not a wait until
// its context ends: certificates do not change by retrying.
func TestJoinWithForeignCertificateFailsAtOnce(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start(1)[0]
	cfg := c.config("n2")
	cfg.TLS = newCA(t, "another CA").tlsConfig(t, "n2")
	cfg.Join = []string{n1.Addr()}
	ctx := testCtx(t)
	n, err := Open(ctx, cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node with a foreign certificate joined")
	}
	if ctx.Err() != nil || !isCertificateError(err) {
		t.Fatalf("Open = %v (context: %v); want a certificate error before the context ends", err, ctx.Err())
	}
	if members, _ := n1.Members(); len(members) != 1 {
		t.Errorf("members after the refused join: %+v", members)
	}
}

// TestBootstrapNodeWithLostDataRejoins: the node configured to bootstrap,
// restarted with an empty data directory, joins the cluster that lives on
// without it (and gets its state), rather than bootstrapping a second one.
func TestBootstrapNodeWithLostDataRejoins(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.start(3)
	lead, _ := leader(t, nodes...)
	if _, err := lead.Apply(testCtx(t), createHold("before-loss")); err != nil {
		t.Fatal(err)
	}
	n1 := c.nodes["n1"]
	cfg := c.cfgs["n1"]
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.FSM = t.TempDir(), cluster.NewFSM() // the disk is gone
	cfg.Bootstrap, cfg.Join = true, []string{nodes[1].Addr(), nodes[2].Addr()}
	again := c.open(cfg)
	eventually(t, "n1 has the cluster's state", func() error {
		if _, ok := again.FSM().Get("before-loss"); !ok {
			return fmt.Errorf("request before-loss not on n1")
		}
		return nil
	})
	for _, n := range []*Node{again, nodes[1], nodes[2]} {
		if ms, err := n.Members(); err != nil || len(ms) != 3 {
			t.Errorf("%s members: %+v %v", n.ID(), ms, err)
		}
	}
}

// TestBootstrapNodeFirstStartWithPeersInParallel: on a first start, with
// every node given the same peer list and one of them Bootstrap, the nodes
// form one cluster whichever starts first.
func TestBootstrapNodeFirstStartWithPeersInParallel(t *testing.T) {
	c := newTestCluster(t)
	var cfgs []Config
	var addrs []string
	for i := 1; i <= 3; i++ {
		cfg := c.config(fmt.Sprintf("n%d", i))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Bind = ln.Addr().String()
		ln.Close()
		cfgs, addrs = append(cfgs, cfg), append(addrs, cfg.Bind)
	}
	cfgs[0].Bootstrap = true
	nodes := make([]*Node, 3)
	errs := make(chan error, 3)
	for i := range cfgs {
		cfgs[i].Join = addrs
		go func() {
			n, err := Open(testCtx(t), cfgs[i])
			if err == nil {
				t.Cleanup(func() { n.Close() })
				nodes[i] = n
			}
			errs <- err
		}()
	}
	for range cfgs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		eventually(t, n.ID()+" sees three members", func() error {
			if ms, err := n.Members(); err != nil || len(ms) != 3 {
				return fmt.Errorf("members %+v %v", ms, err)
			}
			return nil
		})
	}
}
