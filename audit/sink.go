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
