package cluster

import (
	"errors"
	"time"
)

// Kind says what an access request asks for.
type Kind string

// The kinds of access request.
const (
	// KindHold is one API call or stream session that a require-approval
	// rule holds at the gateway until a person decides on it.
	KindHold Kind = "hold"
	// KindGrant asks for time-bound access described by a Scope.
	KindGrant Kind = "grant"
)

// State is where an access request is in its life.
type State string

// The states of an access request. Pending is the only state that changes
// by approval or denial; the others are final, apart from Approved holds
// becoming Used.
const (
	StatePending  State = "pending"
	StateApproved State = "approved"
	StateDenied   State = "denied"
	// StateExpired is a request nobody decided on before its ExpiresAt.
	StateExpired State = "expired"
	// StateUsed is an approved hold whose request has been forwarded. An
	// approval releases one request only.
	StateUsed State = "used"
)

// Errors the state machine returns. They are values callers branch on with
// errors.Is; the state never changes when one is returned.
var (
	ErrNotFound        = errors.New("no such access request")
	ErrGrantNotFound   = errors.New("no such grant")
	ErrAlreadyDecided  = errors.New("access request is already decided")
	ErrExpired         = errors.New("access request has expired")
	ErrSelfApproval    = errors.New("nobody may decide on their own access request")
	ErrNotApprover     = errors.New("not in a group that may decide on this access request")
	ErrNotApproved     = errors.New("access request is not approved")
	ErrInvalidCommand  = errors.New("invalid command")
	ErrGrantRevoked    = errors.New("grant is already revoked")
	ErrDuplicateID     = errors.New("an access request with this id already exists")
	ErrNotGrantHolder  = errors.New("only the grant's holder or an approver may revoke it")
	ErrUnknownCommand  = errors.New("unknown command")
	ErrNotLeader       = errors.New("this node is not the cluster leader")
	ErrClusterShutdown = errors.New("cluster node is shut down")
)

// Person is who acts: a requester or an approver, as authenticated by the
// gateway.
type Person struct {
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
}

