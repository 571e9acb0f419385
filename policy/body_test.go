package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

func TestDecodeBody(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
		wantErr                 string // "" for success
		wantKind                string // "map", "list" or "nil"
	}{
		{"empty body", ContentTypeJSON, "", "", "nil"},
		{"json null", ContentTypeJSON, "null", "", "nil"},
		{"json object", ContentTypeJSON, `{"a":1}`, "", "map"},
		{"json with parameters", "Application/JSON; charset=utf-8", `{"a":1}`, "", "map"},
		{"no content type is json", "", `{"a":1}`, "", "map"},
		{"yaml object", ContentTypeYAML, "a: 1\n", "", "map"},
		{"yaml empty document", ContentTypeYAML, "# nothing\n", "", "nil"},
		{"apply patch as json", ContentTypeApplyPatch, `{"a":1}`, "", "map"},
		{"json patch", ContentTypeJSONPatch, `[]`, "", "list"},
		{"broken json", ContentTypeJSON, `{"a":`, "as application/json", ""},
		{"trailing garbage", ContentTypeJSON, `{"a":1} {}`, "as application/json", ""},
		{"broken yaml", ContentTypeYAML, "a: [1\n", "as application/yaml", ""},
		{"broken protobuf", ContentTypeProtobuf, "k8s\x00garbage", "as application/vnd.kubernetes.protobuf", ""},
		{"json sent as protobuf", ContentTypeProtobuf, `{"apiVersion":"v1","kind":"Pod"}`, "as application/vnd.kubernetes.protobuf", ""},
		{"unsupported type", "application/cbor", "\xa0", `unsupported content type "application/cbor"`, ""},
		{"object as json patch", ContentTypeJSONPatch, `{"op":"add"}`, "must be a list of operations", ""},
		{"list as object", ContentTypeMergePatch, `[{"op":"add"}]`, "a list where an object belongs", ""},
		{"scalar", ContentTypeJSON, `"pod"`, "not an object", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodeBody([]byte(tc.body), tc.contentType)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errBody) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kind := "other"
			switch v.(type) {
			case nil:
				kind = "nil"
			case map[string]any:
				kind = "map"
			case []any:
				kind = "list"
			}
			if kind != tc.wantKind {
				t.Errorf("decoded a %s (%v), want a %s", kind, v, tc.wantKind)
			}
		})
	}
}

// TestUnreadableBodyDenies checks that a body a matching rule needs but
// cannot decode denies, naming the rule, and that a body no matching rule
// reads is never decoded.
func TestUnreadableBodyDenies(t *testing.T) {
	e := mustNew(t, Config{DefaultRules: true, Rules: []Rule{
		{Name: "staging-labels", Namespaces: []string{"staging"}, Expression: `object.metadata.labels.team != ""`, Action: Allow},
		{Name: "exec-ok", Resources: []string{"pods/exec"}, Expression: `request.stream.command.size() > 0`, Action: Allow},
		allowAll,
	}})
	garbage := []byte("{not json")
	input := func(verb, resource, sub, ns, ct string, body []byte) Input {
		return Input{Subject: Subject{User: "alice"}, Request: resourceRequest(verb, "", resource, sub, ns, ""), ContentType: ct, Body: body}
	}
	exec := input("create", "pods", "exec", "dev", ContentTypeJSON, garbage)
	exec.Request.Stream = &k8swire.Stream{Command: []string{"ls"}}
	for _, tc := range []struct {
		name     string
		in       Input
		wantRule string
		wantMsg  string // for denies
	}{
		{"garbage pod", input("create", "pods", "", "dev", ContentTypeJSON, garbage), DenyPrivilegedRule, "needs the request body: cannot decode request body as application/json"},
		{"garbage protobuf pod", input("create", "pods", "", "dev", ContentTypeProtobuf, []byte("k8s\x00\x01\x02")), DenyPrivilegedRule, "as application/vnd.kubernetes.protobuf"},
		{"cbor pod", input("create", "pods", "", "dev", "application/cbor", []byte{0xa0}), DenyPrivilegedRule, `unsupported content type "application/cbor"`},
		{"merge patch that is a list", input("patch", "deployments", "", "dev", ContentTypeMergePatch, []byte(`[{"op":"add","path":"/spec/hostPID","value":true}]`)), DenyPrivilegedRule, "a list where an object belongs"},
		{"user rule reading object", input("create", "configmaps", "", "staging", ContentTypeYAML, []byte("a: [")), "staging-labels", `policy rule "staging-labels" needs the request body`},
		{"empty pod body", input("create", "pods", "", "dev", ContentTypeJSON, nil), "allow-all", ""},
		{"garbage configmap: no rule reads it", input("create", "configmaps", "", "dev", ContentTypeJSON, garbage), "allow-all", ""},
		{"garbage exec body: rule does not read object", exec, "exec-ok", ""},
		{"garbage pod get: built-in rule does not match", input("get", "pods", "", "dev", ContentTypeJSON, garbage), "allow-all", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(tc.in)
			if d.Rule != tc.wantRule {
				t.Fatalf("got %s, want a decision by rule %q", d, tc.wantRule)
			}
			if tc.wantMsg != "" && (d.Action != Deny || !strings.Contains(d.Message, tc.wantMsg)) {
				t.Errorf("got %s, want a deny mentioning %q", d, tc.wantMsg)
			}
			if tc.wantMsg == "" && d.Action != Allow {
				t.Errorf("got %s, want an allow", d)
			}
		})
	}
}

func TestPatchType(t *testing.T) {
	for ct, want := range map[string]string{
		ContentTypeJSONPatch:                        "json",
		ContentTypeMergePatch:                       "merge",
		ContentTypeStrategicPatch + ";charset=utf8": "strategic",
		ContentTypeApplyPatch:                       "apply",
		ContentTypeJSON:                             "",
		"":                                          "",
	} {
		if got := patchTypeOf(ct); got != want {
			t.Errorf("patchTypeOf(%q) = %q, want %q", ct, got, want)
		}
	}
}
