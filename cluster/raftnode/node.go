package raftnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/kubegate/kubegate/cluster"
)

const (
	// lockTimeout bounds the wait for the bolt file lock: a second node on
	// the same data directory fails rather than hanging.
	lockTimeout = time.Second
	// retainSnapshots is how many snapshots the data directory keeps.
	retainSnapshots = 2
	// transportTimeout bounds Raft's I/O to a peer (scaled up for
	// snapshots).
	transportTimeout = 10 * time.Second
	// transportPool is how many idle connections Raft keeps per peer.
	transportPool = 3
)

// Node is a running Raft node applying commands to a cluster.FSM. Its
// methods are safe for concurrent use.
type Node struct {
	cfg    Config // with defaults; Advertise is the address in use
	raft   *raft.Raft
	store  *raftboltdb.BoltStore
	snaps  raft.SnapshotStore
	fsm    *appliedFSM
	peers  *peerListener // nil without Bind
	dialer *peerDialer   // nil without Bind

	// leaderChanged fires on Raft's leader and state changes.
	leaderChanged signal
	observer      *raft.Observer
	observing     sync.WaitGroup
	stopObserving chan struct{}

	// ctx ends at Close, ending the peer RPC handlers.
	ctx    context.Context
	cancel context.CancelFunc
	// waitingToBeAdded is set when the node started with no state and
	// neither Bootstrap nor Join.
	waitingToBeAdded bool
	// bootstrapIfAlone is set for a node that starts with no state, is
	// configured to bootstrap, and knows peers: it joins them if they have
	// a cluster, and bootstraps only if none does.
	bootstrapIfAlone bool

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Stats is a snapshot of a node's Raft status, for operators and tests.
type Stats struct {
	// State is the Raft state: Follower, Candidate, Leader or Shutdown.
	State string
	// Leader is the id of the leader this node knows, "" if none.
	Leader string
	// Term is the node's current Raft term.
	Term uint64
	// NumPeers is how many other voters the node's configuration has.
	NumPeers int
	// LastContact is when this node last heard from a leader while it was
	// a follower; zero if never. It means nothing on the leader itself.
	LastContact time.Time
	// LastIndex is the index of the last entry in the node's log and
	// CommitIndex of the last one known committed. AppliedIndex is the last
	// entry Raft has handed to the FSM, Raft's own entries included; it is
	// updated just after the hand-over, so for a moment it may trail what
	// cluster.FSM.AppliedIndex says.
	LastIndex, AppliedIndex, CommitIndex uint64
}

// Open opens the node whose state is in cfg.DataDir, or creates it, and
// starts it. With existing state it restores the latest snapshot, replays
// the log after it and rejoins its cluster (Bootstrap and Join are
// ignored). With none it bootstraps, joins or waits to be added: see
// Config.Bootstrap and Config.Join (the in-memory node always
// bootstraps).
//
// Open returns once the node knows a leader (a node that bootstrapped
// alone: is the leader) and its FSM has applied everything the leader had
// applied then, so that reads after Open see the cluster's state; or with
// an error when ctx ends first.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("creating raft data directory: %w", err)
	}
	dbPath := filepath.Join(cfg.DataDir, "raft.db")
	store, err := raftboltdb.New(raftboltdb.Options{Path: dbPath, BoltOptions: &bbolt.Options{Timeout: lockTimeout}})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w (another node holds its lock): %w", dbPath, ErrDataDirInUse, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dbPath, err)
	}
	n, join, err := start(cfg, store)
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	if join {
		joinf := n.join
		if n.bootstrapIfAlone {
			joinf = n.joinOrBootstrap
		}
		if err := joinf(ctx); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	}
	if err := n.waitReady(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

// start creates the node's transport and Raft instance over store,
// bootstrapping it if so configured. join reports that the node must
// still join its cluster.
func start(cfg Config, store *raftboltdb.BoltStore) (n *Node, join bool, err error) {
	rc := cfg.raftConfig()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, retainSnapshots, rc.Logger)
	if err != nil {
		return nil, false, fmt.Errorf("opening snapshot store: %w", err)
	}
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return nil, false, fmt.Errorf("reading raft state: %w", err)
	}

	n = &Node{cfg: cfg, store: store, snaps: snaps, fsm: &appliedFSM{fsm: cfg.FSM}, stopObserving: make(chan struct{})}
	var trans raft.Transport
	inmem := cfg.Bind == "" && cfg.Transport == nil
	switch {
	case cfg.Bind != "":
		server, client := peerTLS(cfg.TLS, cfg.PeerNames)
		n.dialer = &peerDialer{tls: client, conns: &connSet{}}
		if n.peers, err = listenPeers(cfg.Bind, cfg.Advertise, server, n.dialer, cfg.Log); err != nil {
			return nil, false, err
		}
		trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: n.peers, MaxPool: transportPool, Timeout: transportTimeout, Logger: rc.Logger,
		})
	case cfg.Transport != nil:
		trans = cfg.Transport
	default:
		_, trans = raft.NewInmemTransport(raft.ServerAddress(cfg.ID))
	}
	n.cfg.Advertise = string(trans.LocalAddr())
	closeTrans := func() {
		if c, ok := trans.(raft.WithClose); ok && cfg.Transport == nil {
			c.Close()
		}
	}

	// A bootstrap node that also knows peers asks them first (Open's
	// joinOrBootstrap): if it lost its data directory, its cluster lives
	// on without it, and bootstrapping again would split it in two.
	n.bootstrapIfAlone = !existing && !inmem && cfg.Bootstrap && len(cfg.Join) > 0
	if !existing && (inmem || cfg.Bootstrap) && !n.bootstrapIfAlone {
		self := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, self); err != nil {
			closeTrans()
			return nil, false, fmt.Errorf("bootstrapping a cluster of this node: %w", err)
		}
	}
	n.waitingToBeAdded = !existing && !inmem && !cfg.Bootstrap && len(cfg.Join) == 0
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, trans)
	if err != nil {
		closeTrans()
		return nil, false, fmt.Errorf("starting raft: %w", err)
	}
	n.raft = r
	if inmem && !n.isVoter() {
		return nil, false, errors.Join(
			fmt.Errorf("node %q is not a voter in the cluster stored in %s (was the data directory created under another id?)", cfg.ID, cfg.DataDir),
			r.Shutdown().Error())
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.observe()
	if n.peers != nil {
		n.peers.serve(n.serveRPC)
	}
	return n, !existing && !inmem && len(cfg.Join) > 0 && (!cfg.Bootstrap || n.bootstrapIfAlone), nil
}

