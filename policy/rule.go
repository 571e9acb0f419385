package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is what a rule does with the requests it matches.
type Action string

// The actions a rule may take.
const (
	Allow           Action = "allow"
	Deny            Action = "deny"
	RequireApproval Action = "require-approval"
)

// The audit levels a rule may ask for, as in the Kubernetes audit policy.
const (
	LevelMetadata        = "Metadata"
	LevelRequest         = "Request"
	LevelRequestResponse = "RequestResponse"
)

// DefaultHoldTimeout is how long a require-approval rule holds a request
// when the rule sets no HoldTimeout.
const DefaultHoldTimeout = 5 * time.Minute

// Rule is one entry of the ordered policy. A rule matches a request when
// every list it sets matches (the lists are ANDed; the entries within a list
// are ORed) and its Expression, if any, is true. The first rule that matches
// decides.
//
// Each list entry is a pattern: "*" matches anything, a trailing "*" matches
// by prefix ("system:serviceaccount:dev:*"), anything else matches exactly
// and case-sensitively. A "*" anywhere else is a config error. An empty list
// matches anything.
//
// A rule applies either to resource requests (the zero value) or, when it
// sets NonResourceURLs, to non-resource requests (/version, /healthz, /api
// discovery roots) only. A rule that sets NonResourceURLs may not set
// APIGroups, Resources, Subresources, Namespaces or Names, so a rule naming
// resources never matches a non-resource request, and a rule naming no
// paths never matches one either.
type Rule struct {
	// Name identifies the rule in decisions and audit events. Required and
	// unique within the policy, built-in rules included.
	Name string `json:"name"`

	// Users are the authenticated user names the rule applies to.
	Users []string `json:"users,omitempty"`
	// Groups match when any of the user's groups matches any entry. A user
	// in no group never matches a rule that sets Groups.
	Groups []string `json:"groups,omitempty"`
	// Verbs are Kubernetes verbs (get, list, watch, create, update, patch,
	// delete, deletecollection) or, for non-resource rules, lowercase HTTP
	// methods. Exec, attach and portforward are create on pods/exec,
	// pods/attach and pods/portforward.
	Verbs []string `json:"verbs,omitempty"`
	// APIGroups: "" is the core group.
	APIGroups []string `json:"apiGroups,omitempty"`
	// Resources are resource names, or resource/subresource pairs. As in
	// RBAC, an entry without a slash ("pods") matches the resource itself
	// but none of its subresources, unless the rule also sets Subresources,
	// which then decide the subresource. "pods/exec" names one subresource,
	// "pods/*" any subresource of pods (but not pods itself), "*/scale" the
	// scale subresource of anything, and "*" everything, subresources
	// included.
	Resources []string `json:"resources,omitempty"`
	// Subresources constrain the subresource; "" is a request for the
	// resource itself.
	Subresources []string `json:"subresources,omitempty"`
	// Namespaces: "" is a cluster-scoped request (or one across all
	// namespaces); "*" matches those too, a prefix pattern does not.
	Namespaces []string `json:"namespaces,omitempty"`
	// Names are object names from the URL. Create and list requests have
	// no name in their URL, so their name is "".
	Names []string `json:"names,omitempty"`
	// NonResourceURLs are URL paths; setting them makes this a
	// non-resource rule (see Rule). Each entry is "*" or starts with "/".
	NonResourceURLs []string `json:"nonResourceURLs,omitempty"`

	// Expression is an optional CEL expression that must evaluate to a
	// bool (see the package documentation for its variables). The rule
	// matches only when it is true. An expression that fails at evaluation
	// denies the request, naming this rule.
	Expression string `json:"expression,omitempty"`

	// Action is allow, deny or require-approval. Required.
	Action Action `json:"action"`
	// Message is shown to the user when the rule denies or holds a
	// request. Empty means a message naming the rule.
	Message string `json:"message,omitempty"`
	// AuditLevel is Metadata, Request or RequestResponse. Empty means
	// Metadata.
	AuditLevel string `json:"auditLevel,omitempty"`
	// HoldTimeout is how long a require-approval rule holds a request
	// before denying it. Zero means DefaultHoldTimeout; other actions may
	// not set it.
	HoldTimeout Duration `json:"holdTimeout,omitempty"`

	// Approvers decide on the requests a require-approval rule holds.
	// Unset fields take the policy's Approvers; other actions may not set
	// it.
	Approvers Approvers `json:"approvers,omitzero"`
	// AllowIfGranted lets a deny or require-approval rule allow a request
	// that a time-bound grant of the requester covers (see GrantScope).
	AllowIfGranted bool `json:"allowIfGranted,omitempty"`

	// Session settings apply to the exec, attach and port-forward sessions
	// an allow rule lets through; other requests ignore them.
	Session SessionRules `json:"session,omitempty"`
}

