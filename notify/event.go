package notify

import (
	"net/url"
	"strconv"
	"time"
)

// Event types, the values of Event.Type.
const (
	// TypeRequestCreated: a new access request waits for approval.
	TypeRequestCreated = "request.created"
	// TypeRequestApproved: the request got all the approvals it needs.
	TypeRequestApproved = "request.approved"
	// TypeRequestDenied: someone denied the request.
	TypeRequestDenied = "request.denied"
	// TypeRequestExpired: the request was not decided in time.
	TypeRequestExpired = "request.expired"
	// TypeGrantRevoked: someone revoked time-bound access before it ended.
	TypeGrantRevoked = "grant.revoked"
	// TypeApprovalAdded: one of several required approvals was given.
	TypeApprovalAdded = "approval.added"
)

// Request kinds, the values of Event.Kind.
const (
	// KindHold is a held API call or exec, released once approved.
	KindHold = "hold"
	// KindGrant is a request for time-bound access.
	KindGrant = "grant"
)

// Event is one notification: a new access request or a decision on one. It
// carries no secrets, and every field is plain data, so an Event may be
// copied and sent to several notifiers.
type Event struct {
	// Type is what happened: one of the Type constants.
	Type string `json:"type"`
	// Time is when it happened. Zero means the time Notify was called.
	Time time.Time `json:"time"`
	// RequestID identifies the access request.
	RequestID string `json:"requestID"`
	// Kind is KindHold or KindGrant.
	Kind string `json:"kind"`
	// Requester is who asked.
	Requester string `json:"requester"`
	// Summary is human text of what is asked. For a hold it is worded to
	// follow "asks to", e.g. "delete deployments/web in namespace prod" or
	// "exec into pods/toolbox -c main in prod: sh (tty, stdin)"; for a
	// grant, to follow "asks for", e.g. "grant of delete on deployments in
	// namespaces prod for 30m".
	Summary string `json:"summary"`
	// Rule is the policy rule that held the request, if any.
	Rule string `json:"rule,omitempty"`
	// Reason is the requester's reason (request.created) or the approver's,
	// denier's or revoker's reason.
	Reason string `json:"reason,omitempty"`
	// Actor is who approved, denied or revoked.
	Actor string `json:"actor,omitempty"`
	// Approvals is how many approvals the request has.
	Approvals int `json:"approvals,omitempty"`
	// ApprovalsRequired is how many approvals it needs.
	ApprovalsRequired int `json:"approvalsRequired,omitempty"`
	// ExpiresAt is when the request (or the grant) expires. Zero means
	// unknown and is left out of the JSON.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// ApproveCommand is the command an approver runs to approve, e.g.
	// "kubegate approve 1234 --reason ...".
	ApproveCommand string `json:"approveCommand,omitempty"`
	// DenyCommand is the command an approver runs to deny.
	DenyCommand string `json:"denyCommand,omitempty"`
	// Node is the kubegate node that raised the event.
	Node string `json:"node,omitempty"`
}

// ID identifies the event for receivers dropping duplicates:
// requestID/type/unix-nanoseconds, with the request id and type
// path-escaped so the id is always a valid header value. Every delivery
// attempt of one event sends the same ID as X-Kubegate-Event-Id.
func (e Event) ID() string {
	nanos := int64(0)
	if !e.Time.IsZero() {
		nanos = e.Time.UnixNano()
	}
	return url.PathEscape(e.RequestID) + "/" + url.PathEscape(e.Type) + "/" + strconv.FormatInt(nanos, 10)
}

// Notifier is what the gateway calls on each new access request and
// decision. Notify must not block the caller for long: a notifier that does
// I/O queues the event and delivers it in the background.
type Notifier interface {
	Notify(Event)
}

// Multi fans an event out to several notifiers, in order. Nil entries are
// skipped.
type Multi []Notifier

var (
	_ Notifier = Multi(nil)
	_ Notifier = (*Webhook)(nil)
)

// Notify passes ev to each notifier in m.
func (m Multi) Notify(ev Event) {
	for _, n := range m {
		if n != nil {
			n.Notify(ev)
		}
	}
}
