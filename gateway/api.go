package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/notify"
	"github.com/kubegate/kubegate/policy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIPrefix is where kubegate's own API lives on the gateway's listener:
// access requests, approvals and grants. Callers authenticate as for
// Kubernetes requests.
const APIPrefix = "/kubegate/v1/"

// apiCall is what the audit event says about a call of kubegate's API.
type apiCall struct {
	action  string // request.list, request.create, request.approve, ...
	id      string // the access request or grant acted on
	state   string // its state afterwards
	reason  string
	refusal error
}

func apiAnnotations(c *apiCall, ann map[string]string) {
	if c == nil {
		return
	}
	ann[audit.AnnotationEvent] = "api." + c.action
	if c.id != "" {
		ann[audit.AnnotationAccessRequest] = c.id
	}
	if c.state != "" {
		ann[audit.AnnotationAccessRequestState] = c.state
	}
	if c.reason != "" {
		ann[audit.AnnotationMessage] = c.reason
	}
	if c.refusal != nil {
		ann[audit.AnnotationDecision] = "refused"
		ann[audit.AnnotationMessage] = c.refusal.Error()
	}
}

// RequestView is an access request as the API shows it.
type RequestView struct {
	cluster.Request
	// Summary says in words what is asked.
	Summary string `json:"summary"`
}

// RequestList is the reply to GET requests.
type RequestList struct {
	Items []RequestView `json:"items"`
}

// GrantList is the reply to GET grants.
type GrantList struct {
	Items []cluster.Grant `json:"items"`
}

// GrantRequestSpec is the body of POST requests: a request for time-bound
// access.
type GrantRequestSpec struct {
	policy.GrantScope
	// Duration is how long the grant lasts once approved ("30m").
	Duration policy.Duration `json:"duration"`
	// Reason says why; required.
	Reason string `json:"reason"`
}

// DecisionSpec is the body of approve, deny and revoke calls.
type DecisionSpec struct {
	Reason string `json:"reason,omitempty"`
}

// errAPI marks a malformed API call.
var errAPI = errors.New("bad request")

// serveAPI answers a call of kubegate's API by an authenticated principal.
// It replies itself, and every call, refused or not, is audited.
func (g *Gateway) serveAPI(w http.ResponseWriter, r *http.Request, x *exchange) error {
	x.api = &apiCall{action: "unknown"}
	if g.cfg.Approvals == nil {
		return g.apiError(w, x, fmt.Errorf("%w: no approval state is configured", ErrApprovalsUnavailable))
	}
	if r.Method == http.MethodGet {
		// Reads come from this node's replica. It first catches up with
		// everything the leader has committed, so a list shows every
		// decision already acknowledged on any node; a node cut off from
		// the leader refuses rather than show a stale view.
		if sy, ok := g.cfg.Approvals.(interface{ Sync(context.Context) error }); ok {
			if err := sy.Sync(r.Context()); err != nil {
				return g.apiError(w, x, fmt.Errorf("%w: this node cannot confirm its copy is current: %w", ErrApprovalsUnavailable, err))
			}
		}
	}
	g.api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, x)))
	return nil
}

// newAPI routes kubegate's API; each handler finds its exchange in the
// request's context.
func (g *Gateway) newAPI() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(http.ResponseWriter, *http.Request, *exchange)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { h(w, r, exchangeFrom(r.Context())) })
	}
	handle("GET "+APIPrefix+"requests", g.apiListRequests)
	handle("POST "+APIPrefix+"requests", g.apiCreateGrantRequest)
	handle("GET "+APIPrefix+"requests/{id}", g.apiGetRequest)
	handle("POST "+APIPrefix+"requests/{id}/{verb}", g.apiDecide)
	handle("GET "+APIPrefix+"grants", g.apiListGrants)
	handle("POST "+APIPrefix+"grants/{id}/revoke", g.apiRevoke)
	handle(APIPrefix, func(w http.ResponseWriter, r *http.Request, x *exchange) {
		g.apiError(w, x, fmt.Errorf("%w: no API call %s %s", errAPI, r.Method, r.URL.Path))
	})
	return mux
}

// isApprover reports whether p is in a group that decides on grants, and
// so may see every access request.
func (g *Gateway) isApprover(p *identity.Principal) bool {
	_, ok := groupIn(p.Groups, g.cfg.GrantApprovers.Groups)
	return ok
}

// mayDecide reports whether p is in one of req's approver groups.
func mayDecide(p *identity.Principal, req *cluster.Request) bool {
	_, ok := groupIn(p.Groups, req.ApproverGroups)
	return ok
}

// groupIn returns the first of groups that allowed lists.
func groupIn(groups, allowed []string) (string, bool) {
	for _, g := range groups {
		if slices.Contains(allowed, g) {
			return g, true
		}
	}
	return "", false
}

