package cluster

import (
	"cmp"
	"slices"
	"time"
)

// The command handlers. Each one runs with f.mu held for writing, checks
// everything before it changes anything (so a refusal leaves the state as
// it was), wakes the watchers of each id it changes, and returns copies.

// create handles OpCreate.
func (f *FSM) create(in *Request, now time.Time) Result {
	switch {
	case in == nil:
		return refuse(ErrInvalidCommand, "create: no request")
	case in.ID == "":
		return refuse(ErrInvalidCommand, "create: the request has no id")
	case in.Kind != KindHold && in.Kind != KindGrant:
		return refuse(ErrInvalidCommand, "create %q: unknown kind %q", in.ID, in.Kind)
	case in.Requester.User == "":
		return refuse(ErrInvalidCommand, "create %q: the request has no requester", in.ID)
	case !in.ExpiresAt.After(now):
		return refuse(ErrInvalidCommand, "create %q: expiresAt %s is not after now %s",
			in.ID, in.ExpiresAt.UTC().Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	case in.ApprovalsRequired < 1:
		return refuse(ErrInvalidCommand, "create %q: approvalsRequired is %d, want at least 1", in.ID, in.ApprovalsRequired)
	case in.Kind == KindGrant && in.Duration <= 0:
		return refuse(ErrInvalidCommand, "create %q: a grant request needs a positive duration", in.ID)
	}
	// A retry joins its first attempt, even when it reuses that attempt's id.
	if in.Kind == KindHold && in.Fingerprint != "" {
		if prev := f.joinable(in, now); prev != nil {
			return Result{Request: cloneRequest(prev)}
		}
	}
	if _, ok := f.requests[in.ID]; ok {
		return refuse(ErrDuplicateID, "create %q", in.ID)
	}

	r := cloneRequest(in)
	// The state machine owns these fields; whatever the proposer sent is
	// ignored.
	r.State = StatePending
	r.CreatedAt = now
	r.ExpiresAt = in.ExpiresAt.UTC()
	r.GrantID = ""
	r.Approvals = nil
	r.Denial = nil
	r.DecidedAt = time.Time{}
	r.UsedAt = time.Time{}
	r.UsedBy = ""
	f.requests[r.ID] = r
	f.wake(r.ID)
	return Result{Request: cloneRequest(r), Changed: true}
}

// joinable returns the hold a retry of in joins at now, or nil. When
// several qualify (possible only with skewed proposer clocks) the newest,
// then the greatest id, wins, so the choice does not depend on map order.
func (f *FSM) joinable(in *Request, now time.Time) *Request {
	var best *Request
	for _, p := range f.requests {
		if p.Kind != KindHold || p.Fingerprint != in.Fingerprint ||
			p.Requester.User != in.Requester.User || !retryJoins(p, now) {
			continue
		}
		if best == nil || cmpNewer(p, best) > 0 {
			best = p
		}
	}
	return best
}

func cmpNewer(a, b *Request) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
}

// retryJoins reports whether a retry at now of the hold p's call joins p.
func retryJoins(p *Request, now time.Time) bool {
	switch p.State {
	case StatePending:
		// Live, or expired (if lazily) less than RetryWindow ago.
		return now.Before(p.ExpiresAt.Add(RetryWindow))
	case StateApproved:
		return now.Before(p.ExpiresAt.Add(ReuseWindow))
	case StateDenied, StateExpired:
		return now.Before(p.DecidedAt.Add(RetryWindow))
	}
	return false
}

// lapsed reports whether r is expired at now: marked so, or pending past
// its ExpiresAt and not yet marked (the gateway sends OpExpire for that).
func lapsed(r *Request, now time.Time) bool {
	return r.State == StateExpired || r.State == StatePending && !now.Before(r.ExpiresAt)
}

// mayDecide reports whether p is in one of the approver groups.
func mayDecide(p Person, approverGroups []string) bool {
	for _, g := range p.Groups {
		if slices.Contains(approverGroups, g) {
			return true
		}
	}
	return false
}

