package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/gateway"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// recentDecisions is how many decided access requests the page shows.
const recentDecisions = 50

// heartbeat keeps an idle event stream open through proxies.
const heartbeat = 15 * time.Second

// requestView is an access request as the approvals page shows it.
type requestView struct {
	gateway.RequestView
	// CanDecide is whether the viewer may approve or deny it now.
	CanDecide bool `json:"canDecide"`
}

// approvalsView is the approvals page's data: what is pending, oldest
// first, and the latest decisions, newest first.
type approvalsView struct {
	Now     time.Time     `json:"now"`
	Pending []requestView `json:"pending"`
	Decided []requestView `json:"decided"`
}

// snapshot reads the local replica.
func (c *Console) snapshot(s *session) approvalsView {
	now := c.cfg.Now()
	out := approvalsView{Now: now, Pending: []requestView{}, Decided: []requestView{}}
	if c.cfg.Approvals == nil {
		return out
	}
	for _, req := range c.cfg.Approvals.FSM().Requests(cluster.Filter{}) {
		v := requestView{RequestView: gateway.RequestView{Request: req, Summary: gateway.Summarize(&req)}}
		if req.State == cluster.StatePending && !now.Before(req.ExpiresAt) {
			v.State = cluster.StateExpired // nobody has marked it yet
		}
		if v.State == cluster.StatePending {
			v.CanDecide = s.role == RoleApprover && req.Requester.User != s.principal.User &&
				slices.ContainsFunc(s.principal.Groups, func(g string) bool { return slices.Contains(req.ApproverGroups, g) }) &&
				!slices.ContainsFunc(req.Approvals, func(d cluster.Decision) bool { return d.By.User == s.principal.User })
			out.Pending = append(out.Pending, v)
		} else {
			out.Decided = append(out.Decided, v)
		}
	}
	slices.SortFunc(out.Pending, func(a, b requestView) int { return a.CreatedAt.Compare(b.CreatedAt) })
	slices.SortFunc(out.Decided, func(a, b requestView) int { return decidedAt(b).Compare(decidedAt(a)) })
	if len(out.Decided) > recentDecisions {
		out.Decided = out.Decided[:recentDecisions]
	}
	return out
}

func decidedAt(v requestView) time.Time {
	if !v.DecidedAt.IsZero() {
		return v.DecidedAt
	}
	return v.ExpiresAt
}

// syncReplica has a follower catch up with the leader's commits first, as
// the gateway's API does for reads.
func (c *Console) syncReplica(ctx context.Context) error {
	if sy, ok := c.cfg.Approvals.(interface{ Sync(context.Context) error }); ok {
		return sy.Sync(ctx)
	}
	return nil
}

func (c *Console) listRequests(w http.ResponseWriter, r *http.Request, s *session) {
	if c.cfg.Approvals != nil {
		if err := c.syncReplica(r.Context()); err != nil {
			writeError(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "this node cannot confirm its copy of the approval state is current: "+err.Error())
			return
		}
	}
	writeJSON(w, c.snapshot(s))
}

// events streams the approvals page's data as server-sent events: one
// "approvals" event now and one after every change of the replicated
// state, whichever node or command made it.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "streaming is not supported here")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	end := time.NewTimer(time.Until(s.expires))
	defer end.Stop()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	var last []byte
	for {
		var changed <-chan struct{}
		if c.cfg.Approvals != nil {
			changed = c.cfg.Approvals.FSM().Changed("")
		}
		b, _ := json.Marshal(c.snapshot(s))
		if !bytes.Equal(b, last) {
			if err := writeEvent(w, "approvals", b); err != nil {
				return
			}
			fl.Flush()
			last = b
		}
		select {
		case <-changed:
		case <-tick.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
			// Re-read anyway: a request can expire without a change.
		case <-end.C:
			_ = writeEvent(w, "expired", []byte(`{}`))
			fl.Flush()
			return
		case <-ctx.Done():
			return
		case <-c.closed:
			return
		}
	}
}

// writeEvent writes one server-sent event whose data is a line of JSON.
func writeEvent(w io.Writer, name string, data []byte) error {
	_, err := io.WriteString(w, "event: "+name+"\ndata: "+string(data)+"\n\n")
	return err
}

// decideSpec is the body of POST /ui/api/requests/{id}/{verb}.
type decideSpec struct {
	Reason string `json:"reason"`
}

// decide approves or denies an access request by calling the gateway's
// kubegate API with the person's own ID token: the gateway authorizes,
// applies, audits and notifies it exactly as `kubegate approve`.
func (c *Console) decide(w http.ResponseWriter, r *http.Request, s *session) {
	verb := r.PathValue("verb")
	if verb != "approve" && verb != "deny" {
		writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "unknown action "+verb+" (want approve or deny)")
		return
	}
	var spec decideSpec
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "bad body: "+err.Error())
		return
	}
	if strings.TrimSpace(spec.Reason) == "" {
		writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "a reason is required")
		return
	}
	body, _ := json.Marshal(gateway.DecisionSpec{Reason: spec.Reason})
	c.callAPI(w, r, s, http.MethodPost, gateway.APIPrefix+"requests/"+pathSegment(r.PathValue("id"))+"/"+verb, body)
}

// callAPI calls the gateway's API in this process on the person's behalf
// and relays its reply (a RequestView, or a Status with the request id).
func (c *Console) callAPI(w http.ResponseWriter, r *http.Request, s *session, method, path string, body []byte) {
	req, err := http.NewRequestWithContext(r.Context(), method, c.origin+path, bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("Authorization", "Bearer "+s.idToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kubegate-console")
	rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
	c.cfg.API.ServeHTTP(rec, req)
	for _, k := range []string{"Content-Type", "X-Kubegate-Request-Id"} {
		if v := rec.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(rec.code)
	_, _ = w.Write(rec.body.Bytes())
}

// pathSegment keeps an id to one path segment.
func pathSegment(s string) string {
	return strings.NewReplacer("/", "", "?", "", "#", "", "%", "").Replace(s)
}

// bufferedResponse collects an in-process reply.
type bufferedResponse struct {
	header http.Header
	code   int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wrote {
		b.code, b.wrote = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
