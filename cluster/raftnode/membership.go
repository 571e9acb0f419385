package raftnode

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

// joinRetry is the pause between rounds over Config.Join.
const joinRetry = 500 * time.Millisecond

// Member is a server in the cluster's configuration.
type Member struct {
	// ID is the node's Config.ID and Address its Advertise address.
	ID, Address string
	// Suffrage is "Voter" (it votes and counts for the quorum),
	// "Nonvoter" or "Staging". Nodes this package adds are voters.
	Suffrage string
	// Leader is set on the member this node knows as the leader.
	Leader bool
}

// Members returns the servers in the latest cluster configuration this
// node knows, sorted by ID. It reads the local copy of the configuration,
// so it works without a leader too; a change being committed shows as
// soon as this node has it in its log.
func (n *Node) Members() ([]Member, error) {
	servers, err := n.servers()
	if err != nil {
		return nil, err
	}
	_, leader := n.raft.LeaderWithID()
	out := make([]Member, 0, len(servers))
	for _, s := range servers {
		out = append(out, Member{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String(), Leader: s.ID == leader})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// AddVoter adds the node id, which listens at addr (its Advertise
// address), to the cluster as a voter, or moves it to addr. It works on
// any node: a follower forwards it to the leader. It returns once the
// configuration change is committed; adding a voter that is already there
// at addr changes nothing. It is bounded by ctx and Config.ApplyTimeout.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if id == "" || addr == "" {
		return errors.New("adding a voter: the id and address must not be empty")
	}
	if n.closed.Load() {
		return fmt.Errorf("adding voter %s: %w", id, cluster.ErrClusterShutdown)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	local := func(ctx context.Context) error { return n.addVoterLocal(ctx, id, addr) }
	if _, err := n.onLeader(ctx, local, methodAdd, memberRequest{ID: id, Address: addr}, nil); err != nil {
		return fmt.Errorf("adding voter %s at %s: %w", id, addr, n.withReadiness(ctx, err))
	}
	return nil
}

// addVoterLocal is AddVoter on this node, which must lead.
func (n *Node) addVoterLocal(ctx context.Context, id, addr string) error {
	if id == "" || addr == "" {
		return errors.New("adding a voter: the id and address must not be empty")
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if n.raft.State() == raft.Leader {
		servers, err := n.servers()
		if err != nil {
			return err
		}
		for _, s := range servers {
			if string(s.ID) == id && string(s.Address) == addr && s.Suffrage == raft.Voter {
				return nil
			}
		}
	}
	return wait(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, remaining(ctx)))
}

// RemoveServer removes the node id from the cluster. It works on any
// node: a follower forwards it to the leader. Removing the leader itself
// is allowed: it steps down once the change is committed. Removing a node
// that is not a member changes nothing. It is bounded by ctx and
// Config.ApplyTimeout.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if n.closed.Load() {
		return fmt.Errorf("removing %s: %w", id, cluster.ErrClusterShutdown)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	local := func(ctx context.Context) error { return n.removeLocal(ctx, id) }
	if _, err := n.onLeader(ctx, local, methodRemove, memberRequest{ID: id}, nil); err != nil {
		return fmt.Errorf("removing %s: %w", id, n.withReadiness(ctx, err))
	}
	return nil
}

// removeLocal is RemoveServer on this node, which must lead.
func (n *Node) removeLocal(ctx context.Context, id string) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if n.raft.State() == raft.Leader {
		servers, err := n.servers()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == id }) {
			return nil
		}
	}
	return wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, remaining(ctx)))
}

