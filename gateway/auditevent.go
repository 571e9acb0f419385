package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/upgrade"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/yaml"
)

// auditEvent builds the request's one audit event, shaped like the
// apiserver's own (audit.k8s.io/v1, stage ResponseComplete).
func (g *Gateway) auditEvent(r *http.Request, x *exchange, rec *responseRecorder, end time.Time) *auditv1.Event {
	level := auditv1.Level(x.decision.AuditLevel)
	if level == "" || level == auditv1.LevelNone {
		level = auditv1.LevelMetadata
	}
	ev := &auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:                    level,
		AuditID:                  types.UID(x.id),
		Stage:                    auditv1.StageResponseComplete,
		RequestURI:               g.auditRequestURI(r.URL),
		SourceIPs:                sourceIPs(r),
		UserAgent:                r.UserAgent(),
		ResponseStatus:           &metav1.Status{Code: int32(rec.code())},
		RequestReceivedTimestamp: metav1.NewMicroTime(x.start),
		StageTimestamp:           metav1.NewMicroTime(end),
		// Room for an allowed request's annotations without growing.
		Annotations: make(map[string]string, 8),
	}
	if x.principal != nil {
		u := authnv1.UserInfo{Username: x.principal.User, UID: x.principal.UID, Groups: x.principal.Groups}
		if len(x.principal.Extra) > 0 {
			u.Extra = map[string]authnv1.ExtraValue{}
			for k, v := range x.principal.Extra {
				u.Extra[k] = v
			}
		}
		ev.User = u
		ev.ImpersonatedUser = &u // kubegate acts upstream as the principal
		ev.Annotations[audit.AnnotationIssuer] = x.principal.Issuer
	}
	if x.credential != "" {
		ev.Annotations[audit.AnnotationCredential] = x.credential
	}
	if x.authErr != nil {
		ev.Annotations[audit.AnnotationAuthError] = x.authErr.Error()
	}
	if x.req == nil {
		ev.Verb = strings.ToLower(r.Method)
	} else {
		ev.Verb = x.req.Verb
		if x.req.IsResourceRequest {
			ev.ObjectRef = &auditv1.ObjectReference{
				Resource: x.req.Resource, Subresource: x.req.Subresource, Namespace: x.req.Namespace,
				Name: x.req.Name, APIGroup: x.req.APIGroup, APIVersion: x.req.APIVersion,
			}
		}
		if x.req.Upgrade != "" {
			ev.Annotations[audit.AnnotationUpgrade] = string(x.req.Upgrade)
		}
	}
	if x.decision.Action != "" {
		ev.Annotations[audit.AnnotationDecision] = string(x.decision.Action)
		ev.Annotations[audit.AnnotationRule] = x.decision.Rule
		if x.decision.Message != "" && x.decision.Action != "allow" {
			ev.Annotations[audit.AnnotationMessage] = x.decision.Message
		}
	}
	if x.upErr != nil {
		ev.Annotations[audit.AnnotationUpstream] = x.upErr.Error()
	}
	if x.decision.Grant != "" {
		ev.Annotations[audit.AnnotationGrant] = x.decision.Grant
	}
	holdAnnotations(x.hold, ev.Annotations)
	maskAnnotations(x, g.cfg.MaskExemptGroups, ev.Annotations)
	apiAnnotations(x.api, ev.Annotations)
	sessionAnnotations(x.session, ev.Annotations)
	if level == auditv1.LevelRequest || level == auditv1.LevelRequestResponse {
		g.addBodies(ev, r, x, rec, level)
	}
	return ev
}

// addBodies copies JSON request and response bodies into the event. Secret
// bodies are never copied: their values must not reach audit storage.
func (g *Gateway) addBodies(ev *auditv1.Event, r *http.Request, x *exchange, rec *responseRecorder, level auditv1.Level) {
	if x.req != nil && x.req.APIGroup == "" && x.req.Resource == "secrets" {
		ev.Annotations[audit.AnnotationBodyOmit] = "secret values are not recorded"
		return
	}
	if len(x.body) > 0 {
		body, ct, err := auditableBody(x.body, r.Header.Get("Content-Type"))
		if err == nil {
			body, err = g.maskStored(x, body)
		}
		switch {
		case err != nil:
			ev.Annotations[audit.AnnotationBodyOmit] = "request body: " + err.Error()
		case len(body) > g.cfg.MaxAuditBodyBytes:
			ev.Annotations[audit.AnnotationBodyOmit] = fmt.Sprintf("request body over %d bytes", g.cfg.MaxAuditBodyBytes)
		default:
			ev.RequestObject = &runtime.Unknown{Raw: body, ContentType: runtime.ContentTypeJSON}
			ev.Annotations[audit.AnnotationContentType] = ct
		}
	}
	if level == auditv1.LevelRequestResponse && rec.body.Len() > 0 {
		body := rec.body.Bytes()
		var err error
		if x.mask == maskExempt { // the client saw raw values; storage never does
			body, err = g.maskStored(x, body)
		}
		switch {
		case rec.truncated() || !isJSON(rec.Header().Get("Content-Type")):
			ev.Annotations[audit.AnnotationBodyOmit] = "response body not JSON or too large"
		case err != nil:
			ev.Annotations[audit.AnnotationBodyOmit] = "response body: " + err.Error()
		default:
			ev.ResponseObject = &runtime.Unknown{Raw: body, ContentType: runtime.ContentTypeJSON}
		}
	}
}