// observe passes Raft's leader and state changes on to n.leaderChanged.
func (n *Node) observe() {
	ch := make(chan raft.Observation, 16)
	n.observer = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	n.observing.Go(func() {
		for {
			select {
			case <-ch:
				n.leaderChanged.notify()
			case <-n.stopObserving:
				return
			}
		}
	})
}

// isVoter reports whether this node is a voter in the latest configuration.
func (n *Node) isVoter() bool {
	servers, _ := n.servers()
	for _, s := range servers {
		if s.ID == raft.ServerID(n.cfg.ID) && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

// waitReady waits for Ready and then Syncs, so that reads after Open see
// the cluster's state.
func (n *Node) waitReady(ctx context.Context) error {
	for {
		changed := n.leaderChanged.wait()
		err := n.Ready()
		if err == nil {
			break
		}
		if errors.Is(err, cluster.ErrClusterShutdown) {
			return fmt.Errorf("waiting for a raft leader: %w", err)
		}
		// Contact with the leader is a matter of time too: look again now
		// and then.
		t := time.NewTimer(n.retryInterval())
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if n.waitingToBeAdded {
				return fmt.Errorf("this node has no state and neither Config.Bootstrap nor Config.Join is set, so it waits for a member to add it (AddVoter %s %s): %w (%w)",
					n.cfg.ID, n.cfg.Advertise, ctxErr(ctx), err)
			}
			return fmt.Errorf("waiting for a raft leader: %w (%w)", ctxErr(ctx), err)
		}
		t.Stop()
	}
	if n.dialer == nil && n.raft.State() != raft.Leader {
		// A follower on a caller's Transport cannot ask the leader how far
		// to catch up; it goes on catching up as Raft sends it entries.
		return nil
	}
	if err := n.Sync(ctx); err != nil {
		return fmt.Errorf("catching up with the cluster: %w", err)
	}
	return nil
}

// retryInterval is how long the node waits before it looks again at a
// condition no event announces: Raft's heartbeat interval.
func (n *Node) retryInterval() time.Duration {
	return max(n.cfg.HeartbeatTimeout/10, 5*time.Millisecond)
}

// bound bounds ctx by Config.ApplyTimeout.
func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, n.cfg.ApplyTimeout, ErrApplyTimeout)
}

// ID is the node's id, Config.ID.
func (n *Node) ID() string { return n.cfg.ID }

// Addr is the address the other nodes reach this one at: Config.Advertise,
// or the address its listener is bound to, or its transport's address.
func (n *Node) Addr() string { return n.cfg.Advertise }

// Leader returns the id and address of the leader this node knows; both
// are "" when it knows none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// FSM returns the state machine the node drives, for reads.
func (n *Node) FSM() *cluster.FSM { return n.cfg.FSM }

// Snapshot makes Raft take a snapshot now, and compact the log behind it.
// With nothing applied since the last snapshot it does nothing.
func (n *Node) Snapshot() error {
	if n.closed.Load() {
		return cluster.ErrClusterShutdown
	}
	err := n.raft.Snapshot().Error()
	switch {
	case err == nil, errors.Is(err, raft.ErrNothingNewToSnapshot):
		return nil
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("taking a snapshot: %w: %w", cluster.ErrClusterShutdown, err)
	}
	return fmt.Errorf("taking a snapshot: %w", err)
}

// Stats returns the node's Raft status.
func (n *Node) Stats() Stats {
	_, leader := n.raft.LeaderWithID()
	rs := n.raft.Stats()
	term, _ := strconv.ParseUint(rs["term"], 10, 64)
	peers, _ := strconv.Atoi(rs["num_peers"])
	return Stats{
		State:        n.raft.State().String(),
		Leader:       string(leader),
		Term:         term,
		NumPeers:     peers,
		LastContact:  n.raft.LastContact(),
		LastIndex:    n.raft.LastIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
	}
}

// Close shuts Raft down, closes the peer listener and every peer
// connection, waits for the peer RPC handlers (whose contexts it ends) to
// return, and closes the store. It does not hand leadership over first:
// call TransferLeadership before, for a rolling restart. Later calls
// return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.cancel()
		err := n.raft.Shutdown().Error() // closes the transport, so the listener
		if n.peers != nil {
			n.peers.Close()
			n.peers.wait()
		}
		n.raft.DeregisterObserver(n.observer)
		close(n.stopObserving)
		n.observing.Wait()
		n.leaderChanged.notify()
		n.closeErr = errors.Join(err, n.store.Close())
	})
	return n.closeErr
}
