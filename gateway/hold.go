package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/notify"
	"github.com/kubegate/kubegate/policy"
)

// Approvals is the replicated approval state: access requests, their
// decisions and grants. cluster/raftnode's Node implements it.
type Approvals interface {
	// Apply proposes a command. The error is the replication layer's; the
	// state machine's refusal is in Result.Err.
	Apply(ctx context.Context, c cluster.Command) (cluster.Result, error)
	// FSM is the local replica, for reads and for watching changes.
	FSM() *cluster.FSM
}

// Errors of held requests, turned into Status replies by statusFor.
var (
	// ErrHoldDenied is a held request an approver denied.
	ErrHoldDenied = errors.New("held request denied")
	// ErrHoldExpired is a held request nobody decided on in time.
	ErrHoldExpired = errors.New("held request expired")
	// ErrHoldUsed is a held request whose approval another attempt used.
	ErrHoldUsed = errors.New("approval already used")
	// ErrApprovalsUnavailable means requests cannot be held: no approval
	// state is configured, or it cannot take writes. The request is
	// refused, never let through.
	ErrApprovalsUnavailable = errors.New("approvals unavailable")
)

// hold is what the audit event says about a request that was held.
type hold struct {
	id      string // the access request's id
	joined  bool   // this attempt joined an earlier attempt's request
	start   time.Time
	waited  time.Duration
	outcome cluster.State
	request cluster.Request // the access request as last seen
}

// approvedPort reports whether the approval that released a port-forward
// covers port: the ports the held request named, or any when it named none.
func (h *hold) approvedPort(port int32) bool {
	if h == nil || h.outcome != cluster.StateApproved {
		return false
	}
	return len(h.request.Target.Ports) == 0 || slices.Contains(h.request.Target.Ports, port)
}

// holdForApproval parks a request that a require-approval rule matched
// until its access request is approved (nil: go on and forward it), denied,
// or expired. A client that goes away leaves the request pending: an
// approval then releases the client's next attempt at the same call.
func (g *Gateway) holdForApproval(ctx context.Context, x *exchange) error {
	a := g.cfg.Approvals
	if a == nil {
		return fmt.Errorf("%w: no approval state is configured", ErrApprovalsUnavailable)
	}
	now := g.cfg.Now()
	p := x.principal
	res, err := g.applyHeld(ctx, now.Add(x.decision.HoldTimeout), cluster.Command{Op: cluster.OpCreate, Now: now, Request: &cluster.Request{
		ID: x.id, Kind: cluster.KindHold,
		Requester:         cluster.Person{User: p.User, Groups: p.Groups},
		ExpiresAt:         now.Add(x.decision.HoldTimeout),
		Reason:            x.decision.Message,
		Rule:              x.decision.Rule,
		ApproverGroups:    x.decision.Approvers.Groups,
		ApprovalsRequired: x.decision.Approvers.Count,
		Fingerprint:       fingerprint(p.User, x.req, x.body),
		Target:            g.maskTarget(target(x.req)),
		HeldOn:            g.cfg.NodeID,
	}})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrApprovalsUnavailable, err)
	}
	h := &hold{id: res.Request.ID, joined: res.Request.ID != x.id, start: now, request: *res.Request}
	x.hold = h
	if res.Changed {
		g.cfg.Metrics.holds.WithLabelValues("created").Inc()
		g.notify(notify.Event{Type: "request.created", Time: now}, res.Request)
	}
	defer func() {
		h.waited = g.cfg.Now().Sub(h.start)
		g.cfg.Metrics.holdWait.Observe(h.waited.Seconds())
	}()
	fsm := a.FSM()
	for {
		changed := fsm.Changed(h.id)
		cur, ok := fsm.Get(h.id)
		if !ok {
			return fmt.Errorf("%w: access request %s is gone", ErrHoldExpired, h.id)
		}
		h.request, h.outcome = cur, cur.State
		switch cur.State {
		case cluster.StateApproved:
			if ctx.Err() != nil {
				// The client is gone: leave the approval for its retry.
				h.outcome = cluster.StatePending
				return fmt.Errorf("the client went away while the request was held: %w", context.Cause(ctx))
			}
			res, err := g.applyHeld(ctx, cur.ExpiresAt.Add(cluster.ReuseWindow), cluster.Command{Op: cluster.OpUse, Now: g.cfg.Now(), ID: h.id, UsedBy: x.id})
			if err != nil {
				return fmt.Errorf("%w: %w", ErrApprovalsUnavailable, err)
			}
			if errors.Is(res.Err, cluster.ErrNotApproved) {
				continue // another attempt used it first; see what it is now
			}
			if res.Err != nil {
				return fmt.Errorf("%w: %w", ErrApprovalsUnavailable, res.Err)
			}
			h.request, h.outcome = *res.Request, cluster.StateApproved
			g.cfg.Metrics.holds.WithLabelValues("approved").Inc()
			return nil
		case cluster.StateUsed:
			return ErrHoldUsed
		case cluster.StateDenied:
			g.cfg.Metrics.holds.WithLabelValues("denied").Inc()
			return ErrHoldDenied
		case cluster.StateExpired:
			g.cfg.Metrics.holds.WithLabelValues("expired").Inc()
			return ErrHoldExpired
		}
		left := cur.ExpiresAt.Sub(g.cfg.Now())
		if left <= 0 {
			if err := g.expire(ctx, h.id); err != nil {
				return err
			}
			continue
		}
		timer := time.NewTimer(left)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			h.outcome = cluster.StatePending
			return fmt.Errorf("the client went away while the request was held: %w", context.Cause(ctx))
		}
		timer.Stop()
	}
}

