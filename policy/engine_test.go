package policy

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubegate/kubegate/k8swire"
)

func TestFirstMatchWins(t *testing.T) {
	alice := Subject{User: "alice", Groups: []string{"dev"}}
	get := Input{Subject: alice, Request: resourceRequest("get", "", "pods", "", "dev", "web")}
	for _, tc := range []struct {
		name     string
		rules    []Rule
		wantRule string
		want     Action
	}{
		{"deny before allow", []Rule{{Name: "deny", Action: Deny}, {Name: "allow", Action: Allow}}, "deny", Deny},
		{"allow before deny", []Rule{{Name: "allow", Action: Allow}, {Name: "deny", Action: Deny}}, "allow", Allow},
		{"non-matching rule skipped", []Rule{{Name: "prod", Namespaces: []string{"prod"}, Action: Deny}, {Name: "allow", Action: Allow}}, "allow", Allow},
		{"false expression skipped", []Rule{{Name: "never", Expression: "false", Action: Deny}, {Name: "allow", Action: Allow}}, "allow", Allow},
		{"true expression decides", []Rule{{Name: "always", Expression: "true", Action: Deny}, {Name: "allow", Action: Allow}}, "always", Deny},
		{"hold", []Rule{{Name: "hold", Action: RequireApproval}, {Name: "allow", Action: Allow}}, "hold", RequireApproval},
		{"no rules", nil, "", Deny},
		{"no match", []Rule{{Name: "ops", Groups: []string{"ops"}, Action: Allow}}, "", Deny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustNew(t, Config{Rules: tc.rules}).Decide(get)
			if d.Action != tc.want || d.Rule != tc.wantRule {
				t.Errorf("got %s, want %s by rule %q", d, tc.want, tc.wantRule)
			}
		})
	}
}

func TestNoMatchMessage(t *testing.T) {
	e := mustNew(t, Config{})
	for _, tc := range []struct {
		in   Input
		want string
	}{
		{Input{Subject: Subject{User: "alice"}, Request: resourceRequest("create", "", "pods", "exec", "prod", "web")},
			`no policy rule allows user "alice" to create pods/exec "web" in namespace "prod"`},
		{Input{Subject: Subject{User: "bob"}, Request: resourceRequest("update", "apps", "deployments", "scale", "dev", "api")},
			`no policy rule allows user "bob" to update deployments.apps/scale "api" in namespace "dev"`},
		{Input{Subject: Subject{User: "bob"}, Request: resourceRequest("list", "", "nodes", "", "", "")},
			`no policy rule allows user "bob" to list nodes`},
		{Input{Subject: Subject{User: "carol"}, Request: nonResourceRequest("get", "/version")},
			`no policy rule allows user "carol" to get /version`},
	} {
		d := e.Decide(tc.in)
		if d.Action != Deny || d.Rule != "" || d.Message != tc.want || d.AuditLevel != LevelMetadata {
			t.Errorf("got %+v, want a deny with message %q", d, tc.want)
		}
		if !errors.Is(d.Err(), ErrDenied) {
			t.Errorf("Err() = %v, want ErrDenied", d.Err())
		}
	}
}

