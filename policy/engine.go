package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/kubegate/kubegate/k8swire"
)

var (
	// ErrInvalidConfig marks a policy New refuses.
	ErrInvalidConfig = errors.New("invalid policy")
	// ErrDenied marks a request the policy denies.
	ErrDenied = errors.New("denied by policy")
	// ErrApprovalRequired marks a request the policy holds for approval.
	ErrApprovalRequired = errors.New("approval required by policy")
)

// Config is a policy: ordered rules. The zero value has no rules and so
// denies every request.
type Config struct {
	// Rules are tried in order; the first that matches decides. No rule
	// matching is a deny.
	Rules []Rule `json:"rules,omitempty"`
	// DefaultRules puts the built-in rules before Rules, so that no
	// configured rule can allow what they deny. There is one:
	// kubegate-deny-privileged (DenyPrivilegedRule), which denies
	// creating or changing workloads that would run privileged. False
	// means only Rules apply.
	DefaultRules bool `json:"defaultRules,omitempty"`
	// Approvers is the default for require-approval rules that leave their
	// Approvers unset, and decides who may approve requests for grants.
	Approvers Approvers `json:"approvers,omitzero"`
}

// Subject is who makes the request.
type Subject struct {
	User   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Input is everything a decision depends on. Decide only reads it.
type Input struct {
	Subject Subject
	Request k8swire.Request
	// Body is the request body of a create, update or patch; nil
	// otherwise. It is decoded only if a rule that otherwise matches
	// reads object. Bounding its size is the caller's job.
	Body []byte
	// ContentType is Body's media type (see the ContentType constants);
	// parameters are ignored, and "" is JSON.
	ContentType string
	// Grants are the subject's active time-bound grants, for rules that
	// set AllowIfGranted.
	Grants []Grant
}

// Decision is what the policy does with a request.
type Decision struct {
	Action Action
	// Rule names the rule that decided; "" when no rule matched.
	Rule string
	// Message is for the user: why the request is denied or held. It may
	// be empty for an allow.
	Message string
	// AuditLevel is Metadata, Request or RequestResponse.
	AuditLevel string
	// HoldTimeout is how long to wait for approval; zero unless Action is
	// RequireApproval.
	HoldTimeout time.Duration
	// Session bounds and records the stream session the request opens.
	Session SessionRules
	// Approvers decide on a held request; set when Action is
	// RequireApproval, with the policy's defaults filled in.
	Approvers Approvers
	// Grant is the id of the grant that allowed the request, when a rule's
	// AllowIfGranted turned its deny or hold into an allow.
	Grant string
}

// Engine decides requests by a fixed policy. It is safe for concurrent use.
type Engine struct {
	rules     []compiledRule
	approvers Approvers
}

// compiledRule is a rule ready to match: its patterns parsed and its
// expression compiled.
type compiledRule struct {
	Rule
	match    matcher
	expr     *expression
	describe func(object any) string
}

// New checks cfg and compiles it, CEL expressions included. Every problem
// found is reported, each wrapping ErrInvalidConfig.
func New(cfg Config) (*Engine, error) {
	env, err := newCELEnv()
	if err != nil {
		return nil, fmt.Errorf("building the CEL environment: %w", err)
	}
	type source struct {
		builtinRule
		where string
	}
	var all []source
	if cfg.DefaultRules {
		for _, b := range builtinRules() {
			all = append(all, source{b, fmt.Sprintf("built-in rule %q", b.rule.Name)})
		}
	}
	for i, r := range cfg.Rules {
		all = append(all, source{builtinRule{rule: r.clone()}, fmt.Sprintf("rules[%d] (%q)", i, r.Name)})
	}
	if err := cfg.Approvers.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	e := &Engine{rules: make([]compiledRule, 0, len(all)), approvers: cfg.Approvers.resolve(Approvers{})}
	e.approvers.Groups = slices.Clone(e.approvers.Groups)
	seen := make(map[string]bool, len(all))
	var errs []error
	for _, s := range all {
		if s.rule.Name != "" && seen[s.rule.Name] {
			errs = append(errs, fmt.Errorf("%w: %s: duplicate rule name", ErrInvalidConfig, s.where))
			continue
		}
		seen[s.rule.Name] = true
		cr, err := compileRule(env, s.rule)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, s.where, err))
			continue
		}
		cr.describe = s.describe
		e.rules = append(e.rules, cr)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

func compileRule(env *cel.Env, r Rule) (compiledRule, error) {
	if err := r.normalize(); err != nil {
		return compiledRule{}, err
	}
	m, err := compileMatcher(&r)
	if err != nil {
		return compiledRule{}, err
	}
	cr := compiledRule{Rule: r, match: m}
	if r.Expression != "" {
		x, err := compileExpression(env, r.Expression)
		if err != nil {
			return compiledRule{}, fmt.Errorf("expression: %w", err)
		}
		cr.expr = &x
	}
	return cr, nil
}

// Rules returns the rules in the order they are tried, built-in ones
// included, with defaults filled in.
func (e *Engine) Rules() []Rule {
	out := make([]Rule, len(e.rules))
	for i := range e.rules {
		out[i] = e.rules[i].Rule.clone()
	}
	return out
}

