package policy

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// privilegedCase is a body and what PrivilegedReasons must find in it.
type privilegedCase struct {
	name        string
	contentType string
	body        string
	want        []string
}

var privilegedCases = []privilegedCase{
	{
		name:        "plain pod",
		contentType: ContentTypeJSON,
		body:        `{"kind":"Pod","spec":{"containers":[{"name":"app","securityContext":{"privileged":false,"capabilities":{"add":[],"drop":["ALL"]}}}],"hostNetwork":false,"volumes":[{"name":"v","hostPath":null,"emptyDir":{}}]}}`,
	},
	{
		name:        "configmap with string true",
		contentType: ContentTypeJSON,
		body:        `{"kind":"ConfigMap","data":{"privileged":"true","hostPID":"true"}}`,
	},
	{
		name:        "string true is not a flag",
		contentType: ContentTypeJSON,
		body:        `{"kind":"Pod","spec":{"hostNetwork":"true","containers":[{"name":"app","securityContext":{"privileged":"true"}}]}}`,
	},
	{
		name:        "key case matters, as for the apiserver",
		contentType: ContentTypeJSON,
		body:        `{"spec":{"HostNetwork":true,"containers":[{"name":"app","securityContext":{"Privileged":true}}]}}`,
	},
	{
		name:        "duplicate keys: the last wins, as for the apiserver",
		contentType: ContentTypeJSON,
		body:        `{"spec":{"hostNetwork":false,"hostNetwork":true}}`,
		want:        []string{"pod spec sets hostNetwork: true"},
	},
	{
		name:        "findings in a stable order",
		contentType: ContentTypeJSON,
		body:        `{"spec":{"volumes":[{"name":"h","hostPath":{"path":"/"}}],"containers":[{"name":"b","securityContext":{"privileged":true}}],"initContainers":[{"name":"a","securityContext":{"capabilities":{"add":["A","B","C","D","E","F","G"]}}}],"hostIPC":true,"hostPID":true}}`,
		want: []string{
			"pod spec sets hostPID: true",
			"pod spec sets hostIPC: true",
			`container "b" sets securityContext.privileged: true`,
			`initContainer "a" adds capabilities [A B C D E ...]`,
			`volume "h" uses hostPath`,
		},
	},
	{
		name:        "unnamed container and long names",
		contentType: ContentTypeJSON,
		body:        `{"spec":{"containers":[{"securityContext":{"privileged":true}},{"name":"` + strings.Repeat("x", 100) + `","securityContext":{"privileged":true}}]}}`,
		want: []string{
			"containers[0] sets securityContext.privileged: true",
			`container "` + strings.Repeat("x", 64) + `..." sets securityContext.privileged: true`,
		},
	},
	{
		name:        "yaml yes is true, as for the apiserver",
		contentType: ContentTypeYAML,
		body:        "spec:\n  hostNetwork: yes\n",
		want:        []string{"pod spec sets hostNetwork: true"},
	},
	{
		name:        "yaml quoted true is a string",
		contentType: ContentTypeYAML,
		body:        "spec:\n  hostNetwork: 'true'\n",
	},
	{
		name:        "strategic merge patch with directives",
		contentType: ContentTypeStrategicPatch,
		body:        `{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"name":"app","securityContext":{"$retainKeys":["privileged"],"privileged":true}}]}}}}`,
		want:        []string{`container "app" sets securityContext.privileged: true`},
	},
	{
		name:        "json patch of a whole object at the root",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"replace","path":"","value":{"kind":"Pod","spec":{"hostPID":true}}}]`,
		want:        []string{"JSON patch op 0 (replace ): pod spec sets hostPID: true"},
	},
	{
		name:        "json patch replacing a whole pod spec",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"test","path":"/spec","value":{}},{"op":"add","path":"/spec/template/spec","value":{"hostIPC":true}}]`,
		want:        []string{"JSON patch op 1 (add /spec/template/spec): pod spec sets hostIPC: true"},
	},
	{
		name:        "json patch with odd list indexes",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"add","path":"/spec/containers/-1/securityContext/privileged","value":true},{"op":"add","path":"/spec/containers/+0/securityContext/capabilities","value":{"add":["X"]}}]`,
		want: []string{
			"JSON patch op 0 (add /spec/containers/-1/securityContext/privileged): containers[-1] sets securityContext.privileged: true",
			"JSON patch op 1 (add /spec/containers/+0/securityContext/capabilities): containers[+0] adds capabilities [X]",
		},
	},
	{
		name:        "json patch escaped pointer",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"add","path":"/metadata/annotations/a~1b~0c","value":"true"},{"op":"add","path":"/spec/volumes/0/host~1Path","value":{}}]`,
	},
	{
		name:        "json patch copy onto a checked field",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"copy","from":"/spec/containers/0/stdin","path":"/spec/hostNetwork"}]`,
		want:        []string{"JSON patch op 0 (copy /spec/hostNetwork): pod spec hostNetwork is copied from elsewhere"},
	},
	{
		name:        "json patch move onto capabilities",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"move","from":"/spec/template/spec/containers/0/args","path":"/spec/template/spec/containers/0/securityContext/capabilities/add"}]`,
		want:        []string{"JSON patch op 0 (move /spec/template/spec/containers/0/securityContext/capabilities/add): containers[0] capabilities are copied from elsewhere"},
	},
	{
		name:        "json patch copy of a whole template",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"copy","from":"/metadata/annotations/x","path":"/spec/template"}]`,
		want:        []string{"JSON patch op 0 (copy /spec/template): spec.template.spec is copied from elsewhere"},
	},
	{
		name:        "json patch copy elsewhere, remove and test",
		contentType: ContentTypeJSONPatch,
		body:        `[{"op":"copy","from":"/spec/hostNetwork","path":"/metadata/labels/x"},{"op":"remove","path":"/spec/hostNetwork"},{"op":"test","path":"/spec/hostPID","value":true},{"op":"add","path":"relative","value":true},{"op":"add","value":true},"junk"]`,
	},
}

func TestPrivilegedReasons(t *testing.T) {
	for _, tc := range privilegedCases {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := decodeBody([]byte(tc.body), tc.contentType)
			if err != nil {
				t.Fatalf("decodeBody: %v", err)
			}
			got := PrivilegedReasons(obj)
			if !slices.Equal(got, tc.want) {
				t.Errorf("PrivilegedReasons:\n got %q\nwant %q", got, tc.want)
			}
			if isPrivileged(obj) != (len(tc.want) > 0) {
				t.Errorf("isPrivileged = %v, want %v", !(len(tc.want) > 0), len(tc.want) > 0)
			}
		})
	}
}

// TestPrivilegedTestdata checks the sample objects under testdata against
// the findings their "# want:" lines name, read as YAML and as JSON.
func TestPrivilegedTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if filepath.Base(file) == "policy.yaml" {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := wantLines(data)
			j, err := yaml.YAMLToJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, body := range []struct {
				ct   string
				data []byte
			}{{ContentTypeYAML, data}, {ContentTypeJSON, j}} {
				obj, err := decodeBody(body.data, body.ct)
				if err != nil {
					t.Fatalf("%s: %v", body.ct, err)
				}
				if got := PrivilegedReasons(obj); !slices.Equal(got, want) {
					t.Errorf("%s:\n got %q\nwant %q", body.ct, got, want)
				}
			}
		})
	}
}

// wantLines returns the text of the "# want: " lines of a sample.
func wantLines(data []byte) []string {
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			want = append(want, w)
		}
	}
	return want
}

func TestPrivilegedReasonsInputs(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  any
		want bool
	}{
		{"nil", nil, false},
		{"string", "privileged", false},
		{"number", int64(1), false},
		{"empty map", map[string]any{}, false},
		{"empty patch", []any{}, false},
		{"spec not a map", map[string]any{"spec": []any{true}}, false},
		{"containers not a list", map[string]any{"spec": map[string]any{"containers": "x"}}, false},
		{"list as items", map[string]any{"items": []any{map[string]any{"spec": map[string]any{"hostPID": true}}}}, true},
		{"nested lists", map[string]any{"items": []any{map[string]any{"items": []any{map[string]any{"template": map[string]any{"spec": map[string]any{"hostIPC": true}}}}}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(PrivilegedReasons(tc.obj)) > 0; got != tc.want {
				t.Errorf("privileged = %v, want %v", got, tc.want)
			}
		})
	}
}