// applyHeld applies a command on behalf of a held request. The client is
// waiting anyway, so a cluster between leaders (an election after a node's
// loss) is waited out, until ctx ends or until, whichever comes first;
// the state machine's own refusals come back at once in Result.Err.
func (g *Gateway) applyHeld(ctx context.Context, until time.Time, c cluster.Command) (cluster.Result, error) {
	for {
		res, err := g.cfg.Approvals.Apply(ctx, c)
		if err == nil || !errors.Is(err, cluster.ErrNotLeader) || !g.cfg.Now().Before(until) {
			return res, err
		}
		g.cfg.Log.Info("approval state has no leader; retrying for a held request", "op", c.Op, "err", err)
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, err
		case <-t.C:
		}
	}
}

// expire marks a due access request expired and tells the notifiers.
func (g *Gateway) expire(ctx context.Context, id string) error {
	res, err := g.applyHeld(ctx, g.cfg.Now().Add(time.Minute), cluster.Command{Op: cluster.OpExpire, Now: g.cfg.Now(), ID: id})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrApprovalsUnavailable, err)
	}
	if res.Changed {
		g.notify(notify.Event{Type: "request.expired", Time: g.cfg.Now()}, res.Request)
	}
	return nil
}

// activeGrants returns the principal's grants that are active now, as the
// policy reads them.
func (g *Gateway) activeGrants(user string, now time.Time) []policy.Grant {
	if g.cfg.Approvals == nil {
		return nil
	}
	var out []policy.Grant
	for _, gr := range g.cfg.Approvals.FSM().Grants(user) {
		if gr.ActiveAt(now) {
			out = append(out, policy.Grant{ID: gr.ID, Scope: policy.GrantScope(gr.Scope)})
		}
	}
	return out
}

