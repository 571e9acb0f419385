package raftnode

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

// Ready returns nil when the node can serve reads: it knows a leader and
// either leads (Raft makes a leader that has not reached a quorum within
// half a HeartbeatTimeout step down) or, as a follower, heard from the
// leader within the last 2×Config.HeartbeatTimeout. Otherwise the error
// says why: cluster.ErrClusterShutdown after Close, else it wraps
// cluster.ErrNotLeader.
func (n *Node) Ready() error {
	state := n.raft.State()
	if n.closed.Load() || state == raft.Shutdown {
		return cluster.ErrClusterShutdown
	}
	_, leader := n.raft.LeaderWithID()
	if leader == "" {
		return fmt.Errorf("%w: no leader: this node (%s) cannot reach a quorum", cluster.ErrNotLeader, state)
	}
	if state == raft.Leader {
		return nil
	}
	servers, err := n.servers()
	if err != nil {
		return err
	}
	if len(servers) == 1 && servers[0].ID == raft.ServerID(n.cfg.ID) {
		return fmt.Errorf("%w: this node is the only voter but is %s", cluster.ErrNotLeader, state)
	}
	bound := 2 * n.cfg.HeartbeatTimeout
	last := n.raft.LastContact()
	if last.IsZero() {
		return fmt.Errorf("%w: no contact with the leader %s yet", cluster.ErrNotLeader, leader)
	}
	if since := time.Since(last); since > bound {
		return fmt.Errorf("%w: no contact with the leader %s for %s (more than %s)", cluster.ErrNotLeader, leader, since.Round(time.Millisecond), bound)
	}
	return nil
}

// Sync waits until this node's FSM has applied every command the leader
// had applied when Sync began (the leader confirms its leadership by
// committing a barrier entry first), so that a read of FSM() after Sync
// sees every write acknowledged anywhere before Sync was called. It costs
// a log entry on the leader and, on a follower, a peer RPC. It is bounded
// by ctx and Config.ApplyTimeout and fails with cluster.ErrNotLeader when
// there is no leader.
func (n *Node) Sync(ctx context.Context) error {
	if n.closed.Load() {
		return fmt.Errorf("syncing: %w", cluster.ErrClusterShutdown)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	var index uint64
	var reply syncReply
	local := func(ctx context.Context) (err error) {
		index, err = n.syncLocal(ctx)
		return err
	}
	forwarded, err := n.onLeader(ctx, local, methodSync, struct{}{}, &reply)
	if err != nil {
		return fmt.Errorf("syncing with the leader: %w", n.withReadiness(ctx, err))
	}
	if forwarded {
		index = reply.Index
	}
	if err := n.fsm.waitApplied(ctx, index); err != nil {
		return fmt.Errorf("syncing with the leader: %w", err)
	}
	return nil
}

// syncReply is the sync method's reply.
type syncReply struct {
	// Index is the leader's FSM applied index after the barrier.
	Index uint64 `json:"index"`
}

// serveSync is the sync method: syncLocal, if this node leads.
func (n *Node) serveSync(ctx context.Context) (syncReply, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	index, err := n.syncLocal(ctx)
	return syncReply{Index: index}, err
}

// syncLocal commits a barrier through this node's Raft, which must lead,
// and returns the FSM's applied index after it.
func (n *Node) syncLocal(ctx context.Context) (uint64, error) {
	if err := wait(ctx, n.raft.Barrier(remaining(ctx))); err != nil {
		return 0, err
	}
	return n.cfg.FSM.AppliedIndex(), nil
}
