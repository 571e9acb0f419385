package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/policy"
	"github.com/kubegate/kubegate/upgrade"
	"k8s.io/client-go/rest"
)

// SessionInfo describes an exec or attach session to its recorder.
type SessionInfo struct {
	// ID is the session's id: the request id of the request that opened it.
	ID        string
	Principal identity.Principal
	Request   k8swire.Request
	Start     time.Time
}

// SessionRecording records one session; audit.Recording implements it.
type SessionRecording interface {
	upgrade.Tap
	Close() (audit.RecordingSummary, error)
}

// Recorder opens the recording of a new session.
type Recorder func(SessionInfo) (SessionRecording, error)

// session is what the audit event says about a relayed stream.
type session struct {
	// continueUnrecorded is the rule's choice to go on when recording fails.
	continueUnrecorded bool
	result             upgrade.RemoteCommandResult
	summary            audit.RecordingSummary
	closeErr           error
	forwards           int
	forwardErr         int
}

// impersonating returns kubegate's upstream config acting as p.
func (g *Gateway) impersonating(p *identity.Principal) *rest.Config {
	cfg := rest.CopyConfig(g.cfg.StreamUpstream)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: p.User, UID: p.UID, Groups: p.Groups, Extra: p.Extra}
	return cfg
}

// serveStream relays an allowed exec, attach or port-forward upgrade. The
// decision and the recorder's creation come before the client's connection
// is hijacked, so their failures are still proper Status replies.
func (g *Gateway) serveStream(w http.ResponseWriter, r *http.Request, x *exchange) error {
	if g.cfg.StreamUpstream == nil || x.req.Stream == nil {
		return ErrStreamsUnavailable
	}
	u := *g.cfg.Upstream
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	upstream := g.impersonating(x.principal)
	s := x.req.Stream
	if x.req.Subresource == "portforward" {
		return g.servePortForward(w, r, x, upstream, &u)
	}
	rules := x.decision.Session
	continueUnrecorded := rules.OnRecordingFailure == policy.RecordingContinue
	x.session = &session{continueUnrecorded: continueUnrecorded}
	var rec SessionRecording
	var err error
	if g.cfg.Recorder == nil {
		err = errors.New("no session recorder is configured")
	} else {
		rec, err = g.cfg.Recorder(SessionInfo{ID: x.id, Principal: *x.principal, Request: g.maskedRequest(*x.req), Start: x.start})
		rec = g.maskRecording(rec, x)
	}
	if err != nil {
		if !continueUnrecorded {
			x.session = nil
			return fmt.Errorf("%w: opening the session recording: %w", ErrAuditUnavailable, err)
		}
		x.session.closeErr = fmt.Errorf("opening the session recording: %w", err)
	}
	ctx, done := g.sessions.add(r.Context(), LiveSession{
		ID: x.id, Node: g.cfg.NodeID, User: x.principal.User, Kind: x.req.Subresource, Namespace: x.req.Namespace, Pod: x.req.Name,
		Container: s.Container, Command: s.Command, TTY: s.TTY, Protocol: string(x.req.Upgrade), Started: x.start,
	})
	defer done()
	ctx, stop := boundSession(ctx, rules, x.decision.Rule)
	defer stop()
	ctx, stopGrant := g.boundByGrant(ctx, x.decision.Grant)
	defer stopGrant()
	var tap upgrade.Tap
	if rec != nil {
		tap = rec
	}
	if rules.IdleTimeout > 0 {
		idle := newIdleTap(ctx, tap, time.Duration(rules.IdleTimeout), x.decision.Rule)
		defer idle.stop()
		ctx, tap = idle.ctx, idle
	}
	x.session.result = upgrade.ServeRemoteCommand(w, r.WithContext(ctx), upgrade.RemoteCommandConfig{
		NewOutputFilter:  g.outputFilter(x),
		OutputFlushDelay: ttyFlushDelay(s.TTY),
		Upstream:         upstream, URL: &u, TLS: g.streamTLS, Attach: x.req.Subresource == "attach", Command: s.Command,
		Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, TTY: s.TTY,
		Tap: tap, ContinueWithoutRecording: continueUnrecorded, MaxFrameBytes: g.cfg.MaxFrameBytes,
		Log: g.cfg.Log.With("request_id", x.id),
	})
	if rec != nil {
		if e, ok := rec.(exitRecorder); ok && x.session.result.ExitCode >= 0 {
			_ = e.Exit(x.session.result.ExitCode) // a failure here surfaces from Close
		}
		x.session.summary, x.session.closeErr = rec.Close()
	}
	return nil
}

// exitRecorder is a recording that can note how the session ended.
type exitRecorder interface{ Exit(code int) error }

// ttyFlushDelay lets a terminal show what the masker holds back (a typed
// character that could begin a secret) after a short pause; programs' output
// is held until it can be judged.
func ttyFlushDelay(tty bool) time.Duration {
	if tty {
		return 50 * time.Millisecond
	}
	return 0
}

