package gateway

import (
	"fmt"
	"strings"

	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/notify"
)

// notify fills ev from the access request and hands it to the notifier.
// Reasons given by people pass through; nothing else of the call does (no
// bodies, no tokens).
func (g *Gateway) notify(ev notify.Event, req *cluster.Request) {
	if g.cfg.Notifier == nil || req == nil {
		return
	}
	ev.RequestID = req.ID
	ev.Kind = string(req.Kind)
	ev.Requester = req.Requester.User
	ev.Summary = Summarize(req)
	ev.Rule = req.Rule
	if ev.Reason == "" {
		ev.Reason = req.Reason
	}
	ev.Approvals = len(req.Approvals)
	ev.ApprovalsRequired = req.ApprovalsRequired
	ev.ExpiresAt = req.ExpiresAt
	ev.Node = g.cfg.NodeID
	// An exec's argv or a reason can carry a value a pattern masks; the
	// receiving chat room must not see it.
	ev.Summary, ev.Reason = g.maskText(ev.Summary), g.maskText(ev.Reason)
	if req.State == cluster.StatePending {
		ev.ApproveCommand = "kubegate approve " + req.ID + ` --reason "..."`
		ev.DenyCommand = "kubegate deny " + req.ID + ` --reason "..."`
	}
	g.cfg.Notifier.Notify(ev)
}

// Summarize says in words what an access request asks for:
// `delete deployments.apps "web" in namespace "prod"`, or for a grant
// `grant of delete on deployments in namespaces prod for 30m`.
func Summarize(req *cluster.Request) string {
	if req.Kind == cluster.KindGrant {
		s := req.Scope
		out := fmt.Sprintf("grant of %s on %s", list(s.Verbs), list(s.Resources))
		if len(s.APIGroups) > 0 {
			out += " in API groups " + list(s.APIGroups)
		}
		if len(s.Namespaces) > 0 {
			out += " in namespaces " + list(s.Namespaces)
		}
		if len(s.Names) > 0 {
			out += " named " + list(s.Names)
		}
		return out + " for " + req.Duration.String()
	}
	t := req.Target
	if t.Path != "" {
		return t.Verb + " " + t.Path
	}
	res := t.Resource
	if t.Subresource != "" {
		res += "/" + t.Subresource
	}
	if t.APIGroup != "" {
		res += "." + t.APIGroup
	}
	verb := t.Verb
	switch t.Subresource {
	case "exec", "attach", "portforward":
		verb = t.Subresource
		res = "pods"
	}
	out := verb + " " + res
	if t.Name != "" {
		out += fmt.Sprintf(" %q", t.Name)
	}
	if t.Namespace != "" {
		out += fmt.Sprintf(" in namespace %q", t.Namespace)
	}
	if t.Container != "" {
		out += fmt.Sprintf(" container %q", t.Container)
	}
	if len(t.Command) > 0 {
		out += fmt.Sprintf(": %q", strings.Join(t.Command, " "))
	}
	var flags []string
	if t.TTY {
		flags = append(flags, "tty")
	}
	if t.Stdin {
		flags = append(flags, "stdin")
	}
	if len(t.Ports) > 0 {
		flags = append(flags, fmt.Sprintf("ports %v", t.Ports))
	}
	if len(flags) > 0 {
		out += " (" + strings.Join(flags, ", ") + ")"
	}
	return out
}

func list(ss []string) string {
	if len(ss) == 0 {
		return "*"
	}
	return strings.Join(ss, ",")
}

// maskText applies the masker's value patterns to s.
func (g *Gateway) maskText(s string) string {
	if g.cfg.Masker == nil || s == "" {
		return s
	}
	sm := g.cfg.Masker.NewStreamMasker()
	out := string(sm.Write([]byte(s)))
	return out + string(sm.Flush())
}
