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
	// AnnotationCredential identifies the bearer token a request carried,
	// "sha256:" and the first 16 hex digits of its SHA-256, so that one
	// agent session's calls can be found without storing the token.
	AnnotationCredential = "kubegate.dev/credential"
	// AnnotationContentType is the media type of a recorded request body.
	AnnotationContentType = "kubegate.dev/content-type"
	// AnnotationMasked is "true" when secret values in the response were
	// masked before it reached the client.
	AnnotationMasked = "kubegate.dev/masked"
	// AnnotationMaskExempt names the group that let the caller see raw
	// values (break glass).
	AnnotationMaskExempt = "kubegate.dev/mask-exempt"
	// AnnotationMaskError is why a response was withheld: it could not be
	// masked.
	AnnotationMaskError = "kubegate.dev/mask-error"
)

// Annotation keys describing approvals: held requests, and calls of
// kubegate's approval API.
const (
	// AnnotationAccessRequest is the id of the access request that held
	// the call, or that an approval API call acted on.
	AnnotationAccessRequest = "kubegate.dev/access-request"
	// AnnotationHoldOutcome is approved, denied, expired, used or pending
	// (the client went away first).
	AnnotationHoldOutcome = "kubegate.dev/hold-outcome"
	// AnnotationHoldWait is how long the call was held.
	AnnotationHoldWait = "kubegate.dev/hold-wait"
	// AnnotationApprovedBy lists the approvers that released the call.
	AnnotationApprovedBy = "kubegate.dev/approved-by"
	// AnnotationGrant is the grant that allowed the call.
	AnnotationGrant = "kubegate.dev/grant"
	// AnnotationAccessRequestState is an access request's state after an
	// approval API call.
	AnnotationAccessRequestState = "kubegate.dev/access-request-state"
)

// Annotation keys describing a relayed exec, attach or port-forward session.
const (
	AnnotationSessionProtocol = "kubegate.dev/session-protocol"
	// AnnotationSessionUpstreamProtocol is the protocol kubegate spoke to
	// the apiserver for the session.
	AnnotationSessionUpstreamProtocol = "kubegate.dev/session-upstream-protocol"
	AnnotationSessionExitCode         = "kubegate.dev/session-exit-code"
	AnnotationSessionError            = "kubegate.dev/session-error"
	AnnotationSessionBytesIn          = "kubegate.dev/session-bytes-stdin"
	AnnotationSessionBytesOut         = "kubegate.dev/session-bytes-stdout"
	AnnotationSessionBytesErr         = "kubegate.dev/session-bytes-stderr"
	AnnotationSessionDuration         = "kubegate.dev/session-duration"
	AnnotationRecording               = "kubegate.dev/recording"
	AnnotationRecordingSHA256         = "kubegate.dev/recording-sha256"
	AnnotationRecordingStderr         = "kubegate.dev/recording-stderr"
	AnnotationRecordingError          = "kubegate.dev/recording-error"
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
