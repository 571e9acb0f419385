package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/notify"
	"github.com/kubegate/kubegate/policy"
	"github.com/kubegate/kubegate/upgrade"
	"k8s.io/client-go/rest"
)

// Authenticator turns a request's credentials into a Principal.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (*identity.Principal, error)
}

// Decider decides what happens to a classified request.
type Decider interface {
	Decide(in policy.Input) policy.Decision
}

// readier is implemented by parts that can tell whether they are ready.
type readier interface {
	Ready(ctx context.Context) error
}

// healthReporter is implemented by audit sinks that remember their last
// failure.
type healthReporter interface{ Healthy() error }

// Config configures a Gateway. It is validated once by New and not changed
// afterwards.
type Config struct {
	// Upstream is the apiserver's base URL. Required.
	Upstream *url.URL
	// Transport carries requests to the apiserver with kubegate's own
	// credential (client certificate, token or exec plugin), as built by
	// client-go's rest.TransportFor. It must not add impersonation headers
	// of its own. Required.
	Transport http.RoundTripper
	// Authenticator verifies callers. Required.
	Authenticator Authenticator
	// Policy decides. Required.
	Policy Decider
	// Audit receives one event per request. Required.
	Audit audit.Sink
	// StreamUpstream is kubegate's credential for the apiserver as a
	// rest.Config, used to re-originate exec, attach and port-forward
	// sessions. Nil refuses those upgrades (fail closed).
	StreamUpstream *rest.Config
	// Recorder opens a recording for each exec and attach session. Nil
	// refuses exec and attach: sessions are never unrecorded.
	Recorder Recorder
	// ForwardCapture opens the capture file of one port-forwarded
	// connection, for rules that ask for captures. Nil refuses such rules'
	// port-forwards.
	ForwardCapture func(sessionID string, port int32, requestID string) (io.WriteCloser, error)
	// Approvals holds requests for approval and keeps time-bound grants.
	// Nil refuses requests that a require-approval rule matches (fail
	// closed) and knows no grants.
	Approvals Approvals
	// GrantApprovers decide on requests for grants, and may list every
	// access request; normally the policy's default approvers. No groups
	// means nobody can approve a grant.
	GrantApprovers policy.Approvers
	// MaxGrantDuration bounds the duration a grant may be asked for. Zero
	// means 8h.
	MaxGrantDuration time.Duration
	// GrantRequestTTL is how long a request for a grant waits for a
	// decision. Zero means 1h.
	GrantRequestTTL time.Duration
	// Notifier is told of new access requests and of decisions. Nil means
	// nobody is.
	Notifier notify.Notifier
	// NodeID names this node in held requests and notifications. Empty
	// means "kubegate".
	NodeID string
	// Masker masks secret values in responses, watch streams and exec or
	// attach output, and in everything kubegate stores. Nil masks nothing.
	Masker *k8swire.Masker
	// MaskExemptGroups see raw values (break glass); each such response is
	// audited as exempt. Their session recordings and audit bodies are
	// still masked.
	MaskExemptGroups []string
	// Metrics records request metrics. Nil means a private registry nobody
	// scrapes.
	Metrics *Metrics
	// Log receives one line per refused request and upstream errors. Nil
	// means slog.Default(). Tokens, headers and bodies are never logged.
	Log *slog.Logger
	// MaxBodyBytes bounds request bodies kubegate reads to decide on them.
	// Zero means 3 MiB, the apiserver's own limit.
	MaxBodyBytes int64
	// Limits bound each principal's request rate and concurrent streams.
	// The zero value is Limits' defaults.
	Limits Limits
	// MaxFrameBytes bounds a client's SPDY data frames and WebSocket frames
	// on exec, attach and port-forward sessions; a larger one ends the
	// session. Zero means 256 KiB.
	MaxFrameBytes int
	// BodyReadTimeout bounds how long a client may take to send the body of
	// a request that is not long-running (see longRunning): past it the
	// request gets 408 and the connection is closed. Zero means 30s;
	// negative means no bound.
	BodyReadTimeout time.Duration
	// MaxAuditBodyBytes bounds request and response bodies copied into
	// audit events at levels Request and RequestResponse. Zero means 64 KiB.
	MaxAuditBodyBytes int
	// Now is the clock for audit timestamps and latency. Nil means time.Now.
	Now func() time.Time
}

// Gateway is kubegate's per-request pipeline, an http.Handler.
type Gateway struct {
	cfg      Config
	proxy    *httputil.ReverseProxy
	api      http.Handler // kubegate's own API under APIPrefix
	sessions *Sessions
	limiter  *limiter
	// streamTLS is the apiserver TLS configuration exec and attach
	// sessions share (upgrade.UpstreamTLS); nil without StreamUpstream.
	streamTLS *tls.Config
}

// New validates cfg and builds the pipeline.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Upstream == nil:
		return nil, errors.New("gateway: upstream URL is required")
	case cfg.Transport == nil:
		return nil, errors.New("gateway: upstream transport is required")
	case cfg.Authenticator == nil:
		return nil, errors.New("gateway: authenticator is required")
	case cfg.Policy == nil:
		return nil, errors.New("gateway: policy is required")
	case cfg.Audit == nil:
		return nil, errors.New("gateway: audit sink is required")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 3 << 20
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = 30 * time.Second
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, errors.New("gateway: maxBodyBytes must not be negative")
	}
	if cfg.MaxAuditBodyBytes == 0 {
		cfg.MaxAuditBodyBytes = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxGrantDuration == 0 {
		cfg.MaxGrantDuration = 8 * time.Hour
	}
	if cfg.GrantRequestTTL == 0 {
		cfg.GrantRequestTTL = time.Hour
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "kubegate"
	}
	if l := cfg.Limits; math.IsNaN(l.RequestsPerSecond) || math.IsInf(l.RequestsPerSecond, 0) || l.Burst < 0 {
		return nil, errors.New("gateway: limits: requestsPerSecond must be a number and burst not negative")
	}
	g := &Gateway{cfg: cfg, sessions: NewSessions(), limiter: newLimiter(cfg.Limits)}
	if cfg.StreamUpstream != nil {
		tc, err := upgrade.UpstreamTLS(cfg.StreamUpstream)
		if err != nil {
			return nil, fmt.Errorf("gateway: stream upstream: %w", err)
		}
		g.streamTLS = tc
	}
	g.proxy = g.newProxy()
	g.api = g.newAPI()
	return g, nil
}

// Ready reports whether the apiserver answers /readyz with kubegate's
// credential, every identity provider's keys are loaded, and the audit sink
// takes events.
func (g *Gateway) Ready(ctx context.Context) error {
	if r, ok := g.cfg.Authenticator.(readier); ok {
		if err := r.Ready(ctx); err != nil {
			return fmt.Errorf("identity providers: %w", err)
		}
	}
	if h, ok := g.cfg.Audit.(healthReporter); ok {
		if err := h.Healthy(); err != nil {
			return fmt.Errorf("audit sink: %w", err)
		}
	}
	u := *g.cfg.Upstream
	u.Path = "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := g.cfg.Transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("apiserver %s: %w", g.cfg.Upstream.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("apiserver %s: /readyz answered %s", g.cfg.Upstream.Host, resp.Status)
	}
	return nil
}

// Sessions is the registry of this gateway's live stream sessions.
func (g *Gateway) Sessions() *Sessions { return g.sessions }
