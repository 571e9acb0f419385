package policy

import (
	"errors"
	"slices"
	"testing"
)

func TestGrantScopeCovers(t *testing.T) {
	scope := GrantScope{Verbs: []string{"delete", "get"}, Resources: []string{"deployments", "pods/exec"}, APIGroups: []string{"apps", ""}, Namespaces: []string{"prod"}, Names: []string{"web*"}}
	for _, tc := range []struct {
		name string
		req  func() bool
		want bool
	}{
		{"covered", func() bool {
			r := resourceRequest("delete", "apps", "deployments", "", "prod", "web")
			return scope.Covers(&r)
		}, true},
		{"name prefix", func() bool {
			r := resourceRequest("get", "apps", "deployments", "", "prod", "web-2")
			return scope.Covers(&r)
		}, true},
		{"subresource named", func() bool { r := resourceRequest("get", "", "pods", "exec", "prod", "web"); return scope.Covers(&r) }, true},
		{"other verb", func() bool {
			r := resourceRequest("patch", "apps", "deployments", "", "prod", "web")
			return scope.Covers(&r)
		}, false},
		{"other namespace", func() bool {
			r := resourceRequest("delete", "apps", "deployments", "", "dev", "web")
			return scope.Covers(&r)
		}, false},
		{"other name", func() bool {
			r := resourceRequest("delete", "apps", "deployments", "", "prod", "api")
			return scope.Covers(&r)
		}, false},
		{"subresource not named", func() bool {
			r := resourceRequest("get", "apps", "deployments", "scale", "prod", "web")
			return scope.Covers(&r)
		}, false},
		{"non-resource", func() bool { r := nonResourceRequest("get", "/version"); return scope.Covers(&r) }, false},
	} {
		if got := tc.req(); got != tc.want {
			t.Errorf("%s: Covers = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestGrantScopeValidate(t *testing.T) {
	for _, tc := range []struct {
		scope GrantScope
		ok    bool
	}{
		{GrantScope{Verbs: []string{"get"}, Resources: []string{"pods"}}, true},
		{GrantScope{Verbs: []string{"get"}}, false},
		{GrantScope{Resources: []string{"pods"}}, false},
		{GrantScope{Verbs: []string{"g*t"}, Resources: []string{"pods"}}, false},
		{GrantScope{Verbs: []string{"get"}, Resources: []string{"pods/"}}, false},
	} {
		if err := tc.scope.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.scope, err, tc.ok)
		}
	}
}

func TestAllowIfGranted(t *testing.T) {
	e := mustNew(t, Config{
		Approvers: Approvers{Groups: []string{"approvers"}},
		Rules: []Rule{
			{Name: "hold-prod", Namespaces: []string{"prod"}, Action: RequireApproval, AllowIfGranted: true, Approvers: Approvers{Count: 2}},
			{Name: "deny-kube-system", Namespaces: []string{"kube-system"}, Action: Deny},
			allowAll,
		},
	})
	del := resourceRequest("delete", "apps", "deployments", "", "prod", "web")
	grant := Grant{ID: "g-1", Scope: GrantScope{Verbs: []string{"delete"}, Resources: []string{"deployments"}, Namespaces: []string{"prod"}}}
	other := Grant{ID: "g-2", Scope: GrantScope{Verbs: []string{"get"}, Resources: []string{"pods"}}}

	d := e.Decide(Input{Subject: Subject{User: "agent"}, Request: del, Grants: []Grant{other}})
	if d.Action != RequireApproval || !slices.Equal(d.Approvers.Groups, []string{"approvers"}) || d.Approvers.Count != 2 {
		t.Fatalf("without a covering grant: %+v, want a hold for 2 of group approvers", d)
	}
	d = e.Decide(Input{Subject: Subject{User: "agent"}, Request: del, Grants: []Grant{other, grant}})
	if d.Action != Allow || d.Grant != "g-1" || d.Rule != "hold-prod" {
		t.Fatalf("with a covering grant: %+v, want allow by g-1 under rule hold-prod", d)
	}
	ks := resourceRequest("delete", "apps", "deployments", "", "kube-system", "web")
	all := Grant{ID: "g-3", Scope: GrantScope{Verbs: []string{"*"}, Resources: []string{"*"}}}
	if d := e.Decide(Input{Request: ks, Grants: []Grant{all}}); d.Action != Deny {
		t.Fatalf("a deny rule without allowIfGranted must ignore grants: %+v", d)
	}
	if d := e.DefaultApprovers(); d.Count != 1 || !slices.Equal(d.Groups, []string{"approvers"}) {
		t.Fatalf("DefaultApprovers = %+v", d)
	}
}

func TestApproversConfigErrors(t *testing.T) {
	for _, r := range []Rule{
		{Name: "a", Action: Allow, Approvers: Approvers{Groups: []string{"x"}}},
		{Name: "b", Action: RequireApproval, Approvers: Approvers{Count: -1}},
		{Name: "c", Action: Allow, AllowIfGranted: true},
		{Name: "d", Action: RequireApproval, Approvers: Approvers{Groups: []string{""}}},
	} {
		if _, err := New(Config{Rules: []Rule{r}}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("rule %s: New = %v, want ErrInvalidConfig", r.Name, err)
		}
	}
}