// Decide applies the policy to one request. It is a pure function of in
// and the policy. It fails closed: an expression that fails, or a body a
// rule needs but that cannot be decoded, denies the request, naming the
// rule.
func (e *Engine) Decide(in Input) Decision {
	var (
		act       *activation // made for the first expression
		decoded   bool
		decodeErr error
	)
	for i := range e.rules {
		r := &e.rules[i]
		if !r.match.matches(&in.Subject, &in.Request) {
			continue
		}
		if r.expr != nil {
			if act == nil {
				act = &activation{in: in}
			}
			if r.expr.needsObject {
				if !decoded {
					act.object, decodeErr = decodeBody(in.Body, in.ContentType)
					decoded = true
				}
				if decodeErr != nil {
					return r.failClosed(fmt.Sprintf("policy rule %q needs the request body: %v", r.Name, decodeErr))
				}
			}
			ok, err := r.expr.eval(act)
			if err != nil {
				return r.failClosed(fmt.Sprintf("policy rule %q could not be evaluated: %v", r.Name, err))
			}
			if !ok {
				continue
			}
		}
		var object any
		if act != nil {
			object = act.object
		}
		if r.AllowIfGranted {
			if g, ok := coveringGrant(in.Grants, &in.Request); ok {
				return Decision{
					Action: Allow, Rule: r.Name, Grant: g.ID, AuditLevel: r.AuditLevel, Session: r.Session,
					Message: fmt.Sprintf("allowed by grant %s", g.ID),
				}
			}
		}
		d := r.decision(object)
		if d.Action == RequireApproval {
			d.Approvers = r.Approvers.resolve(e.approvers)
			d.Approvers.Groups = slices.Clone(d.Approvers.Groups)
		}
		return d
	}
	return Decision{
		Action:     Deny,
		Message:    "no policy rule allows " + describeRequest(&in),
		AuditLevel: LevelMetadata,
	}
}

// decision is what r decides for a request it matched.
func (r *compiledRule) decision(object any) Decision {
	d := Decision{Action: r.Action, Rule: r.Name, Message: r.Message, AuditLevel: r.AuditLevel, Session: r.Session}
	if r.describe != nil {
		if m := r.describe(object); m != "" {
			d.Message = m
		}
	}
	switch r.Action {
	case Deny:
		if d.Message == "" {
			d.Message = fmt.Sprintf("denied by policy rule %q", r.Name)
		}
	case RequireApproval:
		d.HoldTimeout = time.Duration(r.HoldTimeout)
		if d.Message == "" {
			d.Message = fmt.Sprintf("policy rule %q requires approval", r.Name)
		}
	}
	return d
}

// coveringGrant returns the first of grants that covers r.
func coveringGrant(grants []Grant, r *k8swire.Request) (Grant, bool) {
	for _, g := range grants {
		if g.Scope.Covers(r) {
			return g, true
		}
	}
	return Grant{}, false
}

// DefaultApprovers returns the policy's default approvers, who decide on
// requests for grants.
func (e *Engine) DefaultApprovers() Approvers {
	a := e.approvers
	a.Groups = slices.Clone(a.Groups)
	return a
}

// failClosed is the deny for a rule that could not be evaluated.
func (r *compiledRule) failClosed(msg string) Decision {
	return Decision{Action: Deny, Rule: r.Name, Message: msg, AuditLevel: r.AuditLevel}
}

// describeRequest words a request for a message: user "alice" to create
// pods/exec "web" in namespace "prod".
func describeRequest(in *Input) string {
	r := &in.Request
	var b strings.Builder
	fmt.Fprintf(&b, "user %q to %s ", in.Subject.User, r.Verb)
	if !r.IsResourceRequest {
		b.WriteString(r.Path)
		return b.String()
	}
	b.WriteString(r.Resource)
	if r.APIGroup != "" {
		b.WriteString("." + r.APIGroup)
	}
	if r.Subresource != "" {
		b.WriteString("/" + r.Subresource)
	}
	if r.Name != "" {
		fmt.Fprintf(&b, " %q", r.Name)
	}
	if r.Namespace != "" {
		fmt.Fprintf(&b, " in namespace %q", r.Namespace)
	}
	return b.String()
}

// String formats d for people and for kubegate policy check: "allow by
// rule X", "deny by rule Y: message", "deny: no policy rule allows ...".
func (d Decision) String() string {
	var b strings.Builder
	b.WriteString(string(d.Action))
	if d.Rule != "" {
		fmt.Fprintf(&b, " by rule %s", d.Rule)
	}
	if d.Message != "" {
		b.WriteString(": " + d.Message)
	}
	if d.Action == RequireApproval {
		fmt.Fprintf(&b, " (hold timeout %s)", d.HoldTimeout)
	}
	return b.String()
}

// Err is nil for an allow, and otherwise an error wrapping ErrDenied or
// ErrApprovalRequired with the decision's message.
func (d Decision) Err() error {
	switch d.Action {
	case Allow:
		return nil
	case RequireApproval:
		return fmt.Errorf("%w: %s", ErrApprovalRequired, d.Message)
	}
	return fmt.Errorf("%w: %s", ErrDenied, d.Message)
}

// Check decides in and formats the decision, as kubegate policy check
// prints it.
func Check(e *Engine, in Input) string {
	return e.Decide(in).String()
}