// SessionRules bound and record stream sessions.
type SessionRules struct {
	// MaxDuration ends a session this long after it started. Zero means
	// no limit.
	MaxDuration Duration `json:"maxDuration,omitempty"`
	// IdleTimeout ends an exec or attach session after this long without
	// input or output. Zero means no limit.
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
	// OnRecordingFailure is "fail-closed" (also what empty means: a
	// recording that cannot be written ends the session) or "continue" (the
	// session goes on unrecorded; the choice is written to the audit event).
	OnRecordingFailure string `json:"onRecordingFailure,omitempty"`
	// CaptureForwards captures the bytes of every port-forwarded
	// connection to a file beside the session recordings.
	CaptureForwards bool `json:"captureForwards,omitempty"`
}

// The values of SessionRules.OnRecordingFailure.
const (
	RecordingFailClosed = "fail-closed"
	RecordingContinue   = "continue"
)

// Duration is a time.Duration written in config as a Go duration string
// ("90s", "5m").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string; null leaves d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5m\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// normalize checks r's plain fields and fills in their defaults. Patterns
// and the expression are checked when they are compiled.
func (r *Rule) normalize() error {
	if r.Name == "" {
		return fmt.Errorf("rule has no name")
	}
	switch r.Action {
	case Allow, Deny, RequireApproval:
	case "":
		return fmt.Errorf("no action (want allow, deny or require-approval)")
	default:
		return fmt.Errorf("unknown action %q (want allow, deny or require-approval)", r.Action)
	}
	switch r.AuditLevel {
	case "":
		r.AuditLevel = LevelMetadata
	case LevelMetadata, LevelRequest, LevelRequestResponse:
	default:
		return fmt.Errorf("unknown auditLevel %q (want Metadata, Request or RequestResponse)", r.AuditLevel)
	}
	switch {
	case r.HoldTimeout < 0:
		return fmt.Errorf("negative holdTimeout %s", r.HoldTimeout)
	case r.HoldTimeout > 0 && r.Action != RequireApproval:
		return fmt.Errorf("holdTimeout applies only to require-approval rules")
	case r.HoldTimeout == 0 && r.Action == RequireApproval:
		r.HoldTimeout = Duration(DefaultHoldTimeout)
	}
	if err := r.Approvers.validate(); err != nil {
		return err
	}
	if (len(r.Approvers.Groups) > 0 || r.Approvers.Count > 0) && r.Action != RequireApproval {
		return fmt.Errorf("approvers apply only to require-approval rules")
	}
	if r.AllowIfGranted && r.Action == Allow {
		return fmt.Errorf("allowIfGranted applies only to deny and require-approval rules")
	}
	switch r.Session.OnRecordingFailure {
	case "", RecordingFailClosed, RecordingContinue: // "" is fail-closed
	default:
		return fmt.Errorf("unknown session.onRecordingFailure %q (want fail-closed or continue)", r.Session.OnRecordingFailure)
	}
	if r.Session.MaxDuration < 0 || r.Session.IdleTimeout < 0 {
		return fmt.Errorf("session durations must not be negative")
	}
	for _, ns := range r.Namespaces {
		if ns != strings.ToLower(ns) {
			// kubegate refuses requests naming such a namespace (it cannot
			// exist), so the entry would silently never match.
			return fmt.Errorf("namespaces entry %q has upper-case letters: namespaces are lower-case DNS labels, so it would never match", ns)
		}
	}
	if len(r.NonResourceURLs) > 0 {
		resourceFields := []struct {
			name string
			list []string
		}{{"apiGroups", r.APIGroups}, {"resources", r.Resources}, {"subresources", r.Subresources}, {"namespaces", r.Namespaces}, {"names", r.Names}}
		for _, f := range resourceFields {
			if len(f.list) > 0 {
				return fmt.Errorf("nonResourceURLs and %s exclude each other", f.name)
			}
		}
		for _, u := range r.NonResourceURLs {
			if u != "*" && !strings.HasPrefix(u, "/") {
				return fmt.Errorf("nonResourceURLs entry %q must be \"*\" or start with \"/\"", u)
			}
		}
	}
	return nil
}

// clone returns a copy of r that shares no slices with it.
func (r Rule) clone() Rule {
	r.Users = slices.Clone(r.Users)
	r.Groups = slices.Clone(r.Groups)
	r.Verbs = slices.Clone(r.Verbs)
	r.APIGroups = slices.Clone(r.APIGroups)
	r.Resources = slices.Clone(r.Resources)
	r.Subresources = slices.Clone(r.Subresources)
	r.Namespaces = slices.Clone(r.Namespaces)
	r.Names = slices.Clone(r.Names)
	r.NonResourceURLs = slices.Clone(r.NonResourceURLs)
	r.Approvers.Groups = slices.Clone(r.Approvers.Groups)
	return r
}
