package policy

import (
	"strings"
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

// TestExpressions runs one rule with an expression, then an allow-all:
// the rule decides when its expression is true.
func TestExpressions(t *testing.T) {
	alice := Subject{User: "alice", UID: "u-1", Groups: []string{"dev", "sre"}, Extra: map[string][]string{"scopes": {"read", "admin"}}}
	cat := execRequest("prod", k8swire.Stream{Container: "app", Command: []string{"cat", "/etc/os-release"}, Stdout: true, Stderr: true})
	shell := execRequest("prod", k8swire.Stream{Command: []string{"sh"}, Stdin: true, Stdout: true, TTY: true})
	forward := resourceRequest("create", "", "pods", "portforward", "prod", "web")
	forward.Upgrade = k8swire.WebSocket
	forward.Stream = &k8swire.Stream{Ports: []int32{8080, 9090}}
	getPods := resourceRequest("get", "", "pods", "", "dev", "web")
	createPod := Input{Subject: alice, Request: resourceRequest("create", "", "pods", "", "dev", ""), ContentType: ContentTypeJSON,
		Body: []byte(`{"metadata":{"name":"web","labels":{"team":"payments"}},"spec":{"containers":[{"name":"app","image":"nginx","ports":[{"containerPort":80}]}]}}`)}
	patchPod := Input{Subject: alice, Request: resourceRequest("patch", "", "pods", "", "dev", "web"), ContentType: ContentTypeJSONPatch,
		Body: []byte(`[{"op":"replace","path":"/spec/containers/0/image","value":"nginx:2"}]`)}

	for _, tc := range []struct {
		name  string
		expr  string
		in    Input
		match bool
	}{
		{"exact exec command", `request.stream.command == ["cat", "/etc/os-release"]`, Input{Subject: alice, Request: cat}, true},
		{"other exec command", `request.stream.command == ["cat", "/etc/os-release"]`, Input{Subject: alice, Request: shell}, false},
		{"interactive", `request.stream.tty && request.stream.stdin`, Input{Subject: alice, Request: shell}, true},
		{"not interactive", `request.stream.tty && request.stream.stdin`, Input{Subject: alice, Request: cat}, false},
		{"stream fields are zero outside streams", `!request.stream.tty && request.stream.command.size() == 0 && request.stream.container == ""`, Input{Subject: alice, Request: getPods}, true},
		{"stream container", `request.stream.container == "app" && request.stream.stderr`, Input{Subject: alice, Request: cat}, true},
		{"port-forward ports", `request.stream.ports.all(p, p in [8080, 9090])`, Input{Subject: alice, Request: forward}, true},
		{"port-forward other port", `22 in request.stream.ports`, Input{Subject: alice, Request: forward}, false},
		{"upgrade", `request.upgrade == "websocket"`, Input{Subject: alice, Request: forward}, true},
		{"request fields", `request.verb == "get" && request.apiGroup == "" && request.apiVersion == "v1" && request.resource == "pods" && request.subresource == "" && request.namespace == "dev" && request.name == "web" && request.isResourceRequest`, Input{Subject: alice, Request: getPods}, true},
		{"request path", `request.path.startsWith("/api/v1/namespaces/dev/")`, Input{Subject: alice, Request: getPods}, true},
		{"user groups", `"sre" in user.groups && user.name == "alice" && user.uid == "u-1"`, Input{Subject: alice, Request: getPods}, true},
		{"user extra", `user.extra["scopes"].exists(s, s == "admin")`, Input{Subject: alice, Request: getPods}, true},
		{"user without groups or extra", `user.groups.size() == 0 && user.extra.size() == 0`, Input{Subject: Subject{User: "x"}, Request: getPods}, true},
		{"object labels", `object.metadata.labels.team == "payments"`, createPod, true},
		{"object optional field", `object.?spec.?hostNetwork.orValue(false)`, createPod, false},
		{"object integer", `object.spec.containers[0].ports[0].containerPort == 80`, createPod, true},
		{"object null without a body", `object == null`, Input{Subject: alice, Request: getPods}, true},
		{"patch type", `patchType == "json" && object[0].op == "replace"`, patchPod, true},
		{"patch type of an object", `patchType == ""`, createPod, true},
		{"privileged of a CEL value", `kubegate.privileged({"spec": {"hostPID": true}})`, Input{Subject: alice, Request: getPods}, true},
		{"privileged of a CEL list", `kubegate.privileged([{"op": "add", "path": "/spec/hostIPC", "value": true}])`, Input{Subject: alice, Request: getPods}, true},
		{"privileged of null", `kubegate.privileged(object)`, Input{Subject: alice, Request: getPods}, false},
		{"privileged reasons", `kubegate.privilegedReasons({"spec": {"hostPID": true}}) == ["pod spec sets hostPID: true"]`, Input{Subject: alice, Request: getPods}, true},
		{"no reasons", `kubegate.privilegedReasons(object).size() == 0`, createPod, true},
		{"strings extension", `request.name.upperAscii() == "WEB"`, Input{Subject: alice, Request: getPods}, true},
		{"sets extension", `sets.intersects(user.groups, ["sre", "ops"])`, Input{Subject: alice, Request: getPods}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustNew(t, Config{Rules: []Rule{{Name: "expr", Expression: tc.expr, Action: Deny}, allowAll}})
			d := e.Decide(tc.in)
			want := "allow-all"
			if tc.match {
				want = "expr"
			}
			if d.Rule != want {
				t.Errorf("decided by %s, want rule %q", d, want)
			}
		})
	}
}

// TestExpressionFailuresDeny checks that a failing expression denies,
// naming its rule, even when the rule would allow and a later rule too.
func TestExpressionFailuresDeny(t *testing.T) {
	getPods := Input{Subject: Subject{User: "alice"}, Request: resourceRequest("get", "", "pods", "", "dev", "web")}
	big := Input{Subject: Subject{User: "alice"}, Request: resourceRequest("create", "", "configmaps", "", "dev", ""),
		ContentType: ContentTypeJSON, Body: []byte(`{"s":"` + strings.Repeat("a", 100000) + `","items":[` + strings.Repeat(`1,`, 199) + `1]}`)}
	for _, tc := range []struct {
		name string
		expr string
		in   Input
		want string
	}{
		{"missing key", `request.nope == "x"`, getPods, "no such key: nope"},
		{"missing object", `object.spec.hostNetwork`, getPods, "could not be evaluated"},
		{"bad conversion", `int(request.name) > 0`, getPods, "could not be evaluated"},
		{"not a bool at runtime", `request.verb`, getPods, "evaluated to string, not bool"},
		{"cost limit", `object.items.all(i, !object.s.contains("b"))`, big, "cost limit exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustNew(t, Config{Rules: []Rule{{Name: "fragile", Expression: tc.expr, Action: Allow, AuditLevel: LevelRequest}, allowAll}})
			d := e.Decide(tc.in)
			if d.Action != Deny || d.Rule != "fragile" || d.AuditLevel != LevelRequest {
				t.Fatalf("got %s, want a deny by rule fragile", d)
			}
			if !strings.Contains(d.Message, `policy rule "fragile"`) || !strings.Contains(d.Message, tc.want) {
				t.Errorf("message %q does not name the rule and %q", d.Message, tc.want)
			}
		})
	}
}
