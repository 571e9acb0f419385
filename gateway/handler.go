package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/policy"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// exchange is one request's state as it travels the pipeline.
type exchange struct {
	id        string
	start     time.Time
	principal *identity.Principal
	req       *k8swire.Request
	decision  policy.Decision
	body      []byte // the request body, when kubegate read it to decide
	authErr   error
	upErr     error
	session   *session // set for exec, attach and port-forward relays
	hold      *hold    // set for requests a rule held for approval
	api       *apiCall // set for calls of kubegate's own API
	// credential identifies the bearer token without revealing it.
	credential string
	mask       maskState // whether responses are masked
	masked     bool      // the response body had something masked
	maskErr    error     // masking failed; the client got an error instead
	// bodyTimedOut is set when the request body missed its read deadline.
	bodyTimedOut atomic.Bool
}

type ctxKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(ctxKey{}).(*exchange)
	return x
}

// ServeHTTP runs the pipeline: authenticate, classify, decide, forward,
// record. Every refusal is a Kubernetes Status, and every request, refused
// or not, produces exactly one audit event.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{id: string(uuid.NewUUID()), start: g.cfg.Now()}
	rec := newResponseRecorder(w, g.cfg.MaxAuditBodyBytes)
	rec.Header().Set("X-Kubegate-Request-Id", x.id)
	defer func() {
		g.finish(r, x, rec)
	}()

	if err := g.serve(rec, r, x); err != nil {
		code, reason := statusFor(err)
		if secs := retryAfterSeconds(err); secs > 0 {
			rec.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		if errors.Is(err, ErrBodyTimeout) {
			rec.Header().Set("Connection", "close") // HTTP/2: GOAWAY
		}
		g.cfg.Metrics.limitRefused(err)
		msg := g.message(err, x)
		log := g.requestLog(x) // only now: With costs an allocation per request
		if code >= 500 {
			log.Warn("request failed", "code", code, "err", err)
		} else {
			log.Info("request refused", "code", code, "user", principalName(x), "err", err)
		}
		if discoveryClient(r) {
			writeTextStatus(rec, code, msg, x.id)
			return
		}
		writeStatus(rec, code, reason, msg, x.id, x.req)
	}
}

// serve runs the steps that can refuse the request. A nil return means the
// request was forwarded and answered.
func (g *Gateway) serve(w *responseRecorder, r *http.Request, x *exchange) error {
	p, err := g.cfg.Authenticator.Authenticate(r.Context(), r)
	if err != nil {
		x.authErr = err
		return err
	}
	x.principal = p
	x.credential = credentialFor(r, p)
	if err := g.limiter.allow(p.User, g.cfg.Now()); err != nil {
		return err
	}
	if strings.HasPrefix(r.URL.Path, APIPrefix) {
		return g.serveAPI(w, g.boundBody(w, r, x, nil), x)
	}
	req, err := k8swire.Classify(r)
	if err != nil {
		return err
	}
	x.req = &req
	if hasClientImpersonation(r.Header) {
		return ErrClientImpersonation
	}
	r = g.boundBody(w, r, x, &req)
	if bodyVerbs[req.Verb] && req.Upgrade == k8swire.NoUpgrade && r.Body != nil && r.Body != http.NoBody {
		if x.body, err = readBody(r.Body, g.cfg.MaxBodyBytes); err != nil {
			return err
		}
	}
	x.decision = g.cfg.Policy.Decide(policy.Input{
		Subject:     policy.Subject{User: p.User, UID: p.UID, Groups: p.Groups, Extra: p.Extra},
		Request:     req,
		Body:        x.body,
		ContentType: r.Header.Get("Content-Type"),
		Grants:      g.activeGrants(p.User, g.cfg.Now()),
	})
	if req.Via != "" && (x.decision.Action == policy.Allow || x.decision.Action == policy.RequireApproval) {
		// Rules that deny exec, attach or port-forward deny it through a
		// proxy too; what they would allow is not relayed that way, as
		// kubegate could neither record nor mask it.
		return ErrProxiedStream
	}
	switch x.decision.Action {
	case policy.Allow:
	case policy.RequireApproval:
		if err := g.holdForApproval(r.Context(), x); err != nil {
			return err
		}
		w.Header().Add("Warning", approvalWarning(x.hold))
	default:
		return ErrDenied
	}
	if h, ok := g.cfg.Audit.(healthReporter); ok {
		if err := h.Healthy(); err != nil {
			return fmt.Errorf("%w: %w", ErrAuditUnavailable, err)
		}
	}
	x.mask = g.maskStateFor(x)
	if streaming(&req, r) {
		done, err := g.limiter.openStream(p.User, g.cfg.Now())
		if err != nil {
			return err
		}
		defer done()
	}
	if req.Upgrade != k8swire.NoUpgrade {
		if req.Upgrade == k8swire.WebSocket && req.Verb == "watch" && req.IsResourceRequest && req.Subresource == "" && req.Stream == nil {
			return g.serveWatchWebSocket(w, r, x)
		}
		return g.serveStream(w, r, x)
	}
	ctx := context.WithValue(r.Context(), ctxKey{}, x)
	out := r.WithContext(ctx)
	if x.body != nil {
		out.Body = io.NopCloser(bytes.NewReader(x.body))
		out.ContentLength = int64(len(x.body))
	}
	g.proxy.ServeHTTP(w, out)
	return nil
}