// boundSession ends the session at the rule's maximum duration.
func boundSession(ctx context.Context, rules policy.SessionRules, rule string) (context.Context, context.CancelFunc) {
	if rules.MaxDuration <= 0 {
		return ctx, func() {}
	}
	d := time.Duration(rules.MaxDuration)
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("%w: the session reached its maximum duration of %s (rule %q)", ErrSessionKilled, d, rule))
}

// servePortForward relays a port-forward session. Every forwarded
// connection's port is decided by policy again, as the SPDY and tunnel
// protocols name ports only once the session is open.
func (g *Gateway) servePortForward(w http.ResponseWriter, r *http.Request, x *exchange, upstream *rest.Config, u *url.URL) error {
	x.session = &session{}
	ctx, done := g.sessions.add(r.Context(), LiveSession{
		ID: x.id, Node: g.cfg.NodeID, User: x.principal.User, Kind: "portforward", Namespace: x.req.Namespace, Pod: x.req.Name,
		Protocol: string(x.req.Upgrade), Started: x.start,
	})
	defer done()
	ctx, stop := boundSession(ctx, x.decision.Session, x.decision.Rule)
	defer stop()
	ctx, stopGrant := g.boundByGrant(ctx, x.decision.Grant)
	defer stopGrant()
	r = r.WithContext(ctx)
	var capture func(port int32, requestID string) (io.WriteCloser, error)
	if x.decision.Session.CaptureForwards {
		if g.cfg.ForwardCapture == nil {
			return fmt.Errorf("%w: rule %q captures forwarded bytes, but no capture directory is configured", ErrAuditUnavailable, x.decision.Rule)
		}
		capture = func(port int32, requestID string) (io.WriteCloser, error) {
			return g.cfg.ForwardCapture(x.id, port, requestID)
		}
	}
	subject := policy.Subject{User: x.principal.User, UID: x.principal.UID, Groups: x.principal.Groups, Extra: x.principal.Extra}
	upgrade.ServePortForward(w, r, upgrade.PortForwardConfig{
		Upstream: upstream,
		URL:      u,
		Allow: func(port int32) error {
			req := *x.req
			st := *x.req.Stream
			st.Ports = []int32{port}
			req.Stream = &st
			d := g.cfg.Policy.Decide(policy.Input{Subject: subject, Request: req, Grants: g.activeGrants(subject.User, g.cfg.Now())})
			if d.Action == policy.RequireApproval && x.hold.approvedPort(port) {
				return nil
			}
			if d.Action != policy.Allow {
				msg := d.Message
				if msg == "" {
					msg = "no reason given"
				}
				return fmt.Errorf("kubegate: port %d denied by rule %q: %s (kubegate request id %s)", port, d.Rule, msg, x.id)
			}
			return nil
		},
		Capture: capture,
		OnConnection: func(st upgrade.PortForwardConnStats) {
			g.auditPortForwardConnection(r, x, st)
		},
		MaxFrameBytes: g.cfg.MaxFrameBytes,
		Log:           g.cfg.Log.With("request_id", x.id),
	})
	return nil
}

// sessionAnnotations describes a finished stream session in the request's
// audit event.
func sessionAnnotations(s *session, ann map[string]string) {
	if s == nil {
		return
	}
	// The request's event is written when its session ends: it is the
	// session.end event, carrying the outcome and the recording.
	ann[audit.AnnotationEvent] = "session.end"
	res := s.result
	if res.Protocol != "" {
		ann[audit.AnnotationSessionProtocol] = res.Protocol
	}
	if res.UpstreamProtocol != "" {
		ann[audit.AnnotationSessionUpstreamProtocol] = res.UpstreamProtocol
	}
	if res.ExitCode >= 0 {
		ann[audit.AnnotationSessionExitCode] = strconv.Itoa(res.ExitCode)
	}
	if res.Err != nil {
		ann[audit.AnnotationSessionError] = res.Err.Error()
	}
	if s.continueUnrecorded {
		ann[audit.AnnotationRecordingFailurePolicy] = policy.RecordingContinue
	}
	if res.RecordingErr != nil || s.closeErr != nil {
		var msgs []string
		for _, e := range []error{res.RecordingErr, s.closeErr} {
			if e != nil {
				msgs = append(msgs, e.Error())
			}
		}
		ann[audit.AnnotationRecordingError] = strings.Join(msgs, "; ")
	}
	if s.summary.Path != "" {
		ann[audit.AnnotationRecording] = s.summary.Path
		ann[audit.AnnotationRecordingSHA256] = s.summary.SHA256
		ann[audit.AnnotationSessionBytesIn] = strconv.FormatInt(s.summary.BytesIn, 10)
		ann[audit.AnnotationSessionBytesOut] = strconv.FormatInt(s.summary.BytesOut, 10)
		ann[audit.AnnotationSessionBytesErr] = strconv.FormatInt(s.summary.BytesErr, 10)
		ann[audit.AnnotationSessionDuration] = s.summary.Duration.String()
		if s.summary.StderrPath != "" {
			ann[audit.AnnotationRecordingStderr] = s.summary.StderrPath
		}
	}
}
