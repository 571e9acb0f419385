package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

// celFuzzRules are CEL rules over every input CEL sees (request.stream,
// user, object), each with its meaning written again in Go (celFuzzWant).
var celFuzzRules = []Rule{
	{Name: "os-release", Resources: []string{"pods/exec"}, Action: Allow,
		Expression: `request.stream.command == ["cat", "/etc/os-release"] && !request.stream.tty && !request.stream.stdin`},
	{Name: "sre-shell", Resources: []string{"pods/exec"}, Action: RequireApproval,
		Expression: `"sre" in user.groups && request.stream.command.size() > 0 && request.stream.command[0] in ["sh", "bash"] && request.stream.container != "vault"`},
	{Name: "debug-port", Resources: []string{"pods/portforward"}, Action: Allow,
		Expression: `request.stream.ports.all(p, p >= 8000 && p < 9000) && user.name.startsWith("dev-")`},
	{Name: "blue-team", Resources: []string{"configmaps"}, Verbs: []string{"create"}, Action: Allow,
		Expression: `object.?metadata.?labels.?team.orValue("") == "blue" && request.namespace.endsWith("-blue")`},
}

// celFuzzWant is what celFuzzRules decide, by plain Go: the first rule
// that matches, or "" (no rule: deny). A JSON body that is not an object
// with string labels cannot make blue-team allow.
func celFuzzWant(in Input) string {
	s := in.Request.Stream
	switch in.Request.Subresource {
	case "exec":
		if slices.Equal(s.Command, []string{"cat", "/etc/os-release"}) && !s.TTY && !s.Stdin {
			return "os-release"
		}
		if slices.Contains(in.Subject.Groups, "sre") && len(s.Command) > 0 && (s.Command[0] == "sh" || s.Command[0] == "bash") && s.Container != "vault" {
			return "sre-shell"
		}
	case "portforward":
		ok := strings.HasPrefix(in.Subject.User, "dev-")
		for _, p := range s.Ports {
			ok = ok && p >= 8000 && p < 9000
		}
		if ok {
			return "debug-port"
		}
	case "":
		var obj any
		_ = json.Unmarshal(in.Body, &obj)
		m, _ := obj.(map[string]any)
		meta, _ := m["metadata"].(map[string]any)
		labels, _ := meta["labels"].(map[string]any)
		if labels["team"] == "blue" && strings.HasSuffix(in.Request.Namespace, "-blue") {
			return "blue-team"
		}
	}
	return ""
}

// FuzzCELInputs decides exec, port-forward and create requests whose every
// CEL-visible field is fuzzed (argv, flags, container, ports, user,
// groups, namespace, the body's labels) and checks the engine against the
// rules' meaning in Go: an input that matches a rule gets its action, one
// that matches none is denied; an expression that cannot be evaluated
// (a body that is not JSON, a label that is not a string) denies or falls
// through, never allows.
func FuzzCELInputs(f *testing.F) {
	f.Add(uint8(0), "cat\x00/etc/os-release", false, false, "", "", "alice", "dev", "prod", []byte(nil))
	f.Add(uint8(0), "cat\x00/etc/os-release", true, false, "", "", "alice", "dev", "prod", []byte(nil))
	f.Add(uint8(0), "sh\x00-c\x00id", false, true, "vault", "", "olga", "sre", "prod", []byte(nil))
	f.Add(uint8(0), "bash", true, true, "app", "", "olga", "sre", "prod", []byte(nil))
	f.Add(uint8(1), "", false, false, "", "8080,8443", "dev-ann", "", "prod", []byte(nil))
	f.Add(uint8(1), "", false, false, "", "9000", "dev-ann", "", "prod", []byte(nil))
	f.Add(uint8(2), "", false, false, "", "", "bob", "", "team-blue", []byte(`{"metadata":{"labels":{"team":"blue"}}}`))
	f.Add(uint8(2), "", false, false, "", "", "bob", "", "team-blue", []byte(`{"metadata":{"labels":{"team":7}}}`))
	f.Add(uint8(2), "", false, false, "", "", "bob", "", "team-blue", []byte(`{"metadata":{"labels":null}}`))
	f.Add(uint8(2), "", false, false, "", "", "bob", "", "team-blue", []byte(`[1,2]`))
	e := mustNew(f, Config{Rules: celFuzzRules})
	action := map[string]Action{"": Deny}
	for _, r := range celFuzzRules {
		action[r.Name] = r.Action
	}
	f.Fuzz(func(t *testing.T, kind uint8, argv string, tty, stdin bool, container, ports, user, group, ns string, body []byte) {
		in := Input{Subject: Subject{User: user, Groups: []string{group}}}
		switch kind % 3 {
		case 0:
			in.Request = resourceRequest("create", "", "pods", "exec", ns, "web")
			in.Request.Stream = &k8swire.Stream{Command: strings.Split(argv, "\x00"), TTY: tty, Stdin: stdin, Stdout: true, Container: container}
		case 1:
			in.Request = resourceRequest("create", "", "pods", "portforward", ns, "web")
			in.Request.Stream = &k8swire.Stream{}
			for _, p := range strings.Split(ports, ",") {
				var n int32
				for _, c := range p {
					n = n*10 + int32(c-'0')%10
				}
				in.Request.Stream.Ports = append(in.Request.Stream.Ports, n%65536)
			}
		case 2:
			in.Request = resourceRequest("create", "", "configmaps", "", ns, "")
			in.Body, in.ContentType = body, ContentTypeJSON
		}
		d := e.Decide(in)
		want := celFuzzWant(in)
		if want != "" {
			if d.Rule != want || d.Action != action[want] {
				t.Fatalf("%+v: decided %s, want rule %s", in.Request.Stream, d, want)
			}
			return
		}
		if d.Action != Deny {
			t.Fatalf("%+v body %q: decided %s, want deny", in.Request.Stream, in.Body, d)
		}
	})
}
