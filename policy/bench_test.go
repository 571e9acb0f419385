package policy

import (
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

func BenchmarkDecide(b *testing.B) {
	rules := []Rule{
		{Name: "ops-exec", Groups: []string{"ops"}, Resources: []string{"pods/exec"}, Namespaces: []string{"prod"}, Action: Allow},
		{Name: "sa-dev", Users: []string{"system:serviceaccount:dev:*"}, Namespaces: []string{"dev"}, Action: Allow},
		{Name: "readers", Verbs: []string{"get", "list", "watch"}, Resources: []string{"pods", "services", "configmaps"}, Action: Allow},
	}
	celRules := append([]Rule{{
		Name: "no-interactive-prod", Namespaces: []string{"prod"}, Resources: []string{"pods/exec", "pods/attach"},
		Expression: `request.stream.tty && request.stream.stdin && !("sre" in user.groups)`, Action: Deny,
	}}, rules...)

	ops := Subject{User: "olga", Groups: []string{"ops", "system:authenticated"}}
	exec := Input{Subject: ops, Request: execRequest("prod", k8swire.Stream{Command: []string{"cat", "/etc/os-release"}, Stdout: true})}
	spec := plainPodSpec()
	pod := workloadKinds[0].build(spec)
	createJSON := Input{Subject: Subject{User: "system:serviceaccount:dev:ci"}, Request: resourceRequest("create", "", "pods", "", "dev", ""),
		Body: mustJSON(b, pod), ContentType: ContentTypeJSON}
	createProto := createJSON
	createProto.Body, createProto.ContentType = encodeProtobuf(b, pod), ContentTypeProtobuf

	for _, bc := range []struct {
		name string
		cfg  Config
		in   Input
		want string
	}{
		{"fields-only", Config{Rules: rules}, exec, "ops-exec"},
		{"cel-stream", Config{Rules: celRules}, exec, "ops-exec"},
		{"default-rules-json-pod", Config{DefaultRules: true, Rules: rules}, createJSON, "sa-dev"},
		{"default-rules-protobuf-pod", Config{DefaultRules: true, Rules: rules}, createProto, "sa-dev"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := mustNew(b, bc.cfg)
			if d := e.Decide(bc.in); d.Rule != bc.want {
				b.Fatalf("got %s, want a decision by rule %s", d, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(bc.in)
			}
		})
	}
}