// maskStored masks a JSON body before it is stored in an audit event.
func (g *Gateway) maskStored(x *exchange, body []byte) ([]byte, error) {
	if g.cfg.Masker == nil || x.req == nil || !g.cfg.Masker.Applies(x.req) {
		return body, nil
	}
	masked, _, err := g.cfg.Masker.MaskBody(x.req, runtime.ContentTypeJSON, body)
	if err != nil {
		return nil, fmt.Errorf("not recorded: it could not be masked: %w", err)
	}
	return masked, nil
}

// maskAnnotations says whether the response was masked, or withheld, or
// shown raw to an exempt caller.
func maskAnnotations(x *exchange, groups []string, ann map[string]string) {
	switch {
	case x.maskErr != nil:
		ann[audit.AnnotationMaskError] = x.maskErr.Error()
	case x.mask == maskExempt:
		ann[audit.AnnotationMaskExempt], _ = groupIn(x.principal.Groups, groups)
	case x.masked:
		ann[audit.AnnotationMasked] = "true"
	}
}

// holdAnnotations describes a held request's wait and outcome.
func holdAnnotations(h *hold, ann map[string]string) {
	if h == nil {
		return
	}
	ann[audit.AnnotationAccessRequest] = h.id
	ann[audit.AnnotationHoldOutcome] = string(h.outcome)
	ann[audit.AnnotationHoldWait] = h.waited.Round(time.Millisecond).String()
	if h.outcome == cluster.StateApproved {
		var by []string
		for _, a := range h.request.Approvals {
			by = append(by, a.By.User)
		}
		ann[audit.AnnotationApprovedBy] = strings.Join(by, ",")
	}
}

// credentialID identifies the request's bearer token by a prefix of its
// hash; the token itself never reaches audit storage.
func credentialID(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// credentialFor is credentialID(r), taken from p when the authenticator
// hashed the same token already (identity.Principal.Credential): when the
// header is exactly "Bearer <token>", which the authenticator reads as the
// same token.
func credentialFor(r *http.Request, p *identity.Principal) string {
	if p.Credential != "" {
		h := r.Header.Get("Authorization")
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok && tok != "" && strings.TrimSpace(tok) == tok && len(r.Header.Values("Authorization")) == 1 {
			return p.Credential
		}
	}
	return credentialID(r)
}

// auditableBody is a request body as JSON, with the content type a client
// would re-send it with: JSON bodies as they are, protobuf bodies of
// built-in kinds re-encoded as JSON, and server-side apply's YAML as JSON
// (which is YAML too).
func auditableBody(body []byte, contentType string) ([]byte, string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, "", fmt.Errorf("content type %q: %w", contentType, err)
	}
	switch {
	case isJSON(mt):
		return body, mt, nil
	case mt == k8swire.ContentTypeProtobuf:
		j, err := k8swire.ProtobufToJSON(body)
		return j, runtime.ContentTypeJSON, err
	case mt == "application/apply-patch+yaml":
		j, err := yaml.YAMLToJSON(body)
		return j, mt, err
	}
	return nil, "", fmt.Errorf("content type %s is not recorded", mt)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func sourceIPs(r *http.Request) []string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return []string{host}
}

// auditPortForwardConnection writes one event per forwarded connection of a
// port-forward session, tied to the session's request by its audit id.
func (g *Gateway) auditPortForwardConnection(r *http.Request, x *exchange, st upgrade.PortForwardConnStats) {
	ev := g.auditEvent(r, x, &responseRecorder{status: http.StatusSwitchingProtocols}, st.End)
	ev.AuditID = types.UID(x.id + "-" + strconv.Itoa(int(st.Port)) + "-" + st.RequestID)
	ev.Stage = auditv1.StageResponseStarted
	ev.RequestReceivedTimestamp = metav1.NewMicroTime(st.Start)
	ev.Annotations[audit.AnnotationEvent] = "portforward.connection"
	ev.Annotations[audit.AnnotationForwardPort] = strconv.Itoa(int(st.Port))
	ev.Annotations[audit.AnnotationForwardToPod] = strconv.FormatInt(st.BytesToPod, 10)
	ev.Annotations[audit.AnnotationForwardFromPod] = strconv.FormatInt(st.BytesFromPod, 10)
	ev.Annotations[audit.AnnotationForwardDuration] = st.End.Sub(st.Start).String()
	if st.Err != nil {
		ev.Annotations[audit.AnnotationForwardError] = st.Err.Error()
	}
	if err := g.cfg.Audit.Write(context.WithoutCancel(r.Context()), ev); err != nil {
		g.cfg.Metrics.auditErrors.Inc()
		g.cfg.Log.Error("writing port-forward audit event", "request_id", x.id, "err", err)
	}
}
