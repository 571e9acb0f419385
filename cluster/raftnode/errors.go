package raftnode

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

// ErrDataDirInUse is returned by Open when another node, in this process
// or another, has the data directory open.
var ErrDataDirInUse = errors.New("raft data directory is in use")

// ErrApplyTimeout is returned by Node.Apply when the cluster did not apply
// the command within Config.ApplyTimeout.
var ErrApplyTimeout = errors.New("timed out waiting for the cluster to apply the command")

// ErrNoCluster is a join refused by a node that is itself in no cluster
// yet (it waits to join one, too).
var ErrNoCluster = errors.New("this node is in no cluster yet")

// errNotApplied marks an error after which the command or change was
// certainly not carried out, so that trying again (on the next leader) is
// safe: the node asked was not the leader and proposed nothing, or the
// request never reached it.
var errNotApplied = errors.New("not carried out")

// raftErr translates Raft's errors into this package's and cluster's.
func raftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before anything was proposed.
		return fmt.Errorf("%w (%w): %w", cluster.ErrNotLeader, errNotApplied, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w (%w): %w", ErrApplyTimeout, errNotApplied, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", cluster.ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", cluster.ErrClusterShutdown, err)
	}
	return err
}

// ctxErr is ctx's error, with its cause (ErrApplyTimeout) when that differs.
func ctxErr(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || cause == err {
		return err
	}
	return fmt.Errorf("%w: %w", cause, err)
}

// wireError is an error sent over peer RPC: its message and the names of
// the sentinel errors it wraps, so that errors.Is works on the caller's
// side as on the callee's.
type wireError struct {
	Msg string   `json:"msg"`
	Is  []string `json:"is,omitempty"`
}

// wireSentinels are the errors a wireError carries by name.
var wireSentinels = []struct {
	name string
	err  error
}{
	{"notFound", cluster.ErrNotFound},
	{"grantNotFound", cluster.ErrGrantNotFound},
	{"alreadyDecided", cluster.ErrAlreadyDecided},
	{"expired", cluster.ErrExpired},
	{"selfApproval", cluster.ErrSelfApproval},
	{"notApprover", cluster.ErrNotApprover},
	{"notApproved", cluster.ErrNotApproved},
	{"invalidCommand", cluster.ErrInvalidCommand},
	{"grantRevoked", cluster.ErrGrantRevoked},
	{"duplicateID", cluster.ErrDuplicateID},
	{"notGrantHolder", cluster.ErrNotGrantHolder},
	{"unknownCommand", cluster.ErrUnknownCommand},
	{"notLeader", cluster.ErrNotLeader},
	{"clusterShutdown", cluster.ErrClusterShutdown},
	{"applyTimeout", ErrApplyTimeout},
	{"unknownMethod", ErrUnknownMethod},
	{"unknownNode", ErrUnknownNode},
	{"notApplied", errNotApplied},
	{"noCluster", ErrNoCluster},
	{"canceled", context.Canceled},
	{"deadlineExceeded", context.DeadlineExceeded},
}

// encodeError returns err for the wire; nil for nil.
func encodeError(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Msg: err.Error()}
	for _, s := range wireSentinels {
		if errors.Is(err, s.err) {
			w.Is = append(w.Is, s.name)
		}
	}
	return w
}

// decode returns the error w describes; nil for nil.
func (w *wireError) decode() error {
	if w == nil {
		return nil
	}
	e := &remoteError{msg: w.Msg}
	for _, name := range w.Is {
		for _, s := range wireSentinels {
			if s.name == name {
				e.is = append(e.is, s.err)
			}
		}
	}
	return e
}

// remoteError is an error that came over peer RPC.
type remoteError struct {
	msg string
	is  []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.is }

// wireResult is a cluster.Result sent over peer RPC.
type wireResult struct {
	Request *cluster.Request `json:"request,omitempty"`
	Grant   *cluster.Grant   `json:"grant,omitempty"`
	Changed bool             `json:"changed,omitempty"`
	Err     *wireError       `json:"err,omitempty"`
}

func encodeResult(r cluster.Result) wireResult {
	return wireResult{Request: r.Request, Grant: r.Grant, Changed: r.Changed, Err: encodeError(r.Err)}
}

func (w wireResult) decode() cluster.Result {
	return cluster.Result{Request: w.Request, Grant: w.Grant, Changed: w.Changed, Err: w.Err.decode()}
}
