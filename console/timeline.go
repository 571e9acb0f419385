package console

import (
	"net/http"
	"slices"
	"time"

	"github.com/kubegate/kubegate/audit"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// maxBodyShown bounds each body a timeline entry carries.
const maxBodyShown = 16 << 10

// credentialView is one agent session: the calls made with one bearer
// token.
type credentialView struct {
	Credential string    `json:"credential"`
	User       string    `json:"user"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	Calls      int       `json:"calls"`
	Refused    int       `json:"refused"`
}

// timelineEntryView is one API call of a timeline, with its masked bodies
// as the audit event holds them.
type timelineEntryView struct {
	Offset   float64   `json:"offset"` // seconds from the first call
	Time     time.Time `json:"time"`
	Verb     string    `json:"verb"`
	Resource string    `json:"resource"`
	Object   string    `json:"object"`
	Decision string    `json:"decision"`
	Code     int32     `json:"code"`
	Note     string    `json:"note,omitempty"`
	AuditID  string    `json:"auditID"`
	Request  string    `json:"request,omitempty"`
	Response string    `json:"response,omitempty"`
	// BodiesTruncated is set when a body was cut to maxBodyShown.
	BodiesTruncated bool `json:"bodiesTruncated,omitempty"`
}

// timelineView is GET /ui/api/timeline: without a credential, the recent
// agent sessions to pick from; with one, its calls.
type timelineView struct {
	Sessions []credentialView    `json:"sessions"`
	Calls    []timelineEntryView `json:"calls"`
}

// maxSessionsListed bounds the agent sessions offered.
const maxSessionsListed = 100

func (c *Console) timeline(w http.ResponseWriter, r *http.Request, _ *session) {
	out := timelineView{Sessions: []credentialView{}, Calls: []timelineEntryView{}}
	if c.cfg.AuditFile == "" {
		writeJSON(w, out)
		return
	}
	q := r.URL.Query()
	if cred := q.Get("credential"); cred != "" {
		sel, err := audit.ParseSessionSelector(cred)
		if err != nil {
			writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		events, err := audit.SelectSession(c.cfg.AuditFile, sel)
		if err != nil {
			writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		for i, e := range audit.Timeline(events) {
			ev := events[i]
			v := timelineEntryView{
				Offset: e.Offset.Seconds(), Time: ev.RequestReceivedTimestamp.Time, Verb: e.Verb, Resource: e.Resource, Object: e.Object,
				Decision: e.Decision, Code: e.Code, Note: e.Note, AuditID: e.AuditID,
			}
			v.Request, v.BodiesTruncated = body(ev.RequestObject)
			var cut bool
			v.Response, cut = body(ev.ResponseObject)
			v.BodiesTruncated = v.BodiesTruncated || cut
			out.Calls = append(out.Calls, v)
		}
		writeJSON(w, out)
		return
	}
	user := q.Get("user")
	byCred := map[string]*credentialView{}
	err := audit.ScanAuditEvents(c.cfg.AuditFile, func(ev *auditv1.Event) bool {
		cred := ev.Annotations[audit.AnnotationCredential]
		if cred == "" || !contains(ev.User.Username, user) {
			return true
		}
		t := ev.RequestReceivedTimestamp.Time
		cv, ok := byCred[cred]
		if !ok {
			cv = &credentialView{Credential: cred, User: ev.User.Username, First: t}
			byCred[cred] = cv
		}
		cv.Calls++
		if d := ev.Annotations[audit.AnnotationDecision]; d != "" && d != "allow" {
			cv.Refused++
		}
		if t.After(cv.Last) {
			cv.Last = t
		}
		return true
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "reading the audit log: "+err.Error())
		return
	}
	for _, cv := range byCred {
		out.Sessions = append(out.Sessions, *cv)
	}
	slices.SortFunc(out.Sessions, func(a, b credentialView) int { return b.Last.Compare(a.Last) })
	if len(out.Sessions) > maxSessionsListed {
		out.Sessions = out.Sessions[:maxSessionsListed]
	}
	writeJSON(w, out)
}

// body is a recorded body as text, cut to maxBodyShown.
func body(obj *runtime.Unknown) (string, bool) {
	if obj == nil {
		return "", false
	}
	raw := obj.Raw
	if len(raw) > maxBodyShown {
		return string(raw[:maxBodyShown]), true
	}
	return string(raw), false
}