func TestDecisionFields(t *testing.T) {
	e := mustNew(t, Config{Rules: []Rule{
		{Name: "hold-default", Namespaces: []string{"a"}, Action: RequireApproval},
		{Name: "hold-90s", Namespaces: []string{"b"}, Action: RequireApproval, HoldTimeout: Duration(90 * time.Second), Message: "ask ops", AuditLevel: LevelRequest},
		{Name: "deny-quiet", Namespaces: []string{"c"}, Action: Deny},
		{Name: "allow-rr", Namespaces: []string{"d"}, Action: Allow, AuditLevel: LevelRequestResponse},
	}})
	in := func(ns string) Input {
		return Input{Subject: Subject{User: "alice"}, Request: resourceRequest("get", "", "pods", "", ns, "web")}
	}
	for _, tc := range []struct {
		ns      string
		want    Decision
		wantStr string
		wantErr error
	}{
		{"a", Decision{Action: RequireApproval, Rule: "hold-default", Message: `policy rule "hold-default" requires approval`, AuditLevel: LevelMetadata, HoldTimeout: 5 * time.Minute, Approvers: Approvers{Count: 1}},
			`require-approval by rule hold-default: policy rule "hold-default" requires approval (hold timeout 5m0s)`, ErrApprovalRequired},
		{"b", Decision{Action: RequireApproval, Rule: "hold-90s", Message: "ask ops", AuditLevel: LevelRequest, HoldTimeout: 90 * time.Second, Approvers: Approvers{Count: 1}},
			"require-approval by rule hold-90s: ask ops (hold timeout 1m30s)", ErrApprovalRequired},
		{"c", Decision{Action: Deny, Rule: "deny-quiet", Message: `denied by policy rule "deny-quiet"`, AuditLevel: LevelMetadata},
			`deny by rule deny-quiet: denied by policy rule "deny-quiet"`, ErrDenied},
		{"d", Decision{Action: Allow, Rule: "allow-rr", AuditLevel: LevelRequestResponse}, "allow by rule allow-rr", nil},
		{"e", Decision{Action: Deny, Message: `no policy rule allows user "alice" to get pods "web" in namespace "e"`, AuditLevel: LevelMetadata},
			`deny: no policy rule allows user "alice" to get pods "web" in namespace "e"`, ErrDenied},
	} {
		t.Run(tc.ns, func(t *testing.T) {
			d := e.Decide(in(tc.ns))
			if !reflect.DeepEqual(d, tc.want) {
				t.Errorf("Decide:\n got %+v\nwant %+v", d, tc.want)
			}
			if got := Check(e, in(tc.ns)); got != tc.wantStr {
				t.Errorf("Check = %q, want %q", got, tc.wantStr)
			}
			if err := d.Err(); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Err() = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		wants []string
	}{
		{"no name", Config{Rules: []Rule{{Action: Allow}}}, []string{"rule has no name"}},
		{"duplicate name", Config{Rules: []Rule{{Name: "a", Action: Allow}, {Name: "a", Action: Deny}}}, []string{`rules[1] ("a"): duplicate rule name`}},
		{"name of a built-in rule", Config{DefaultRules: true, Rules: []Rule{{Name: DenyPrivilegedRule, Action: Allow}}}, []string{"duplicate rule name"}},
		{"no action", Config{Rules: []Rule{{Name: "a"}}}, []string{"no action"}},
		{"unknown action", Config{Rules: []Rule{{Name: "a", Action: "permit"}}}, []string{`unknown action "permit"`}},
		{"unknown audit level", Config{Rules: []Rule{{Name: "a", Action: Allow, AuditLevel: "Everything"}}}, []string{`unknown auditLevel "Everything"`}},
		{"negative hold", Config{Rules: []Rule{{Name: "a", Action: RequireApproval, HoldTimeout: -1}}}, []string{"negative holdTimeout"}},
		{"hold on allow", Config{Rules: []Rule{{Name: "a", Action: Allow, HoldTimeout: Duration(time.Minute)}}}, []string{"holdTimeout applies only to require-approval"}},
		{"inner star", Config{Rules: []Rule{{Name: "a", Action: Allow, Users: []string{"sys*em"}}}}, []string{`users: pattern "sys*em"`}},
		{"leading star", Config{Rules: []Rule{{Name: "a", Action: Allow, Namespaces: []string{"*-prod"}}}}, []string{`namespaces: pattern "*-prod"`}},
		{"empty verb", Config{Rules: []Rule{{Name: "a", Action: Allow, Verbs: []string{""}}}}, []string{"verbs: empty entry"}},
		{"resource with empty subresource", Config{Rules: []Rule{{Name: "a", Action: Allow, Resources: []string{"pods/"}}}}, []string{`entry "pods/"`}},
		{"resource with no resource", Config{Rules: []Rule{{Name: "a", Action: Allow, Resources: []string{"/exec"}}}}, []string{`entry "/exec"`}},
		{"resource with two slashes", Config{Rules: []Rule{{Name: "a", Action: Allow, Resources: []string{"a/b/c"}}}}, []string{`entry "a/b/c"`}},
		{"resource bad star", Config{Rules: []Rule{{Name: "a", Action: Allow, Resources: []string{"pods/*ec"}}}}, []string{`pattern "*ec"`}},
		{"non-resource with resources", Config{Rules: []Rule{{Name: "a", Action: Allow, NonResourceURLs: []string{"/version"}, Resources: []string{"pods"}}}}, []string{"nonResourceURLs and resources exclude each other"}},
		{"upper-case namespace", Config{Rules: []Rule{{Name: "a", Action: Deny, Namespaces: []string{"prod", "PROD"}}}}, []string{`namespaces entry "PROD" has upper-case letters`}},
		{"non-resource with namespaces", Config{Rules: []Rule{{Name: "a", Action: Allow, NonResourceURLs: []string{"/version"}, Namespaces: []string{"x"}}}}, []string{"nonResourceURLs and namespaces"}},
		{"relative non-resource url", Config{Rules: []Rule{{Name: "a", Action: Allow, NonResourceURLs: []string{"version"}}}}, []string{`entry "version"`}},
		{"cel syntax error", Config{Rules: []Rule{{Name: "a", Action: Allow, Expression: "request.verb =="}}}, []string{`rules[0] ("a"): expression:`, "Syntax error"}},
		{"cel undeclared variable", Config{Rules: []Rule{{Name: "a", Action: Allow, Expression: `requests.verb == "get"`}}}, []string{"undeclared reference to 'requests'"}},
		{"cel unknown function", Config{Rules: []Rule{{Name: "a", Action: Allow, Expression: `kubegate.root(object)`}}}, []string{"undeclared reference"}},
		{"cel not bool", Config{Rules: []Rule{{Name: "a", Action: Allow, Expression: `"yes"`}}}, []string{"evaluates to string, not bool"}},
		{"cel patchType is a string", Config{Rules: []Rule{{Name: "a", Action: Allow, Expression: `patchType`}}}, []string{"not bool"}},
		{"every error reported", Config{Rules: []Rule{{Name: "a"}, {Name: "b", Action: Allow, Expression: "1 +"}}}, []string{"no action", `rules[1] ("b")`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("New succeeded with %d rules, want an error", len(e.Rules()))
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestConfigYAML reads a policy the way kubegate's config loader does and
// replays requests against it.
func TestConfigYAML(t *testing.T) {
	data, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatalf("parsing: %v", err)
	}
	e := mustNew(t, cfg)

	rules := e.Rules()
	if len(rules) != 7 || rules[0].Name != DenyPrivilegedRule || rules[1].Name != "ops-read-only-exec" {
		t.Fatalf("Rules() = %d rules starting %q, want 7 starting with the built-in rule", len(rules), rules[0].Name)
	}
	if r := rules[3]; r.Name != "prod-exec-needs-approval" || r.HoldTimeout != Duration(10*time.Minute) || r.AuditLevel != LevelRequestResponse {
		t.Errorf("rule 3 = %+v, want the 10m RequestResponse hold", r)
	}
	if r := rules[4]; r.AuditLevel != LevelMetadata || r.HoldTimeout != 0 {
		t.Errorf("rule 4 = %+v, want defaults Metadata and no hold", r)
	}
	rules[1].Namespaces[0] = "changed"
	if e.Rules()[1].Namespaces[0] != "prod" {
		t.Error("changing the result of Rules() changed the engine")
	}
	out, err := yaml.Marshal(Config{Rules: rules[3:4]})
	if err != nil || !strings.Contains(string(out), "holdTimeout: 10m0s") {
		t.Errorf("marshalled rule %s (%v), want holdTimeout: 10m0s", out, err)
	}

	ops := Subject{User: "olga", Groups: []string{"ops"}}
	dev := Subject{User: "dan", Groups: []string{"dev"}}
	for _, tc := range []struct {
		name string
		in   Input
		want string
	}{
		{"ops reads os-release", Input{Subject: ops, Request: execRequest("prod", k8swire.Stream{Command: []string{"cat", "/etc/os-release"}, Stdout: true})},
			"allow by rule ops-read-only-exec"},
		{"ops interactive shell", Input{Subject: ops, Request: execRequest("prod", k8swire.Stream{Command: []string{"sh"}, Stdin: true, TTY: true, Stdout: true})},
			"deny by rule no-interactive-prod: interactive sessions are not allowed in prod"},
		{"ops one-off command held", Input{Subject: ops, Request: execRequest("prod", k8swire.Stream{Command: []string{"ls"}, Stdout: true})},
			"require-approval by rule prod-exec-needs-approval: exec in prod needs a second pair of eyes (hold timeout 10m0s)"},
		{"dev in team namespace", Input{Subject: dev, Request: resourceRequest("list", "apps", "deployments", "", "team-a", "")},
			"allow by rule developers"},
		{"dev execs in dev: no resources listed covers subresources", Input{Subject: dev, Request: execRequest("dev", k8swire.Stream{Command: []string{"sh"}})},
			"allow by rule developers"},
		{"dev in prod", Input{Subject: dev, Request: resourceRequest("get", "", "pods", "", "prod", "web")},
			`deny: no policy rule allows user "dan" to get pods "web" in namespace "prod"`},
		{"service account in dev", Input{Subject: Subject{User: "system:serviceaccount:dev:ci"}, Request: resourceRequest("delete", "", "pods", "", "dev", "web")},
			"allow by rule service-accounts-in-dev"},
		{"health check", Input{Subject: Subject{User: "system:anonymous"}, Request: nonResourceRequest("get", "/healthz")},
			"allow by rule health"},
		{"privileged pod in dev", Input{Subject: dev, Request: resourceRequest("create", "", "pods", "", "dev", ""), ContentType: ContentTypeJSON,
			Body: []byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"x","image":"x","securityContext":{"privileged":true}}]}}`)},
			`deny by rule kubegate-deny-privileged: privileged workloads are not allowed: container "x" sets securityContext.privileged: true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Check(e, tc.in); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
		bad  bool
	}{
		{in: `"5m"`, want: Duration(5 * time.Minute)},
		{in: `"1h30m"`, want: Duration(90 * time.Minute)},
		{in: `null`, want: 0},
		{in: `300`, bad: true},
		{in: `"5 minutes"`, bad: true},
	} {
		var d Duration
		err := d.UnmarshalJSON([]byte(tc.in))
		if (err != nil) != tc.bad || d != tc.want {
			t.Errorf("UnmarshalJSON(%s) = %v, %v; want %v, error %v", tc.in, d, err, tc.want, tc.bad)
		}
	}
}

// TestDecideConcurrently shares one engine between goroutines; run with
// -race.
func TestDecideConcurrently(t *testing.T) {
	e := mustNew(t, Config{DefaultRules: true, Rules: []Rule{
		{Name: "interactive", Expression: `request.stream.tty && "ops" in user.groups`, Action: Deny},
		allowAll,
	}})
	shell := Input{Subject: Subject{User: "olga", Groups: []string{"ops"}}, Request: execRequest("prod", k8swire.Stream{TTY: true})}
	pod := Input{Subject: Subject{User: "dan"}, Request: resourceRequest("create", "", "pods", "", "dev", ""), ContentType: ContentTypeJSON,
		Body: []byte(`{"spec":{"hostNetwork":true}}`)}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if d := e.Decide(shell); d.Rule != "interactive" {
					t.Errorf("shell: %s", d)
				}
				if d := e.Decide(pod); d.Rule != DenyPrivilegedRule {
					t.Errorf("pod: %s", d)
				}
			}
		})
	}
	wg.Wait()
}
