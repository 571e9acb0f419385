package raftnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/kubegate/kubegate/cluster"
)

// ErrDataDirInUse is returned by Open when another node, in this process
// or another, has the data directory open.
var ErrDataDirInUse = errors.New("raft data directory is in use")

// ErrApplyTimeout is returned by Node.Apply when the cluster did not apply
// the command within Config.ApplyTimeout.
var ErrApplyTimeout = errors.New("timed out waiting for the cluster to apply the command")

const (
	// lockTimeout bounds the wait for the bolt file lock: a second node on
	// the same data directory fails rather than hanging.
	lockTimeout = time.Second
	// retainSnapshots is how many snapshots the data directory keeps.
	retainSnapshots = 2
)

// Config configures a Node. ID, DataDir and FSM are required.
type Config struct {
	// ID is the node's id in the Raft cluster. Required.
	ID string
	// DataDir holds raft.db (log and stable store) and snapshots/. It is
	// created with mode 0700 if missing. Required.
	DataDir string
	// FSM is the state machine the node drives. It must be new (empty): the
	// node fills it from DataDir. Required.
	FSM *cluster.FSM
	// Log receives Raft's warnings and errors. Nil means slog.Default().
	Log *slog.Logger
	// SnapshotThreshold is how many log entries since the last snapshot
	// make Raft take another; as many entries are kept behind a snapshot
	// for lagging followers. Zero means 1024.
	SnapshotThreshold uint64
	// ApplyTimeout bounds Node.Apply (a shorter context deadline wins) and
	// the catch-up wait in Open. Zero means 10s.
	ApplyTimeout time.Duration
	// Transport connects the node to its peers. Nil means a single-node
	// cluster on an in-memory transport whose address is ID, with short
	// election timeouts since there is nobody to wait for.
	Transport raft.Transport
}

// Node is a running Raft node applying commands to a cluster.FSM.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
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
	// LastIndex is the index of the last entry in the node's log and
	// CommitIndex of the last one known committed. AppliedIndex is the last
	// entry Raft has handed to the FSM, Raft's own entries included; it is
	// updated just after the hand-over, so for a moment it may trail what
	// cluster.FSM.AppliedIndex says.
	LastIndex, AppliedIndex, CommitIndex uint64
}

func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.ID == "":
		return cfg, errors.New("raftnode: Config.ID is required")
	case cfg.DataDir == "":
		return cfg, errors.New("raftnode: Config.DataDir is required")
	case cfg.FSM == nil:
		return cfg, errors.New("raftnode: Config.FSM is required")
	case cfg.ApplyTimeout < 0:
		return cfg, fmt.Errorf("raftnode: Config.ApplyTimeout %s is negative", cfg.ApplyTimeout)
	case cfg.FSM.AppliedIndex() != 0 || len(cfg.FSM.Requests(cluster.Filter{})) != 0 || len(cfg.FSM.Grants("")) != 0:
		return cfg, errors.New("raftnode: Config.FSM must be empty (use cluster.NewFSM); the node fills it from its data directory")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 1024
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	return cfg, nil
}