func (g *Gateway) apiListRequests(w http.ResponseWriter, r *http.Request, x *exchange) {
	x.api.action = "request.list"
	q := r.URL.Query()
	f := cluster.Filter{State: cluster.State(q.Get("state")), Kind: cluster.Kind(q.Get("kind"))}
	all := g.isApprover(x.principal)
	out := RequestList{Items: []RequestView{}}
	now := g.cfg.Now()
	for _, req := range g.cfg.Approvals.FSM().Requests(f) {
		if all || req.Requester.User == x.principal.User || mayDecide(x.principal, &req) {
			out.Items = append(out.Items, view(req, now))
		}
	}
	g.apiReply(w, http.StatusOK, out)
}

func (g *Gateway) apiGetRequest(w http.ResponseWriter, r *http.Request, x *exchange) {
	x.api.action, x.api.id = "request.get", r.PathValue("id")
	req, ok := g.cfg.Approvals.FSM().Get(x.api.id)
	if !ok || !(g.isApprover(x.principal) || req.Requester.User == x.principal.User || mayDecide(x.principal, &req)) {
		g.apiError(w, x, fmt.Errorf("%w: %s", cluster.ErrNotFound, x.api.id))
		return
	}
	g.apiReply(w, http.StatusOK, view(req, g.cfg.Now()))
}

func (g *Gateway) apiCreateGrantRequest(w http.ResponseWriter, r *http.Request, x *exchange) {
	x.api.action = "request.create"
	var spec GrantRequestSpec
	if err := decodeJSON(r.Body, &spec); err != nil {
		g.apiError(w, x, err)
		return
	}
	d := time.Duration(spec.Duration)
	switch err := spec.GrantScope.Validate(); {
	case err != nil:
		g.apiError(w, x, fmt.Errorf("%w: %w", errAPI, err))
		return
	case d <= 0 || d > g.cfg.MaxGrantDuration:
		g.apiError(w, x, fmt.Errorf("%w: duration must be more than 0 and at most %s", errAPI, g.cfg.MaxGrantDuration))
		return
	case strings.TrimSpace(spec.Reason) == "":
		g.apiError(w, x, fmt.Errorf("%w: a reason is required", errAPI))
		return
	}
	now := g.cfg.Now()
	count := g.cfg.GrantApprovers.Count
	if count == 0 {
		count = 1
	}
	res, err := g.cfg.Approvals.Apply(r.Context(), cluster.Command{Op: cluster.OpCreate, Now: now, Request: &cluster.Request{
		ID: x.id, Kind: cluster.KindGrant,
		Requester:         cluster.Person{User: x.principal.User, Groups: x.principal.Groups},
		ExpiresAt:         now.Add(g.cfg.GrantRequestTTL),
		Reason:            spec.Reason,
		Rule:              "grant",
		ApproverGroups:    g.cfg.GrantApprovers.Groups,
		ApprovalsRequired: count,
		Scope:             cluster.Scope(spec.GrantScope),
		Duration:          d,
	}})
	if !g.applied(w, x, res, err) {
		return
	}
	x.api.reason = spec.Reason
	g.notify(notify.Event{Type: "request.created", Time: now}, res.Request)
	g.apiReply(w, http.StatusCreated, view(*res.Request, now))
}

func (g *Gateway) apiDecide(w http.ResponseWriter, r *http.Request, x *exchange) {
	verb := r.PathValue("verb")
	x.api.action, x.api.id = "request."+verb, r.PathValue("id")
	var op cluster.Op
	switch verb {
	case "approve":
		op = cluster.OpApprove
	case "deny":
		op = cluster.OpDeny
	default:
		g.apiError(w, x, fmt.Errorf("%w: unknown action %q (want approve or deny)", errAPI, verb))
		return
	}
	var spec DecisionSpec
	if err := decodeJSON(r.Body, &spec); err != nil {
		g.apiError(w, x, err)
		return
	}
	if op == cluster.OpDeny && strings.TrimSpace(spec.Reason) == "" {
		g.apiError(w, x, fmt.Errorf("%w: a denial needs a reason", errAPI))
		return
	}
	x.api.reason = spec.Reason
	now := g.cfg.Now()
	res, err := g.cfg.Approvals.Apply(r.Context(), cluster.Command{
		Op: op, Now: now, ID: x.api.id, Reason: spec.Reason,
		By: cluster.Person{User: x.principal.User, Groups: x.principal.Groups},
	})
	if !g.applied(w, x, res, err) {
		return
	}
	if res.Changed {
		ev := notify.Event{Time: now, Actor: x.principal.User}
		switch res.Request.State {
		case cluster.StateApproved:
			ev.Type = "request.approved"
		case cluster.StateDenied:
			ev.Type = "request.denied"
		default:
			ev.Type = "approval.added"
		}
		ev.Reason = spec.Reason
		g.notify(ev, res.Request)
	}
	g.apiReply(w, http.StatusOK, view(*res.Request, now))
}

