package policy

import (
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

// TestMatch runs one allow rule against one request: the request is
// allowed exactly when the rule's lists match.
func TestMatch(t *testing.T) {
	alice := Subject{User: "alice", Groups: []string{"dev", "system:authenticated"}}
	sa := Subject{User: "system:serviceaccount:dev:builder", Groups: []string{"system:serviceaccounts"}}
	getPods := resourceRequest("get", "", "pods", "", "dev", "web")
	execPods := resourceRequest("create", "", "pods", "exec", "dev", "web")
	scaleDeploy := resourceRequest("update", "apps", "deployments", "scale", "dev", "web")
	listNodes := resourceRequest("list", "", "nodes", "", "", "")
	version := nonResourceRequest("get", "/version")
	healthz := nonResourceRequest("get", "/healthz/etcd")

	for _, tc := range []struct {
		name    string
		rule    Rule
		subject Subject
		req     k8swire.Request
		want    bool
	}{
		{"empty rule matches a resource request", Rule{}, alice, getPods, true},
		{"user exact", Rule{Users: []string{"alice"}}, alice, getPods, true},
		{"user other", Rule{Users: []string{"bob"}}, alice, getPods, false},
		{"user star", Rule{Users: []string{"*"}}, alice, getPods, true},
		{"user prefix", Rule{Users: []string{"system:serviceaccount:dev:*"}}, sa, getPods, true},
		{"user prefix other namespace", Rule{Users: []string{"system:serviceaccount:prod:*"}}, sa, getPods, false},
		{"user is case-sensitive", Rule{Users: []string{"Alice"}}, alice, getPods, false},
		{"users ORed", Rule{Users: []string{"bob", "alice"}}, alice, getPods, true},
		{"group any of the user's", Rule{Groups: []string{"dev"}}, alice, getPods, true},
		{"group prefix", Rule{Groups: []string{"system:*"}}, alice, getPods, true},
		{"group other", Rule{Groups: []string{"ops"}}, alice, getPods, false},
		{"group star needs a group", Rule{Groups: []string{"*"}}, Subject{User: "x"}, getPods, false},
		{"verb", Rule{Verbs: []string{"get"}}, alice, getPods, true},
		{"verb other", Rule{Verbs: []string{"list", "watch"}}, alice, getPods, false},
		{"verb prefix", Rule{Verbs: []string{"delete*"}}, alice, resourceRequest("deletecollection", "", "pods", "", "dev", ""), true},
		{"core group", Rule{APIGroups: []string{""}}, alice, getPods, true},
		{"core group is not apps", Rule{APIGroups: []string{""}}, alice, scaleDeploy, false},
		{"group apps", Rule{APIGroups: []string{"apps"}}, alice, scaleDeploy, true},
		{"group star", Rule{APIGroups: []string{"*"}}, alice, getPods, true},
		{"group prefix", Rule{APIGroups: []string{"ap*"}}, alice, scaleDeploy, true},
		{"resource", Rule{Resources: []string{"pods"}}, alice, getPods, true},
		{"resource does not cover its subresources", Rule{Resources: []string{"pods"}}, alice, execPods, false},
		{"resource/subresource", Rule{Resources: []string{"pods/exec"}}, alice, execPods, true},
		{"resource/subresource other", Rule{Resources: []string{"pods/attach"}}, alice, execPods, false},
		{"resource/subresource is not the resource", Rule{Resources: []string{"pods/exec"}}, alice, getPods, false},
		{"resource/star", Rule{Resources: []string{"pods/*"}}, alice, execPods, true},
		{"resource/star is not the resource", Rule{Resources: []string{"pods/*"}}, alice, getPods, false},
		{"star/subresource", Rule{Resources: []string{"*/scale"}}, alice, scaleDeploy, true},
		{"star covers subresources", Rule{Resources: []string{"*"}}, alice, execPods, true},
		{"resource prefix", Rule{Resources: []string{"pod*"}}, alice, resourceRequest("list", "", "podtemplates", "", "dev", ""), true},
		{"resource with subresources list", Rule{Resources: []string{"pods"}, Subresources: []string{"exec", "attach"}}, alice, execPods, true},
		{"subresources list rejects", Rule{Resources: []string{"pods"}, Subresources: []string{"attach"}}, alice, execPods, false},
		{"subresources empty entry is the resource", Rule{Resources: []string{"pods"}, Subresources: []string{""}}, alice, getPods, true},
		{"subresources empty entry is not exec", Rule{Resources: []string{"pods"}, Subresources: []string{""}}, alice, execPods, false},
		{"subresources alone", Rule{Subresources: []string{"scale"}}, alice, scaleDeploy, true},
		{"namespace", Rule{Namespaces: []string{"dev"}}, alice, getPods, true},
		{"namespace prefix", Rule{Namespaces: []string{"de*"}}, alice, getPods, true},
		{"namespace other", Rule{Namespaces: []string{"prod"}}, alice, getPods, false},
		{"namespace empty is cluster scope", Rule{Namespaces: []string{""}}, alice, listNodes, true},
		{"namespace star covers cluster scope", Rule{Namespaces: []string{"*"}}, alice, listNodes, true},
		{"namespace prefix does not cover cluster scope", Rule{Namespaces: []string{"d*"}}, alice, listNodes, false},
		{"name", Rule{Names: []string{"web"}}, alice, getPods, true},
		{"name prefix", Rule{Names: []string{"w*"}}, alice, getPods, true},
		{"name other", Rule{Names: []string{"db"}}, alice, getPods, false},
		{"fields ANDed", Rule{Users: []string{"alice"}, Verbs: []string{"get"}, Resources: []string{"pods"}, Namespaces: []string{"prod"}}, alice, getPods, false},
		{"empty rule skips non-resource", Rule{}, alice, version, false},
		{"resource rule skips non-resource", Rule{Resources: []string{"*"}}, alice, version, false},
		{"non-resource url", Rule{NonResourceURLs: []string{"/version"}}, alice, version, true},
		{"non-resource url other", Rule{NonResourceURLs: []string{"/healthz"}}, alice, version, false},
		{"non-resource url prefix", Rule{NonResourceURLs: []string{"/healthz*"}}, alice, healthz, true},
		{"non-resource star", Rule{NonResourceURLs: []string{"*"}}, alice, healthz, true},
		{"non-resource verb", Rule{NonResourceURLs: []string{"*"}, Verbs: []string{"post"}}, alice, version, false},
		{"non-resource rule skips resources", Rule{NonResourceURLs: []string{"*"}}, alice, getPods, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rule
			r.Name, r.Action = "r", Allow
			e := mustNew(t, Config{Rules: []Rule{r}})
			d := e.Decide(Input{Subject: tc.subject, Request: tc.req})
			if got := d.Action == Allow; got != tc.want {
				t.Errorf("matched = %v, want %v (%s)", got, tc.want, d)
			}
		})
	}
}

func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		value   string
		want    bool
		bad     bool
	}{
		{pattern: "*", value: "", want: true},
		{pattern: "*", value: "x", want: true},
		{pattern: "a*", value: "a", want: true},
		{pattern: "a*", value: "abc", want: true},
		{pattern: "a*", value: "ba", want: false},
		{pattern: "", value: "", want: true},
		{pattern: "", value: "a", want: false},
		{pattern: "a", value: "a*", want: false},
		{pattern: "*a", bad: true},
		{pattern: "a*b", bad: true},
		{pattern: "a**", bad: true},
	} {
		p, err := parsePattern(tc.pattern)
		if tc.bad {
			if err == nil {
				t.Errorf("parsePattern(%q) succeeded, want an error", tc.pattern)
			}
			continue
		}
		if err != nil {
			t.Errorf("parsePattern(%q): %v", tc.pattern, err)
			continue
		}
		if got := p.match(tc.value); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.value, got, tc.want)
		}
	}
}