// boundByGrant ends a stream session that a grant allowed when the grant
// expires or is revoked.
func (g *Gateway) boundByGrant(ctx context.Context, grantID string) (context.Context, context.CancelFunc) {
	if grantID == "" || g.cfg.Approvals == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	fsm := g.cfg.Approvals.FSM()
	go func() {
		for {
			changed := fsm.Changed(grantID)
			gr, ok := fsm.Grant(grantID)
			now := g.cfg.Now()
			switch {
			case !ok:
				cancel(fmt.Errorf("%w: grant %s no longer exists", ErrSessionKilled, grantID))
				return
			case gr.Revoked != nil:
				cancel(fmt.Errorf("%w: grant %s was revoked by %s", ErrSessionKilled, grantID, gr.Revoked.By.User))
				return
			case !gr.ActiveAt(now):
				cancel(fmt.Errorf("%w: grant %s expired at %s", ErrSessionKilled, grantID, gr.NotAfter.UTC().Format(time.RFC3339)))
				return
			}
			timer := time.NewTimer(gr.NotAfter.Sub(now))
			select {
			case <-changed:
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
			timer.Stop()
		}
	}()
	return ctx, func() { cancel(nil) }
}

// holdMessage is what a client whose held request failed is told.
func holdMessage(err error, x *exchange) string {
	h := x.hold
	what := describe(x.req)
	if h == nil {
		return "kubegate: " + err.Error()
	}
	switch {
	case errors.Is(err, ErrHoldDenied):
		by, reason := "an approver", "no reason given"
		if d := h.request.Denial; d != nil {
			by = d.By.User
			if d.Reason != "" {
				reason = d.Reason
			}
		}
		return fmt.Sprintf("kubegate: %s was denied by %s: %s (access request %s)", what, by, reason, h.id)
	case errors.Is(err, ErrHoldExpired):
		return fmt.Sprintf("kubegate: %s was held for approval by rule %q, and nobody approved it before %s (access request %s)",
			what, x.decision.Rule, h.request.ExpiresAt.UTC().Format(time.RFC3339), h.id)
	case errors.Is(err, ErrHoldUsed):
		return fmt.Sprintf("kubegate: the approval of access request %s already released request %s; retry to be held again", h.id, h.request.UsedBy)
	}
	return "kubegate: " + err.Error()
}

// approvalWarning is the Warning header an approved request carries, so
// that kubectl tells its user who let the request through.
func approvalWarning(h *hold) string {
	var by []string
	for _, a := range h.request.Approvals {
		s := a.By.User
		if a.Reason != "" {
			s += " (" + a.Reason + ")"
		}
		by = append(by, s)
	}
	text := fmt.Sprintf("kubegate: access request %s approved by %s after %s", h.id, strings.Join(by, ", "), h.waited.Round(time.Millisecond))
	return `299 kubegate ` + strconv.Quote(text)
}

// fingerprint identifies a call for matching a client's retries: who makes
// it, what it targets and its body. The stream protocol is left out, so a
// kubectl falling back from WebSocket to SPDY finds the same request.
func fingerprint(user string, r *k8swire.Request, body []byte) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	for _, s := range []string{user, r.Verb, r.APIGroup, r.APIVersion, r.Resource, r.Subresource, r.Namespace, r.Name, r.Path} {
		field(s)
	}
	if s := r.Stream; s != nil {
		field(s.Container)
		for _, c := range s.Command {
			field(c)
		}
		field(fmt.Sprint(s.TTY, s.Stdin, s.Stdout, s.Stderr, s.Ports))
	}
	field(string(body))
	return hex.EncodeToString(h.Sum(nil))
}

// maskTarget masks values in an exec's argv before it is replicated and
// stored with the access request (the fingerprint keeps the raw argv's
// hash, so retries still match).
func (g *Gateway) maskTarget(t cluster.Target) cluster.Target {
	t.Command = slices.Clone(t.Command) // the request's own argv is forwarded as it is
	for i, c := range t.Command {
		t.Command[i] = g.maskText(c)
	}
	return t
}

// target describes a request for approvers.
func target(r *k8swire.Request) cluster.Target {
	t := cluster.Target{
		Verb: r.Verb, APIGroup: r.APIGroup, Resource: r.Resource, Subresource: r.Subresource,
		Namespace: r.Namespace, Name: r.Name,
	}
	if !r.IsResourceRequest {
		t.Path = r.Path
	}
	if s := r.Stream; s != nil {
		t.Container, t.Command, t.TTY, t.Stdin, t.Ports = s.Container, s.Command, s.TTY, s.Stdin, s.Ports
	}
	return t
}
