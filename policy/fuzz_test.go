package policy

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// addBodySeeds seeds f with the bodies of the table tests: the privileged
// cases and every workload kind in every encoding, plain and privileged.
func addBodySeeds(f *testing.F) {
	for _, tc := range privilegedCases {
		f.Add([]byte(tc.body), tc.contentType)
	}
	for _, k := range workloadKinds {
		for _, enc := range encodings {
			f.Add(enc.body(f, k, plainPodSpec(), nil), enc.contentType)
			for _, pf := range privilegedFields {
				spec := plainPodSpec()
				pf.mutate(&spec)
				f.Add(enc.body(f, k, spec, &pf), enc.contentType)
			}
		}
	}
}

// FuzzPrivileged checks that decoding and checking any body neither
// panics nor wavers, that the engine's built-in rule agrees with
// PrivilegedReasons, and that wrapping an object in a List keeps its
// verdict.
func FuzzPrivileged(f *testing.F) {
	addBodySeeds(f)
	e := mustNew(f, Config{DefaultRules: true, Rules: []Rule{allowAll}})
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		obj, err := decodeBody(body, contentType)
		verb := "create"
		if patchTypeOf(contentType) != "" {
			verb = "patch"
		}
		d := e.Decide(Input{Subject: Subject{User: "fuzz"}, Request: resourceRequest(verb, "apps", "deployments", "", "dev", "web"), Body: body, ContentType: contentType})
		if err != nil {
			if d.Action != Deny || d.Rule != DenyPrivilegedRule {
				t.Fatalf("undecodable body (%v) got %s, want a deny by the built-in rule", err, d)
			}
			return
		}
		reasons := PrivilegedReasons(obj)
		if again := PrivilegedReasons(obj); !slices.Equal(reasons, again) {
			t.Fatalf("PrivilegedReasons wavers: %q then %q", reasons, again)
		}
		if isPrivileged(obj) != (len(reasons) > 0) {
			t.Fatalf("isPrivileged = %v but reasons %q", isPrivileged(obj), reasons)
		}
		if privileged := d.Rule == DenyPrivilegedRule; privileged != (len(reasons) > 0) {
			t.Fatalf("decided %s but reasons %q", d, reasons)
		}
		if m, ok := obj.(map[string]any); ok {
			wrapped := map[string]any{"kind": "List", "items": []any{m}}
			if got := len(PrivilegedReasons(wrapped)) > 0; got != (len(reasons) > 0) {
				t.Fatalf("as a List item privileged = %v, alone reasons %q", got, reasons)
			}
		}
	})
}

// FuzzDecide checks that any request gets one of the three actions, the
// same one every time, from a rule the engine has or from no rule as a
// deny.
func FuzzDecide(f *testing.F) {
	f.Add("alice", "dev", "get", "", "pods", "", "dev", "web", "/api/v1/namespaces/dev/pods/web", true, []byte(nil), "")
	f.Add("olga", "ops", "create", "", "pods", "exec", "prod", "web", "/api/v1/namespaces/prod/pods/web/exec", true, []byte(nil), "")
	f.Add("system:serviceaccount:dev:ci", "", "patch", "apps", "deployments", "", "dev", "web", "", true,
		[]byte(`[{"op":"add","path":"/spec/template/spec/hostNetwork","value":true}]`), ContentTypeJSONPatch)
	f.Add("carol", "", "get", "", "", "", "", "", "/version", false, []byte(nil), "")
	f.Add("dan", "dev", "create", "", "pods", "", "staging", "", "", true, []byte("{"), ContentTypeJSON)
	spec := plainPodSpec()
	spec.HostPID = true
	f.Add("dan", "dev", "create", "", "pods", "", "dev", "", "", true, encodeProtobuf(f, workloadKinds[0].build(spec)), ContentTypeProtobuf)

	e := mustNew(f, Config{DefaultRules: true, Rules: []Rule{
		{Name: "ops-exec", Groups: []string{"ops"}, Resources: []string{"pods/exec"}, Expression: `request.stream.command == ["cat", "/etc/os-release"]`, Action: Allow},
		{Name: "prod-hold", Namespaces: []string{"prod"}, Action: RequireApproval},
		{Name: "staging-team", Namespaces: []string{"staging"}, Expression: `object.?metadata.?labels.?team.orValue("") != ""`, Action: Allow},
		{Name: "sa-dev", Users: []string{"system:serviceaccount:dev:*"}, Namespaces: []string{"dev"}, Action: Allow},
		{Name: "dev", Groups: []string{"dev"}, Namespaces: []string{"dev", "team-*"}, Resources: []string{"*"}, Action: Allow},
		{Name: "health", NonResourceURLs: []string{"/version", "/healthz*"}, Action: Allow},
	}})
	names := map[string]bool{}
	for _, r := range e.Rules() {
		names[r.Name] = true
	}
	f.Fuzz(func(t *testing.T, user, group, verb, apiGroup, resource, sub, ns, name, path string, isResource bool, body []byte, ct string) {
		in := Input{
			Subject: Subject{User: user, Groups: []string{group}},
			Request: resourceRequest(verb, apiGroup, resource, sub, ns, name),
			Body:    body, ContentType: ct,
		}
		in.Request.IsResourceRequest = isResource
		if path != "" {
			in.Request.Path = path
		}
		d := e.Decide(in)
		switch d.Action {
		case Allow, Deny, RequireApproval:
		default:
			t.Fatalf("action %q", d.Action)
		}
		if d.Rule == "" && d.Action != Deny || d.Rule != "" && !names[d.Rule] {
			t.Fatalf("decision %s: no match must deny, and a rule must exist", d)
		}
		if d.Action != Allow && d.Message == "" {
			t.Fatalf("decision %s has no message", d)
		}
		if again := e.Decide(in); !reflect.DeepEqual(again, d) {
			t.Fatalf("Decide wavers: %s then %s", d, again)
		}
	})
}

// TestSeedsDecodeLikeTyped checks the protobuf seeds against their typed
// source: the decoded map must carry the privileged flag the typed object
// set (an optimized path checked against the plain one).
func TestSeedsDecodeLikeTyped(t *testing.T) {
	for _, k := range workloadKinds {
		spec := plainPodSpec()
		spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: new(true)}
		obj := k.build(spec)
		fromProto, err := decodeBody(encodeProtobuf(t, obj), ContentTypeProtobuf)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := decodeBody(mustJSON(t, obj), ContentTypeJSON)
		if err != nil {
			t.Fatal(err)
		}
		p, j := PrivilegedReasons(fromProto), PrivilegedReasons(fromJSON)
		if len(p) == 0 || !slices.Equal(p, j) {
			t.Errorf("%s: protobuf finds %q, JSON %q", k.kind, p, j)
		}
	}
}
