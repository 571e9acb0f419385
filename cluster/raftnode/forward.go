package raftnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

// Apply proposes c to the cluster and returns the FSM's Result, whose Err
// is the state machine's refusal. It works on any node: a follower
// forwards c to the leader over peer RPC, and then waits until its own FSM
// has applied c too, so that a read of FSM() right after Apply sees it.
//
// The error is the replication layer's: cluster.ErrNotLeader when there is
// no leader (this node cannot reach a quorum) or leadership was lost,
// cluster.ErrClusterShutdown, ErrApplyTimeout, or ctx's error. Apply is
// bounded by ctx and Config.ApplyTimeout. After ErrNotLeader for a lost
// leadership, a timeout or ctx's end, c may still be applied: commands
// carry their ids, so a retry is refused as a duplicate or joins the first
// attempt (and a repeated approval changes nothing). Apply itself retries
// only what certainly was not proposed. When the leader applied c but this
// node's FSM did not catch up in time, Apply returns the leader's Result
// with an error.
func (n *Node) Apply(ctx context.Context, c cluster.Command) (cluster.Result, error) {
	if n.closed.Load() {
		return cluster.Result{}, fmt.Errorf("applying %s: %w", c.Op, cluster.ErrClusterShutdown)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return cluster.Result{}, fmt.Errorf("encoding %s command: %w", c.Op, err)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if ctx.Err() != nil {
		return cluster.Result{}, fmt.Errorf("applying %s: %w", c.Op, ctxErr(ctx))
	}
	var (
		res   cluster.Result
		reply applyReply
	)
	local := func(ctx context.Context) (err error) {
		res, _, err = n.applyLocal(ctx, data)
		return err
	}
	forwarded, err := n.onLeader(ctx, local, methodApply, applyRequest{Command: data}, &reply)
	if err != nil {
		return cluster.Result{}, fmt.Errorf("applying %s: %w", c.Op, n.withReadiness(ctx, err))
	}
	if !forwarded {
		return res, nil
	}
	res = reply.Result.decode()
	if err := n.fsm.waitApplied(ctx, reply.Index); err != nil {
		return res, fmt.Errorf("applying %s: the leader applied it but this node has not caught up: %w", c.Op, err)
	}
	return res, nil
}

// applyRequest and applyReply are the apply method's messages.
type applyRequest struct {
	Command json.RawMessage `json:"command"`
}

type applyReply struct {
	Result wireResult `json:"result"`
	// Index is the log index the leader applied the command at.
	Index uint64 `json:"index"`
}

// serveApply is the apply method: apply on this node, if it leads.
func (n *Node) serveApply(ctx context.Context, body json.RawMessage) (applyReply, error) {
	var req applyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return applyReply{}, fmt.Errorf("decoding the %s request: %w", methodApply, err)
	}
	// Only a well-formed command goes into the log.
	var c cluster.Command
	if err := json.Unmarshal(req.Command, &c); err != nil {
		return applyReply{}, fmt.Errorf("decoding the command: %w: %w", cluster.ErrInvalidCommand, err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return applyReply{}, fmt.Errorf("encoding %s command: %w", c.Op, err)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	res, index, err := n.applyLocal(ctx, data)
	if err != nil {
		return applyReply{}, err
	}
	return applyReply{Result: encodeResult(res), Index: index}, nil
}

// applyLocal proposes data through this node's Raft, which must lead, and
// returns the FSM's result and the entry's index. ctx has a deadline.
func (n *Node) applyLocal(ctx context.Context, data []byte) (cluster.Result, uint64, error) {
	f := n.raft.Apply(data, remaining(ctx))
	if err := wait(ctx, f); err != nil {
		return cluster.Result{}, 0, err
	}
	res, ok := f.Response().(cluster.Result)
	if !ok {
		return cluster.Result{}, 0, fmt.Errorf("the state machine returned a %T, not a cluster.Result", f.Response())
	}
	return res, f.Index(), nil
}

// onLeader carries out an operation on the leader: local on this node
// when it leads, or the peer RPC method (req, into resp) on the leader it
// knows. It tries again, on each leader change or after a heartbeat
// interval, while the attempt certainly did nothing (no leader known, the
// node asked was not the leader, the leader could not be dialled) and ctx
// lasts; it then fails with cluster.ErrNotLeader. forwarded reports that
// the last attempt went to another node.
func (n *Node) onLeader(ctx context.Context, local func(context.Context) error, method string, req, resp any) (forwarded bool, err error) {
	for {
		if n.closed.Load() {
			return false, cluster.ErrClusterShutdown
		}
		changed := n.leaderChanged.wait()
		addr, id := n.raft.LeaderWithID()
		switch {
		case id == "":
			forwarded, err = false, fmt.Errorf("%w (%w): no leader known", cluster.ErrNotLeader, errNotApplied)
		case string(id) == n.cfg.ID:
			forwarded, err = false, local(ctx)
		default:
			forwarded, err = true, n.call(ctx, string(addr), method, req, resp)
		}
		if err == nil || !errors.Is(err, errNotApplied) {
			return forwarded, err
		}
		t := time.NewTimer(n.retryInterval())
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return forwarded, fmt.Errorf("%w: no leader: this node cannot reach a quorum: %w (last attempt: %w)", cluster.ErrNotLeader, ctxErr(ctx), err)
		}
	}
}

// withReadiness adds why the node is not Ready to err, when ctx has ended
// and err does not say already that there is no leader: a timeout on a
// node cut off from its quorum is ErrNotLeader to the caller.
func (n *Node) withReadiness(ctx context.Context, err error) error {
	if ctx.Err() == nil || errors.Is(err, cluster.ErrNotLeader) {
		return err
	}
	if rerr := n.Ready(); rerr != nil {
		return fmt.Errorf("%w; %w", err, rerr)
	}
	return err
}

// remaining is the time left until ctx's deadline, at least a millisecond
// (Raft reads a zero timeout as none).
func remaining(ctx context.Context) time.Duration {
	d, _ := ctx.Deadline() // always set: callers bound ctx
	return max(time.Until(d), time.Millisecond)
}

// wait waits for f, or for ctx to end, and translates Raft's errors.
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return raftErr(err)
	case <-ctx.Done():
		return fmt.Errorf("%w (the outcome is unknown)", ctxErr(ctx))
	}
}