// Scope is the access a grant gives: the requests it covers. Each list is
// a set of patterns as in policy rules ("*" anything, a trailing "*" a
// prefix); an empty list covers anything. Scope matching is the policy's
// job; the state machine only stores it.
type Scope struct {
	Verbs      []string `json:"verbs,omitempty"`
	APIGroups  []string `json:"apiGroups,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
	Names      []string `json:"names,omitempty"`
}

// Target describes a held request for people: what the caller asked to do.
type Target struct {
	Verb        string   `json:"verb"`
	APIGroup    string   `json:"apiGroup,omitempty"`
	Resource    string   `json:"resource,omitempty"`
	Subresource string   `json:"subresource,omitempty"`
	Namespace   string   `json:"namespace,omitempty"`
	Name        string   `json:"name,omitempty"`
	Path        string   `json:"path,omitempty"`
	Container   string   `json:"container,omitempty"`
	Command     []string `json:"command,omitempty"`
	TTY         bool     `json:"tty,omitempty"`
	Stdin       bool     `json:"stdin,omitempty"`
	Ports       []int32  `json:"ports,omitempty"`
}

// Decision is one approver's approval or denial.
type Decision struct {
	By     Person    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Request is an access request: a held call (KindHold) or a request for a
// grant (KindGrant).
type Request struct {
	ID        string    `json:"id"`
	Kind      Kind      `json:"kind"`
	State     State     `json:"state"`
	Requester Person    `json:"requester"`
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt ends a pending request: one nobody decided on by then is
	// expired. For a hold it is the end of the rule's holdTimeout.
	ExpiresAt time.Time `json:"expiresAt"`
	Reason    string    `json:"reason,omitempty"`
	// Rule is the policy rule that held the call, or that decides who may
	// approve a grant.
	Rule string `json:"rule,omitempty"`
	// ApproverGroups may decide; empty means nobody can (fail closed).
	ApproverGroups []string `json:"approverGroups,omitempty"`
	// ApprovalsRequired is how many distinct approvers must approve. At
	// least 1.
	ApprovalsRequired int `json:"approvalsRequired"`

	// Hold fields.

	// Fingerprint identifies the call, so that a client's retry of the same
	// call finds this request rather than opening another.
	Fingerprint string `json:"fingerprint,omitempty"`
	Target      Target `json:"target,omitzero"`
	// HeldOn is the node holding the call's connection.
	HeldOn string `json:"heldOn,omitempty"`

	// Grant fields.

	Scope    Scope         `json:"scope,omitzero"`
	Duration time.Duration `json:"duration,omitempty"`
	// GrantID names the grant an approval created.
	GrantID string `json:"grantID,omitempty"`

	Approvals []Decision `json:"approvals,omitempty"`
	Denial    *Decision  `json:"denial,omitempty"`
	// DecidedAt is when the request left Pending.
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	// UsedAt is when an approved hold's call was forwarded, and UsedBy the
	// gateway request id that used it.
	UsedAt time.Time `json:"usedAt,omitzero"`
	UsedBy string    `json:"usedBy,omitempty"`
}

// Grant is time-bound access an approved KindGrant request gave.
type Grant struct {
	ID         string    `json:"id"`
	RequestID  string    `json:"requestID"`
	Holder     Person    `json:"holder"`
	Scope      Scope     `json:"scope"`
	Reason     string    `json:"reason,omitempty"`
	ApprovedBy []Person  `json:"approvedBy,omitempty"`
	NotBefore  time.Time `json:"notBefore"`
	NotAfter   time.Time `json:"notAfter"`
	// Revoked is set when someone revoked the grant before NotAfter.
	Revoked *Decision `json:"revoked,omitempty"`
}

// ActiveAt reports whether g gives access at now.
func (g *Grant) ActiveAt(now time.Time) bool {
	return g.Revoked == nil && !now.Before(g.NotBefore) && now.Before(g.NotAfter)
}

// Op names a command.
type Op string

// The commands the state machine applies.
const (
	// OpCreate adds Request (state Pending). For a hold whose requester
	// already has a request with the same non-empty Fingerprint that is
	// pending and not expired at Now, approved and unused until ReuseWindow
	// after its ExpiresAt, or denied or expired less than RetryWindow
	// before Now, nothing is added and the result is that request
	// (Changed false): a client's retry joins its first attempt.
	OpCreate Op = "create"
	// OpApprove adds By's approval to ID. The request becomes Approved when
	// it has ApprovalsRequired distinct approvals; a KindGrant request then
	// creates its Grant, valid from Now for the request's Duration. An
	// approver approving again changes nothing and is not an error.
	OpApprove Op = "approve"
	// OpDeny denies ID, with Reason.
	OpDeny Op = "deny"
	// OpUse marks an approved hold as used by request UsedBy. An approval
	// can be used until ReuseWindow after the hold's ExpiresAt.
	OpUse Op = "use"
	// OpExpire marks ID expired if it is still pending and Now is at or
	// past its ExpiresAt; otherwise it changes nothing and is not an
	// error.
	OpExpire Op = "expire"
	// OpRevoke revokes GrantID, by its holder or by an approver of its
	// request.
	OpRevoke Op = "revoke"
	// OpPrune removes requests decided or expired before Before, and grants
	// that ended before Before.
	OpPrune Op = "prune"
)

// Command is one entry of the replicated log. Now is the proposer's clock:
// the state machine reads no clock of its own.
type Command struct {
	Op      Op        `json:"op"`
	Now     time.Time `json:"now"`
	Request *Request  `json:"request,omitempty"`
	ID      string    `json:"id,omitempty"`
	GrantID string    `json:"grantID,omitempty"`
	By      Person    `json:"by,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	UsedBy  string    `json:"usedBy,omitempty"`
	Before  time.Time `json:"before,omitzero"`
}

// Result is what applying a command gives: the request and grant it touched
// (copies), or the error that left the state unchanged.
type Result struct {
	Request *Request
	Grant   *Grant
	// Changed is false when the command was a no-op (a repeated approval,
	// an expire of a request that was not due).
	Changed bool
	Err     error
}
