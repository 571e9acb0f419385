package policy

import (
	"fmt"
	"strings"

	"github.com/kubegate/kubegate/k8swire"
)

// pattern is one list entry of a rule: "*" matches anything, a trailing "*"
// matches by prefix, anything else matches itself.
type pattern struct {
	s      string
	prefix bool
	any    bool
}

func parsePattern(s string) (pattern, error) {
	switch {
	case s == "*":
		return pattern{any: true}, nil
	case strings.Contains(strings.TrimSuffix(s, "*"), "*"):
		return pattern{}, fmt.Errorf("pattern %q: a \"*\" may only end a pattern", s)
	case strings.HasSuffix(s, "*"):
		return pattern{s: strings.TrimSuffix(s, "*"), prefix: true}, nil
	}
	return pattern{s: s}, nil
}

func (p pattern) match(v string) bool {
	switch {
	case p.any:
		return true
	case p.prefix:
		return strings.HasPrefix(v, p.s)
	}
	return v == p.s
}

// patterns is one list of a rule; empty matches anything.
type patterns []pattern

func parsePatterns(field string, ss []string, allowEmpty bool) (patterns, error) {
	ps := make(patterns, 0, len(ss))
	for _, s := range ss {
		if s == "" && !allowEmpty {
			return nil, fmt.Errorf("%s: empty entry", field)
		}
		p, err := parsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func (ps patterns) match(v string) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.match(v) {
			return true
		}
	}
	return false
}

// matchAny reports whether any of vs matches; an empty list matches even
// when vs is empty.
func (ps patterns) matchAny(vs []string) bool {
	if len(ps) == 0 {
		return true
	}
	for _, v := range vs {
		if ps.match(v) {
			return true
		}
	}
	return false
}

// resourcePattern is one Resources entry: a resource pattern and, when the
// entry has a slash, a subresource pattern.
type resourcePattern struct {
	res    pattern
	sub    pattern
	hasSub bool
}

func parseResourcePattern(s string) (resourcePattern, error) {
	res, sub, hasSub := strings.Cut(s, "/")
	if res == "" || (hasSub && (sub == "" || strings.Contains(sub, "/"))) {
		return resourcePattern{}, fmt.Errorf("resources: entry %q is not resource or resource/subresource", s)
	}
	rp := resourcePattern{hasSub: hasSub}
	var err error
	if rp.res, err = parsePattern(res); err != nil {
		return resourcePattern{}, fmt.Errorf("resources: %w", err)
	}
	if hasSub {
		if rp.sub, err = parsePattern(sub); err != nil {
			return resourcePattern{}, fmt.Errorf("resources: %w", err)
		}
	}
	return rp, nil
}

// match reports whether the entry covers resource res with subresource sub.
// subsSet says the rule's Subresources list decides the subresource.
func (rp resourcePattern) match(res, sub string, subsSet bool) bool {
	switch {
	case rp.res.any && !rp.hasSub:
		return true
	case !rp.res.match(res):
		return false
	case rp.hasSub:
		return sub != "" && rp.sub.match(sub)
	}
	return sub == "" || subsSet
}

// matcher is the compiled field lists of one rule.
type matcher struct {
	users, groups, verbs                       patterns
	apiGroups, subresources, namespaces, names patterns
	nonResourceURLs                            patterns
	resources                                  []resourcePattern
	nonResource                                bool
}

func compileMatcher(r *Rule) (matcher, error) {
	m := matcher{nonResource: len(r.NonResourceURLs) > 0}
	lists := []struct {
		dst        *patterns
		field      string
		src        []string
		allowEmpty bool
	}{
		{&m.users, "users", r.Users, false},
		{&m.groups, "groups", r.Groups, false},
		{&m.verbs, "verbs", r.Verbs, false},
		{&m.apiGroups, "apiGroups", r.APIGroups, true},
		{&m.subresources, "subresources", r.Subresources, true},
		{&m.namespaces, "namespaces", r.Namespaces, true},
		{&m.names, "names", r.Names, true},
		{&m.nonResourceURLs, "nonResourceURLs", r.NonResourceURLs, false},
	}
	for _, l := range lists {
		ps, err := parsePatterns(l.field, l.src, l.allowEmpty)
		if err != nil {
			return matcher{}, err
		}
		*l.dst = ps
	}
	for _, s := range r.Resources {
		rp, err := parseResourcePattern(s)
		if err != nil {
			return matcher{}, err
		}
		m.resources = append(m.resources, rp)
	}
	return m, nil
}

// matches reports whether the rule's lists all match; the expression is
// the engine's to evaluate.
func (m *matcher) matches(s *Subject, r *k8swire.Request) bool {
	if !m.users.match(s.User) || !m.groups.matchAny(s.Groups) || !m.verbs.match(r.Verb) {
		return false
	}
	if m.nonResource || !r.IsResourceRequest {
		return m.nonResource && !r.IsResourceRequest && m.nonResourceURLs.match(r.Path)
	}
	if !m.apiGroups.match(r.APIGroup) || !m.namespaces.match(r.Namespace) || !m.names.match(r.Name) || !m.subresources.match(r.Subresource) {
		return false
	}
	if len(m.resources) == 0 {
		return true
	}
	subsSet := len(m.subresources) > 0
	for _, rp := range m.resources {
		if rp.match(r.Resource, r.Subresource, subsSet) {
			return true
		}
	}
	return false
}