// TransferLeadership hands leadership to another voter (the most
// up-to-date one) and returns once that voter was told to take over; the
// new leader is known here shortly after (Leader). Call it on the leader
// before closing it for a rolling restart, so that the cluster does not
// wait an election timeout. On a follower, or a leader alone, it does
// nothing and returns nil.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if n.closed.Load() {
		return fmt.Errorf("transferring leadership: %w", cluster.ErrClusterShutdown)
	}
	if n.raft.State() != raft.Leader {
		return nil
	}
	servers, err := n.servers()
	if err != nil {
		return fmt.Errorf("transferring leadership: %w", err)
	}
	if !slices.ContainsFunc(servers, func(s raft.Server) bool {
		return s.Suffrage == raft.Voter && string(s.ID) != n.cfg.ID
	}) {
		return nil
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := wait(ctx, n.raft.LeadershipTransfer()); err != nil {
		return fmt.Errorf("transferring leadership: %w", err)
	}
	return nil
}

// join asks the members in Config.Join, in turn and again until ctx ends,
// to add this node as a voter.
func (n *Node) join(ctx context.Context) error {
	req := memberRequest{ID: n.cfg.ID, Address: n.cfg.Advertise}
	var last error
	for {
		for _, addr := range n.cfg.Join {
			if _, leader := n.raft.LeaderWithID(); leader != "" {
				// An earlier attempt worked though its reply was lost.
				return nil
			}
			if addr == n.cfg.Advertise {
				continue
			}
			actx, cancel := n.bound(ctx)
			err := n.call(actx, addr, methodJoin, req, nil)
			cancel()
			if err == nil {
				return nil
			}
			last = fmt.Errorf("via %s: %w", addr, err)
			n.cfg.Log.Warn("joining the cluster", "peer", addr, "error", err)
			if isCertificateError(err) {
				// Certificates do not change while we wait: a peer that
				// refuses ours, or one we refuse, will do so again.
				return fmt.Errorf("joining the cluster: %w", last)
			}
			if ctx.Err() != nil {
				break
			}
		}
		if last == nil {
			return errors.New("joining the cluster: Config.Join names no node but this one")
		}
		t := time.NewTimer(joinRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("joining the cluster via %q: %w (last attempt %w)", n.cfg.Join, ctxErr(ctx), last)
		}
	}
}

// isCertificateError reports a TLS failure over certificates: ours refused
// by the peer (its alert), or the peer's refused by us.
func isCertificateError(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	return errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &unknown)
}

// joinOrBootstrap is Open's first step for a bootstrap node without state
// that knows peers. It asks each peer to add it; a peer that answers with
// a cluster but no leader yet makes it ask again. Only when every peer is
// unreachable or in no cluster itself does it bootstrap a cluster of its
// own: on a first start, or when all of them are new too.
func (n *Node) joinOrBootstrap(ctx context.Context) error {
	req := memberRequest{ID: n.cfg.ID, Address: n.cfg.Advertise}
	for {
		sawCluster := false
		var last error
		for _, addr := range n.cfg.Join {
			if addr == n.cfg.Advertise {
				continue
			}
			actx, cancel := n.bound(ctx)
			err := n.call(actx, addr, methodJoin, req, nil)
			cancel()
			switch {
			case err == nil:
				n.cfg.Log.Info("joined the existing cluster instead of bootstrapping one", "peer", addr)
				return nil
			case isCertificateError(err):
				return fmt.Errorf("joining the cluster via %s: %w", addr, err)
			case errors.Is(err, ErrNoCluster), isDialError(err):
				last = err
			default:
				sawCluster, last = true, err
			}
		}
		if !sawCluster {
			self := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.cfg.Advertise)}}}
			if err := n.raft.BootstrapCluster(self).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				return fmt.Errorf("bootstrapping a cluster of this node: %w", err)
			}
			n.cfg.Log.Info("no peer has a cluster; bootstrapped one", "last_peer_error", last)
			return nil
		}
		n.cfg.Log.Warn("a peer has a cluster but could not add this node yet; asking again", "error", last)
		t := time.NewTimer(joinRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("joining the cluster via %q: %w (last attempt %w)", n.cfg.Join, ctxErr(ctx), last)
		}
	}
}

// inCluster reports whether this node belongs to a cluster: its Raft
// configuration names at least one server.
func (n *Node) inCluster() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// isDialError reports a peer that could not be reached at all.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
