package policy

import (
	"errors"
	"fmt"

	"github.com/kubegate/kubegate/k8swire"
)

// GrantScope is the access a time-bound grant gives: the resource requests
// it covers. Each list holds patterns as in Rule; an empty list covers
// anything. Resources follow Rule.Resources: "pods" covers pods but none of
// its subresources, "pods/exec" one subresource, "*" everything.
type GrantScope struct {
	Verbs      []string `json:"verbs,omitempty"`
	APIGroups  []string `json:"apiGroups,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
	Names      []string `json:"names,omitempty"`
}

// Grant is a time-bound grant the subject holds now. Whoever builds Input
// passes only grants that are active at the time of the request.
type Grant struct {
	ID    string
	Scope GrantScope
}

// Validate reports a scope whose patterns do not parse, or one that names
// no verb or no resource (a grant of everything is never what a request
// for access means).
func (s GrantScope) Validate() error {
	_, err := s.compile()
	if err != nil {
		return err
	}
	if len(s.Verbs) == 0 || len(s.Resources) == 0 {
		return errors.New("a grant names at least one verb and one resource")
	}
	return nil
}

// Covers reports whether s covers r. Non-resource requests are never
// covered, and neither is anything when s does not parse.
func (s GrantScope) Covers(r *k8swire.Request) bool {
	if !r.IsResourceRequest {
		return false
	}
	m, err := s.compile()
	return err == nil && m.matches(&Subject{}, r)
}

func (s GrantScope) compile() (matcher, error) {
	m, err := compileMatcher(&Rule{
		Verbs: s.Verbs, APIGroups: s.APIGroups, Resources: s.Resources,
		Namespaces: s.Namespaces, Names: s.Names,
	})
	if err != nil {
		return matcher{}, fmt.Errorf("grant scope: %w", err)
	}
	return m, nil
}

// Approvers says who decides on the requests a require-approval rule
// holds.
type Approvers struct {
	// Groups may approve or deny. Empty in a rule means the policy's
	// default; empty there too means nobody can, and held requests time
	// out.
	Groups []string `json:"groups,omitempty"`
	// Count is how many distinct people must approve. Zero means the
	// policy's default, and zero there means 1.
	Count int `json:"count,omitempty"`
}

func (a Approvers) validate() error {
	if a.Count < 0 {
		return fmt.Errorf("approvers.count must not be negative")
	}
	for _, g := range a.Groups {
		if g == "" {
			return fmt.Errorf("approvers.groups: empty entry")
		}
	}
	return nil
}

// resolve fills a rule's unset fields from the policy's defaults.
func (a Approvers) resolve(def Approvers) Approvers {
	if len(a.Groups) == 0 {
		a.Groups = def.Groups
	}
	if a.Count == 0 {
		a.Count = def.Count
	}
	if a.Count == 0 {
		a.Count = 1
	}
	return a
}
