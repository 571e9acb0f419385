package k8swire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

var testYAMLSerializer = jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, maskScheme, maskScheme, jsonserializer.SerializerOptions{Yaml: true})

// encodeYAML encodes obj as the apiserver's YAML serializer does.
func encodeYAML(t testing.TB, obj runtime.Object) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := testYAMLSerializer.Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestMaskBodyYAML masks YAML as the JSON it converts to: the result reads
// as the masked JSON does, and a body with nothing to mask comes back as
// it is.
func TestMaskBodyYAML(t *testing.T) {
	m := newTestMasker(t, testConfig)
	cases := []struct {
		name, url string
		obj       runtime.Object
		changed   bool
	}{
		{"secret", "/api/v1/namespaces/dev/secrets/a", testSecret("a"), true},
		{"secret list", "/api/v1/namespaces/dev/secrets", &corev1.SecretList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"}, Items: []corev1.Secret{listItem(testSecret("a")), listItem(testSecret("b"))}}, true},
		{"configmap", "/api/v1/namespaces/dev/configmaps/web", testConfigMap(), true},
		{"pod", "/api/v1/namespaces/dev/pods/web", testPod(), true},
		{"nothing to mask", "/api/v1/namespaces/dev/configmaps/web", &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"n": "1"}}, Data: map[string]string{"a": "b", "port": "8080", "ratio": "1.50", "yes": "true", "multi": "a\nb\n"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := classify(t, "GET", c.url)
			body := encodeYAML(t, c.obj)
			out, changed, err := m.MaskBody(req, "application/yaml", body)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed {
				t.Fatalf("changed = %v", changed)
			}
			if !changed {
				if &out[0] != &body[0] {
					t.Error("an unchanged body must come back as the input slice")
				}
				return
			}
			assertNoSecrets(t, out)
			got, err := yaml.YAMLToJSON(out)
			if err != nil {
				t.Fatalf("output is not YAML: %v\n%s", err, out)
			}
			want, _, err := m.MaskBody(req, "application/json", encodeJSON(t, c.obj))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := decodeMap(t, got), decodeMap(t, want); !reflect.DeepEqual(g, w) {
				t.Errorf("YAML and JSON masking differ:\nyaml %v\njson %v", g, w)
			}
			if again, changed, err := m.MaskBody(req, "application/yaml", out); err != nil || changed || !bytes.Equal(again, out) {
				t.Errorf("masking twice changed the body (%v, %v)", changed, err)
			}
		})
	}
}

// TestMaskBodyYAMLOnlyWhatWasMasked: whatever the YAML holds beyond the
// document the masker read (a second document) does not reach the client.
func TestMaskBodyYAMLOnlyWhatWasMasked(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets/a")
	body := []byte("kind: ConfigMap\napiVersion: v1\n---\nkind: Secret\napiVersion: v1\ndata:\n  a: aHVudGVyMg==\n")
	out, _, err := m.MaskBody(req, "application/yaml", body)
	if err != nil {
		if !errors.Is(err, ErrUnmaskable) {
			t.Fatal(err)
		}
		return
	}
	if bytes.Contains(out, []byte("aHVudGVyMg==")) {
		t.Errorf("the second document passed:\n%s", out)
	}
}

// FuzzMaskYAML: whatever YAML MaskBody passes holds no Secret data or
// pattern match, and masking it again changes nothing.
func FuzzMaskYAML(f *testing.F) {
	f.Add(encodeYAML(f, testSecret("a")))
	f.Add(encodeYAML(f, testConfigMap()))
	f.Add(encodeYAML(f, testPod()))
	f.Add([]byte("kind: Secret\napiVersion: v1\ndata: &a\n  x: aHVudGVyMg==\nstringData: *a\n"))
	m := newTestMasker(f, MaskConfig{DefaultRules: true, DefaultPatterns: true})
	req := classify(f, "GET", "/api/v1/namespaces/dev/secrets")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, _, err := m.MaskBody(req, "application/yaml", body)
		if err != nil {
			if !errors.Is(err, ErrUnmaskable) {
				t.Fatalf("error not wrapping ErrUnmaskable: %v", err)
			}
			return
		}
		j, err := yaml.YAMLToJSON(out)
		if err != nil {
			t.Fatalf("passed YAML does not decode: %v", err)
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatal(err)
		}
		if s, leaked := leakedString(v); leaked {
			t.Fatalf("leaked %q in %s", s, out)
		}
		if _, changed, err := m.MaskBody(req, "application/yaml", out); err != nil || changed {
			t.Fatalf("masking the output again: changed %v, %v", changed, err)
		}
	})
}
