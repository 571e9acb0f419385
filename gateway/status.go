package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Sentinel errors of the pipeline, turned into HTTP replies by statusFor.
var (
	// ErrDenied is a request a policy rule refused.
	ErrDenied = errors.New("denied")
	// ErrStreamsUnavailable is an exec, attach or port-forward upgrade,
	// which this build does not relay yet; it fails closed.
	ErrStreamsUnavailable = errors.New("streams not available")
	// ErrAuditUnavailable means the audit sink cannot take events; requests
	// are refused rather than go unrecorded.
	ErrAuditUnavailable = errors.New("audit unavailable")
	// ErrBodyTooLarge is a request body over the configured limit.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrUpstream is a failure to reach the apiserver.
	ErrUpstream = errors.New("upstream unavailable")
	// ErrClientImpersonation is a client that sent its own Impersonate-*
	// headers; kubegate alone decides whom it impersonates.
	ErrClientImpersonation = errors.New("client impersonation refused")
	// ErrProxiedStream is an exec, attach or port-forward sent through a
	// proxy subresource (nodes/proxy to the kubelet, pods/proxy,
	// services/proxy) that policy did not deny: kubegate relays those only
	// as pods/exec, pods/attach and pods/portforward, recorded and masked.
	ErrProxiedStream = errors.New("streams through a proxy are not relayed")
)

// statusFor maps a pipeline error to the HTTP code and Status reason a
// Kubernetes client understands. It is the one place that does so.
func statusFor(err error) (int, metav1.StatusReason) {
	switch {
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout, metav1.StatusReasonTimeout
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrTooManyStreams):
		return http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests
	case errors.Is(err, k8swire.ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed
	case errors.Is(err, identity.ErrIssuerUnavailable):
		return http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable
	case errors.Is(err, identity.ErrNoToken), errors.Is(err, identity.ErrInvalidToken),
		errors.Is(err, identity.ErrUnknownIssuer), errors.Is(err, identity.ErrTokenInQuery):
		return http.StatusUnauthorized, metav1.StatusReasonUnauthorized
	case errors.Is(err, k8swire.ErrBadRequest):
		return http.StatusBadRequest, metav1.StatusReasonBadRequest
	case errors.Is(err, ErrDenied), errors.Is(err, ErrClientImpersonation), errors.Is(err, ErrProxiedStream),
		errors.Is(err, ErrHoldDenied), errors.Is(err, ErrHoldExpired), errors.Is(err, ErrHoldUsed):
		return http.StatusForbidden, metav1.StatusReasonForbidden
	case errors.Is(err, ErrApprovalsUnavailable):
		return http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 499, metav1.StatusReasonTimeout // the client went away; nobody reads this reply
	case errors.Is(err, ErrStreamsUnavailable):
		return http.StatusNotImplemented, metav1.StatusReasonMethodNotAllowed
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge
	case errors.Is(err, ErrMasking): // withheld before an upgrade (WebSocket watches)
		return http.StatusBadGateway, metav1.StatusReasonInternalError
	case errors.Is(err, ErrAuditUnavailable), errors.Is(err, ErrUpstream):
		return http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable
	}
	return http.StatusUnauthorized, metav1.StatusReasonUnauthorized // unknown authentication failures fail closed
}

// writeStatus replies with a metav1.Status whose message ends with the
// request id, so what kubectl prints can be matched to the audit event. A
// Retry-After header already set on w is repeated in the details, as the
// apiserver does.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, message, requestID string, req *k8swire.Request) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  fmt.Sprintf("%s (kubegate request id %s)", message, requestID),
		Reason:   reason,
		Code:     int32(code),
	}
	if req != nil && req.IsResourceRequest {
		st.Details = &metav1.StatusDetails{Name: req.Name, Group: req.APIGroup, Kind: req.Resource}
	}
	if secs, err := strconv.Atoi(w.Header().Get("Retry-After")); err == nil && secs > 0 {
		if st.Details == nil {
			st.Details = &metav1.StatusDetails{}
		}
		st.Details.RetryAfterSeconds = int32(secs)
	}
	b, _ := json.Marshal(st)
	writeRefusal(w, code, "application/json", b)
}

// writeTextStatus is writeStatus for client-go's discovery client, which
// cannot decode a Status body (kubectl then prints "unknown") but shows a
// text/plain body as it is.
func writeTextStatus(w http.ResponseWriter, code int, message, requestID string) {
	writeRefusal(w, code, "text/plain; charset=utf-8", fmt.Appendf(nil, "%s (kubegate request id %s)\n", message, requestID))
}

// writeRefusal writes a refusal's headers and body.
func writeRefusal(w http.ResponseWriter, code int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="kubegate"`)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// discoveryClient reports whether r comes from client-go's discovery
// client: it asks for aggregated discovery first.
func discoveryClient(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "g=apidiscovery.k8s.io")
}

// describe names a request the way kubectl users read it:
// `get pods "web" in namespace "dev"`.
func describe(r *k8swire.Request) string {
	if !r.IsResourceRequest {
		return fmt.Sprintf("%s %s", r.Verb, r.Path)
	}
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if r.APIGroup != "" {
		res += "." + r.APIGroup
	}
	s := r.Verb + " " + res
	if r.Name != "" {
		s += fmt.Sprintf(" %q", r.Name)
	}
	if r.Namespace != "" {
		s += fmt.Sprintf(" in namespace %q", r.Namespace)
	}
	return s
}

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
