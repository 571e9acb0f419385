package raftnode

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kubegate/kubegate/cluster"
)

func TestLeaderFailover(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.start(3)
	old, rest := leader(t, nodes...)
	apply(t, rest[0], createHold("before"))
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	lead, followers := leader(t, rest...)
	if lead == old {
		t.Fatal("the closed node still leads")
	}
	apply(t, followers[0], createHold("after"))
	apply(t, lead, approve("before", time.Minute))

	// The old leader comes back from its data directory, rejoins as a
	// follower and catches up before Open returns.
	back := c.reopen(old.ID())
	for _, id := range []string{"before", "after"} {
		if _, ok := back.FSM().Get(id); !ok {
			t.Errorf("the reopened node lacks %s right after Open", id)
		}
	}
	if r, _ := back.FSM().Get("before"); r.State != cluster.StateApproved {
		t.Errorf("the reopened node has %q as %s, want approved", r.ID, r.State)
	}
	all := append([]*Node{back}, rest...)
	leader(t, all...)
	apply(t, back, createHold("third"))
	converged(t, all...)
}

func TestMinorityRefusesWrites(t *testing.T) {
	for _, keep := range []string{"leader", "follower"} {
		t.Run("keep the "+keep, func(t *testing.T) {
			c := newTestCluster(t)
			nodes := c.start(3)
			lead, followers := leader(t, nodes...)
			apply(t, lead, createHold("h1"))
			converged(t, nodes...)

			survivor, stopped := lead, followers
			if keep == "follower" {
				survivor, stopped = followers[0], []*Node{lead, followers[1]}
			}
			for _, n := range stopped {
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
			}

			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			_, err := survivor.Apply(ctx, approve("h1", time.Minute))
			if !errors.Is(err, cluster.ErrNotLeader) {
				t.Fatalf("Apply on a node without a quorum: %v, want ErrNotLeader", err)
			}
			t.Logf("Apply without a quorum: %v", err)
			eventually(t, "the survivor is not Ready", func() error {
				if err := survivor.Ready(); !errors.Is(err, cluster.ErrNotLeader) {
					return fmt.Errorf("Ready = %v, want ErrNotLeader", err)
				}
				return nil
			})

			// The others come back; the approval, retried, counts once
			// whether or not the first attempt made it into the log.
			all := []*Node{survivor}
			for _, n := range stopped {
				all = append(all, c.reopen(n.ID()))
			}
			leader(t, all...)
			res := apply(t, survivor, approve("h1", time.Minute))
			if res.Request.State != cluster.StateApproved || len(res.Request.Approvals) != 1 {
				t.Fatalf("after the retry h1 = %+v, want approved once", res.Request)
			}
			converged(t, all...)
			for _, n := range all {
				if r, _ := n.FSM().Get("h1"); len(r.Approvals) != 1 {
					t.Errorf("%s has %d approvals of h1, want 1", n.ID(), len(r.Approvals))
				}
			}
		})
	}
}

func TestTransferLeadership(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.start(3)
	old, followers := leader(t, nodes...)
	if err := followers[0].TransferLeadership(testCtx(t)); err != nil {
		t.Errorf("TransferLeadership on a follower: %v, want nil (nothing to do)", err)
	}
	if err := old.TransferLeadership(testCtx(t)); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	lead, _ := leader(t, nodes...)
	if lead == old {
		t.Fatal("the leader did not change")
	}
	// The old leader, now a follower, takes writes.
	apply(t, old, createHold("h1"))
}

func TestTransferLeadershipAlone(t *testing.T) {
	c := newTestCluster(t)
	n := c.start(1)[0]
	if err := n.TransferLeadership(testCtx(t)); err != nil {
		t.Errorf("TransferLeadership on a cluster of one: %v, want nil", err)
	}
	if n.Stats().State != "Leader" {
		t.Error("the only node gave up leadership")
	}
}