// decide handles OpApprove and OpDeny.
func (f *FSM) decide(c Command, now time.Time) Result {
	if c.ID == "" || c.By.User == "" {
		return refuse(ErrInvalidCommand, "%s: the command needs an id and a deciding user", c.Op)
	}
	r, ok := f.requests[c.ID]
	switch {
	case !ok:
		return refuse(ErrNotFound, "%s %q", c.Op, c.ID)
	case lapsed(r, now):
		return refuse(ErrExpired, "%s %q", c.Op, c.ID)
	case c.By.User == r.Requester.User:
		return refuse(ErrSelfApproval, "%s %q by %q", c.Op, c.ID, c.By.User)
	case !mayDecide(c.By, r.ApproverGroups):
		return refuse(ErrNotApprover, "%s %q by %q", c.Op, c.ID, c.By.User)
	}
	approved := slices.ContainsFunc(r.Approvals, func(d Decision) bool { return d.By.User == c.By.User })
	if c.Op == OpApprove && approved {
		return Result{Request: cloneRequest(r)}
	}
	if r.State != StatePending {
		return refuse(ErrAlreadyDecided, "%s %q: it is %s", c.Op, c.ID, r.State)
	}

	d := Decision{By: clonePerson(c.By), Reason: c.Reason, At: now}
	if c.Op == OpDeny {
		r.State = StateDenied
		r.Denial = &d
		r.DecidedAt = now
		f.wake(r.ID)
		return Result{Request: cloneRequest(r), Changed: true}
	}

	complete := len(r.Approvals)+1 >= r.ApprovalsRequired
	grantID := "g-" + r.ID
	if complete && r.Kind == KindGrant {
		// Only a restored, hand-made state can hold this; refuse before
		// changing anything.
		if _, ok := f.grants[grantID]; ok {
			return refuse(ErrDuplicateID, "approve %q: grant %q exists", c.ID, grantID)
		}
	}
	r.Approvals = append(r.Approvals, d)
	f.wake(r.ID)
	if !complete {
		return Result{Request: cloneRequest(r), Changed: true}
	}
	r.State = StateApproved
	r.DecidedAt = now
	if r.Kind != KindGrant {
		return Result{Request: cloneRequest(r), Changed: true}
	}
	g := &Grant{
		ID:        grantID,
		RequestID: r.ID,
		Holder:    clonePerson(r.Requester),
		Scope:     cloneScope(r.Scope),
		Reason:    r.Reason,
		NotBefore: now,
		NotAfter:  now.Add(r.Duration),
	}
	for _, a := range r.Approvals {
		g.ApprovedBy = append(g.ApprovedBy, clonePerson(a.By))
	}
	r.GrantID = g.ID
	f.grants[g.ID] = g
	f.wake(g.ID)
	return Result{Request: cloneRequest(r), Grant: cloneGrant(g), Changed: true}
}

// use handles OpUse.
func (f *FSM) use(c Command, now time.Time) Result {
	if c.ID == "" {
		return refuse(ErrInvalidCommand, "use: the command has no id")
	}
	r, ok := f.requests[c.ID]
	switch {
	case !ok:
		return refuse(ErrNotFound, "use %q", c.ID)
	case r.Kind != KindHold:
		return refuse(ErrNotFound, "use %q: it is a %s request, not a hold", c.ID, r.Kind)
	case r.State != StateApproved:
		return refuse(ErrNotApproved, "use %q: it is %s", c.ID, r.State)
	case !now.Before(r.ExpiresAt.Add(ReuseWindow)):
		return refuse(ErrExpired, "use %q: the approval lapsed at %s", c.ID,
			r.ExpiresAt.Add(ReuseWindow).Format(time.RFC3339Nano))
	}
	r.State = StateUsed
	r.UsedAt = now
	r.UsedBy = c.UsedBy
	f.wake(r.ID)
	return Result{Request: cloneRequest(r), Changed: true}
}

// expire handles OpExpire.
func (f *FSM) expire(c Command, now time.Time) Result {
	if c.ID == "" {
		return refuse(ErrInvalidCommand, "expire: the command has no id")
	}
	r, ok := f.requests[c.ID]
	if !ok {
		return refuse(ErrNotFound, "expire %q", c.ID)
	}
	if r.State != StatePending || now.Before(r.ExpiresAt) {
		return Result{Request: cloneRequest(r)}
	}
	r.State = StateExpired
	r.DecidedAt = now
	f.wake(r.ID)
	return Result{Request: cloneRequest(r), Changed: true}
}

// revoke handles OpRevoke.
func (f *FSM) revoke(c Command, now time.Time) Result {
	if c.GrantID == "" || c.By.User == "" {
		return refuse(ErrInvalidCommand, "revoke: the command needs a grant id and a revoking user")
	}
	g, ok := f.grants[c.GrantID]
	if !ok {
		return refuse(ErrGrantNotFound, "revoke %q", c.GrantID)
	}
	if g.Revoked != nil {
		return refuse(ErrGrantRevoked, "revoke %q", c.GrantID)
	}
	r := f.requests[g.RequestID] // kept while its grant is, see prune
	if c.By.User != g.Holder.User && (r == nil || !mayDecide(c.By, r.ApproverGroups)) {
		return refuse(ErrNotGrantHolder, "revoke %q by %q", c.GrantID, c.By.User)
	}
	g.Revoked = &Decision{By: clonePerson(c.By), Reason: c.Reason, At: now}
	f.wake(g.ID)
	res := Result{Grant: cloneGrant(g), Changed: true}
	if r != nil {
		res.Request = cloneRequest(r)
	}
	return res
}

// prune handles OpPrune. A grant request stays while its grant does, so
// that the request's approvers can still revoke it.
func (f *FSM) prune(c Command, now time.Time) Result {
	if c.Before.IsZero() {
		return refuse(ErrInvalidCommand, "prune: the command has no before time")
	}
	before := c.Before.UTC()
	changed := false
	for id, g := range f.grants {
		end := g.NotAfter
		if g.Revoked != nil && g.Revoked.At.Before(end) {
			end = g.Revoked.At
		}
		if end.Before(before) {
			delete(f.grants, id)
			f.wake(id)
			changed = true
		}
	}
	for id, r := range f.requests {
		end := r.DecidedAt
		if r.State == StatePending {
			if now.Before(r.ExpiresAt) {
				continue // live
			}
			end = r.ExpiresAt
		}
		if !end.Before(before) {
			continue
		}
		if _, ok := f.grants[r.GrantID]; ok && r.GrantID != "" {
			continue
		}
		delete(f.requests, id)
		f.wake(id)
		changed = true
	}
	return Result{Changed: changed}
}
