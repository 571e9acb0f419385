package audit

import (
	"context"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Sink receives audit events. Write returns once the event is stored as far
// as the sink promises; an error means the event may be lost, and the
// gateway fails closed on it.
type Sink interface {
	Write(ctx context.Context, ev *auditv1.Event) error
}

// Annotation keys kubegate adds to audit events.
const (
	AnnotationDecision  = "kubegate.dev/decision"
	AnnotationRule      = "kubegate.dev/rule"
	AnnotationMessage   = "kubegate.dev/message"
	AnnotationIssuer    = "kubegate.dev/issuer"
	AnnotationUpgrade   = "kubegate.dev/upgrade"
	AnnotationBodyOmit  = "kubegate.dev/body-omitted"
	AnnotationUpstream  = "kubegate.dev/upstream-error"
	AnnotationAuthError = "kubegate.dev/authentication-error"
)

// Annotation keys describing a relayed exec, attach or port-forward session.
const (
	AnnotationSessionProtocol = "kubegate.dev/session-protocol"
	AnnotationSessionExitCode = "kubegate.dev/session-exit-code"
	AnnotationSessionError    = "kubegate.dev/session-error"
	AnnotationSessionBytesIn  = "kubegate.dev/session-bytes-stdin"
	AnnotationSessionBytesOut = "kubegate.dev/session-bytes-stdout"
	AnnotationSessionBytesErr = "kubegate.dev/session-bytes-stderr"
	AnnotationSessionDuration = "kubegate.dev/session-duration"
	AnnotationRecording       = "kubegate.dev/recording"
	AnnotationRecordingSHA256 = "kubegate.dev/recording-sha256"
	AnnotationRecordingStderr = "kubegate.dev/recording-stderr"
	AnnotationRecordingError  = "kubegate.dev/recording-error"
	// AnnotationRecordingFailurePolicy is set when a rule lets the session
	// go on unrecorded should recording fail.
	AnnotationRecordingFailurePolicy = "kubegate.dev/recording-failure-policy"
	AnnotationEvent                  = "kubegate.dev/event"
	AnnotationForwardPort            = "kubegate.dev/forward-port"
	AnnotationForwardToPod           = "kubegate.dev/forward-bytes-to-pod"
	AnnotationForwardFromPod         = "kubegate.dev/forward-bytes-from-pod"
	AnnotationForwardDuration        = "kubegate.dev/forward-duration"
	AnnotationForwardError           = "kubegate.dev/forward-error"
)