func (g *Gateway) apiListGrants(w http.ResponseWriter, r *http.Request, x *exchange) {
	x.api.action = "grant.list"
	holder := x.principal.User
	if g.isApprover(x.principal) && r.URL.Query().Get("all") == "true" {
		holder = ""
	}
	g.apiReply(w, http.StatusOK, GrantList{Items: append([]cluster.Grant{}, g.cfg.Approvals.FSM().Grants(holder)...)})
}

func (g *Gateway) apiRevoke(w http.ResponseWriter, r *http.Request, x *exchange) {
	x.api.action, x.api.id = "grant.revoke", r.PathValue("id")
	var spec DecisionSpec
	if err := decodeJSON(r.Body, &spec); err != nil {
		g.apiError(w, x, err)
		return
	}
	x.api.reason = spec.Reason
	now := g.cfg.Now()
	res, err := g.cfg.Approvals.Apply(r.Context(), cluster.Command{
		Op: cluster.OpRevoke, Now: now, GrantID: x.api.id, Reason: spec.Reason,
		By: cluster.Person{User: x.principal.User, Groups: x.principal.Groups},
	})
	if err == nil && res.Err == nil && res.Grant == nil {
		err = errors.New("the state machine returned no grant")
	}
	if !g.applied(w, x, res, err) {
		return
	}
	x.api.state = "revoked"
	if req, ok := g.cfg.Approvals.FSM().Get(res.Grant.RequestID); ok {
		g.notify(notify.Event{Type: "grant.revoked", Time: now, Actor: x.principal.User, Reason: spec.Reason}, &req)
	}
	g.apiReply(w, http.StatusOK, res.Grant)
}

// applied reports whether a command took effect, and otherwise replies
// with the reason.
func (g *Gateway) applied(w http.ResponseWriter, x *exchange, res cluster.Result, err error) bool {
	if err != nil {
		g.apiError(w, x, fmt.Errorf("%w: %w", ErrApprovalsUnavailable, err))
		return false
	}
	if res.Err != nil {
		g.apiError(w, x, res.Err)
		return false
	}
	if res.Request != nil {
		x.api.state = string(res.Request.State)
	}
	return true
}

// apiStatus maps an API error to its HTTP code and Status reason.
func apiStatus(err error) (int, metav1.StatusReason) {
	switch {
	case errors.Is(err, errAPI), errors.Is(err, cluster.ErrInvalidCommand):
		return http.StatusBadRequest, metav1.StatusReasonBadRequest
	case errors.Is(err, cluster.ErrNotFound), errors.Is(err, cluster.ErrGrantNotFound):
		return http.StatusNotFound, metav1.StatusReasonNotFound
	case errors.Is(err, cluster.ErrSelfApproval), errors.Is(err, cluster.ErrNotApprover), errors.Is(err, cluster.ErrNotGrantHolder):
		return http.StatusForbidden, metav1.StatusReasonForbidden
	case errors.Is(err, cluster.ErrAlreadyDecided), errors.Is(err, cluster.ErrExpired),
		errors.Is(err, cluster.ErrGrantRevoked), errors.Is(err, cluster.ErrDuplicateID):
		return http.StatusConflict, metav1.StatusReasonConflict
	case errors.Is(err, ErrApprovalsUnavailable):
		return http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable
	}
	return http.StatusInternalServerError, metav1.StatusReasonInternalError
}

func (g *Gateway) apiError(w http.ResponseWriter, x *exchange, err error) error {
	x.api.refusal = err
	code, reason := apiStatus(err)
	msg := "kubegate: " + err.Error()
	if x.api.id != "" {
		msg = fmt.Sprintf("kubegate: %s %s: %v", x.api.action, x.api.id, err)
	}
	writeStatus(w, code, reason, msg, x.id, nil)
	return nil
}

func (g *Gateway) apiReply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = jsonEncode(w, v)
}

// decodeJSON reads a small JSON body strictly; an empty body is the zero
// value.
func decodeJSON(body io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %w", errAPI, err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errAPI, err)
	}
	return nil
}

// view is req as the API shows it: with a summary, and a pending request
// past its expiry shown as expired.
func view(req cluster.Request, now time.Time) RequestView {
	if req.State == cluster.StatePending && !now.Before(req.ExpiresAt) {
		req.State = cluster.StateExpired
	}
	return RequestView{Request: req, Summary: Summarize(&req)}
}
