package cluster

import "slices"

// The state machine hands out and stores only deep copies, so that neither
// a caller's later edits nor the state's own changes leak across.

func clonePerson(p Person) Person {
	p.Groups = slices.Clone(p.Groups)
	return p
}

func cloneDecision(d Decision) Decision {
	d.By = clonePerson(d.By)
	return d
}

func cloneDecisionPtr(d *Decision) *Decision {
	if d == nil {
		return nil
	}
	c := cloneDecision(*d)
	return &c
}

func cloneScope(s Scope) Scope {
	return Scope{
		Verbs:      slices.Clone(s.Verbs),
		APIGroups:  slices.Clone(s.APIGroups),
		Resources:  slices.Clone(s.Resources),
		Namespaces: slices.Clone(s.Namespaces),
		Names:      slices.Clone(s.Names),
	}
}

func cloneRequest(r *Request) *Request {
	c := *r
	c.Requester = clonePerson(r.Requester)
	c.ApproverGroups = slices.Clone(r.ApproverGroups)
	c.Target.Command = slices.Clone(r.Target.Command)
	c.Target.Ports = slices.Clone(r.Target.Ports)
	c.Scope = cloneScope(r.Scope)
	if r.Approvals != nil {
		c.Approvals = make([]Decision, len(r.Approvals))
		for i, d := range r.Approvals {
			c.Approvals[i] = cloneDecision(d)
		}
	}
	c.Denial = cloneDecisionPtr(r.Denial)
	return &c
}

func cloneGrant(g *Grant) *Grant {
	c := *g
	c.Holder = clonePerson(g.Holder)
	c.Scope = cloneScope(g.Scope)
	if g.ApprovedBy != nil {
		c.ApprovedBy = make([]Person, len(g.ApprovedBy))
		for i, p := range g.ApprovedBy {
			c.ApprovedBy[i] = clonePerson(p)
		}
	}
	c.Revoked = cloneDecisionPtr(g.Revoked)
	return &c
}