// bodyVerbs are the verbs whose request bodies policy may inspect.
var bodyVerbs = map[string]bool{"create": true, "update": true, "patch": true}

func readBody(body io.ReadCloser, limit int64) ([]byte, error) {
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading request body: %w", k8swire.ErrBadRequest, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, limit)
	}
	return b, nil
}

// hasClientImpersonation reports whether the client sent impersonation
// headers of its own.
func hasClientImpersonation(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "Impersonate-") {
			return true
		}
	}
	return false
}

// message is the text a refused client sees. Authentication errors say what
// was wrong without echoing the token.
func (g *Gateway) message(err error, x *exchange) string {
	switch {
	case errors.Is(err, ErrDenied):
		msg := x.decision.Message
		if msg == "" {
			msg = "no reason given"
		}
		return fmt.Sprintf("kubegate: %s denied by rule %q: %s", describe(x.req), x.decision.Rule, msg)
	case errors.Is(err, ErrHoldDenied), errors.Is(err, ErrHoldExpired), errors.Is(err, ErrHoldUsed):
		return holdMessage(err, x)
	case errors.Is(err, ErrApprovalsUnavailable):
		return fmt.Sprintf("kubegate: %s requires approval by rule %q, and approvals are unavailable, so it is refused: %v", describe(x.req), x.decision.Rule, err)
	case x.api != nil:
		return "kubegate: " + err.Error()
	case errors.Is(err, ErrProxiedStream):
		return fmt.Sprintf("kubegate: %s through %s is refused: kubegate relays exec, attach and port-forward only as pods/exec, pods/attach and pods/portforward, where it records and masks them", describe(x.req), x.req.Via)
	case errors.Is(err, ErrClientImpersonation):
		return "kubegate: impersonation headers from clients are not accepted; requests run as the authenticated identity"
	case errors.Is(err, ErrStreamsUnavailable):
		return fmt.Sprintf("kubegate: %s is a streaming upgrade (%s) that this gateway is not configured to relay", describe(x.req), x.req.Upgrade)
	case errors.Is(err, ErrAuditUnavailable):
		return "kubegate: auditing is unavailable, so the request is refused rather than go unrecorded: " + err.Error()
	case errors.Is(err, ErrUpstream):
		return "kubegate: the Kubernetes API server is unavailable"
	case x.principal == nil:
		return "kubegate: " + err.Error()
	}
	return "kubegate: " + err.Error()
}

// requestLog is the logger for x's messages.
func (g *Gateway) requestLog(x *exchange) *slog.Logger {
	return g.cfg.Log.With("request_id", x.id)
}

func principalName(x *exchange) string {
	if x.principal == nil {
		return ""
	}
	return x.principal.User
}

// finish records the request's metrics and its audit event.
func (g *Gateway) finish(r *http.Request, x *exchange, rec *responseRecorder) {
	end := g.cfg.Now()
	decision := string(x.decision.Action)
	if x.principal == nil {
		decision = "unauthenticated"
	} else if x.api != nil {
		decision = "api"
	} else if x.req == nil {
		decision = "invalid"
	}
	verb := "unknown"
	if x.req != nil {
		verb = x.req.Verb
	}
	g.cfg.Metrics.observe(verb, decision, rec.code(), end.Sub(x.start))
	if x.upErr != nil {
		g.cfg.Metrics.upstreamErrors.Inc()
	}
	ev := g.auditEvent(r, x, rec, end)
	if err := g.cfg.Audit.Write(context.WithoutCancel(r.Context()), ev); err != nil {
		g.cfg.Metrics.auditErrors.Inc()
		g.requestLog(x).Error("writing audit event", "err", err)
	}
}