// Open opens the node whose state is in cfg.DataDir, or creates it. With no
// existing state it bootstraps a cluster of this node alone; with existing
// state it restores the latest snapshot and replays the log after it. Open
// returns once the node knows a leader (a single node: is the leader) and,
// if it leads, the FSM has applied the whole log; or with an error when
// ctx ends first.
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
	n, err := start(cfg, store)
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	if err := n.waitReady(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

// start creates the Raft instance over store, bootstrapping it if new.
func start(cfg Config, store *raftboltdb.BoltStore) (*Node, error) {
	hlog := newHCLogger(cfg.Log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, retainSnapshots, hlog)
	if err != nil {
		return nil, fmt.Errorf("opening snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hlog
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.SnapshotThreshold
	trans := cfg.Transport
	if trans == nil {
		_, trans = raft.NewInmemTransport(raft.ServerAddress(cfg.ID))
		rc.HeartbeatTimeout = 100 * time.Millisecond
		rc.ElectionTimeout = 100 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
	}

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return nil, fmt.Errorf("reading raft state: %w", err)
	}
	if !existing {
		self := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, self); err != nil {
			return nil, fmt.Errorf("bootstrapping a single-node cluster: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, cfg.FSM, store, store, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("starting raft: %w", err)
	}
	n := &Node{cfg: cfg, raft: r, store: store}
	if cfg.Transport == nil && !n.isVoter() {
		return nil, errors.Join(
			fmt.Errorf("node %q is not a voter in the cluster stored in %s (was the data directory created under another id?)", cfg.ID, cfg.DataDir),
			r.Shutdown().Error())
	}
	return n, nil
}

// isVoter reports whether this node is a voter in the latest configuration.
func (n *Node) isVoter() bool {
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.ID) && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

// waitReady waits for Ready and then, on the leader, for the FSM to apply
// everything in the log, so that reads after Open see the restored state.
func (n *Node) waitReady(ctx context.Context) error {
	obs := make(chan raft.Observation, 16)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(o)
	defer n.raft.DeregisterObserver(o)
	for {
		err := n.Ready()
		if err == nil {
			break
		}
		if errors.Is(err, cluster.ErrClusterShutdown) {
			return fmt.Errorf("waiting for a raft leader: %w", err)
		}
		select {
		case <-obs:
		case <-ctx.Done():
			return fmt.Errorf("waiting for a raft leader: %w (%w)", ctx.Err(), err)
		}
	}
	if n.raft.State() != raft.Leader {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, n.cfg.ApplyTimeout, ErrApplyTimeout)
	defer cancel()
	if err := wait(ctx, n.raft.Barrier(remaining(ctx))); err != nil {
		return fmt.Errorf("replaying the raft log: %w", err)
	}
	return nil
}

// Apply proposes c to the cluster and returns the FSM's Result, whose Err
// is the state machine's refusal. The error is the replication layer's:
// cluster.ErrNotLeader (propose on the leader), cluster.ErrClusterShutdown,
// ErrApplyTimeout, or ctx's error. After ErrNotLeader for a lost leadership,
// a timeout or ctx's end, c may still be applied: commands carry their
// ids, so a retry is refused as a duplicate or joins the first attempt.
func (n *Node) Apply(ctx context.Context, c cluster.Command) (cluster.Result, error) {
	if n.closed.Load() {
		return cluster.Result{}, fmt.Errorf("applying %s: %w", c.Op, cluster.ErrClusterShutdown)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return cluster.Result{}, fmt.Errorf("encoding %s command: %w", c.Op, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, n.cfg.ApplyTimeout, ErrApplyTimeout)
	defer cancel()
	if ctx.Err() != nil {
		return cluster.Result{}, fmt.Errorf("applying %s: %w", c.Op, ctxErr(ctx))
	}
	f := n.raft.Apply(data, remaining(ctx))
	if err := wait(ctx, f); err != nil {
		return cluster.Result{}, fmt.Errorf("applying %s: %w", c.Op, err)
	}
	res, ok := f.Response().(cluster.Result)
	if !ok {
		return cluster.Result{}, fmt.Errorf("applying %s: the state machine returned a %T, not a cluster.Result", c.Op, f.Response())
	}
	return res, nil
}

// remaining is the time left until ctx's deadline, at least a millisecond
// (Raft reads a zero timeout as none).
func remaining(ctx context.Context) time.Duration {
	d, _ := ctx.Deadline() // always set: callers add ApplyTimeout
	return max(time.Until(d), time.Millisecond)
}

// ctxErr is ctx's error, with its cause (ErrApplyTimeout) when that differs.
func ctxErr(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || cause == err {
		return err
	}
	return fmt.Errorf("%w: %w", cause, err)
}

// wait waits for f, or for ctx to end, and translates Raft's errors.
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w (the outcome is unknown)", ctxErr(ctx))
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", cluster.ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", cluster.ErrClusterShutdown, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrApplyTimeout, err)
	}
	return err
}

// FSM returns the state machine the node drives, for reads.
func (n *Node) FSM() *cluster.FSM { return n.cfg.FSM }

// Ready returns nil when the node can serve: it knows a leader and, if it
// is the cluster's only voter, is that leader. Otherwise the error says
// why.
func (n *Node) Ready() error {
	state := n.raft.State()
	if n.closed.Load() || state == raft.Shutdown {
		return cluster.ErrClusterShutdown
	}
	_, leader := n.raft.LeaderWithID()
	if leader == "" {
		return fmt.Errorf("%w: no leader known (this node is %s)", cluster.ErrNotLeader, state)
	}
	servers := n.raft.GetConfiguration().Configuration().Servers
	if len(servers) == 1 && servers[0].ID == raft.ServerID(n.cfg.ID) && state != raft.Leader {
		return fmt.Errorf("%w: this node is the only voter but is %s", cluster.ErrNotLeader, state)
	}
	return nil
}

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
	return Stats{
		State:        n.raft.State().String(),
		Leader:       string(leader),
		LastIndex:    n.raft.LastIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
	}
}

// Close shuts Raft down (closing its transport) and closes the store.
// Later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.closeErr = errors.Join(n.raft.Shutdown().Error(), n.store.Close())
	})
	return n.closeErr
}
