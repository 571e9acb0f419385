package k8swire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Rules shared by the body tests.
var (
	configMapRule = MaskRule{Name: "cm-secrets", Resource: "configmaps", Fields: []string{"data", "binaryData"}, KeyPattern: "(?i)password|token|secret|key"}
	podEnvRule    = MaskRule{Name: "pod-env", Resource: "pods", Fields: []string{"spec.containers[].env[].value"}, NamePattern: "(?i)pass|token|secret"}
	testConfig    = MaskConfig{DefaultRules: true, DefaultPatterns: true, Rules: []MaskRule{configMapRule, podEnvRule}}
)

func testConfigMap() *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "dev"},
		Data:       map[string]string{"db-password": testPassword, "API_KEY": testAWSKey + "x", "app.conf": "listen=:8080\nlog=debug"},
		BinaryData: map[string][]byte{"tls.key": []byte("binary-" + testPassword), "logo.png": {0x89, 'P', 'N', 'G'}},
	}
	la, _ := json.Marshal(cm)
	cm.Annotations = map[string]string{LastAppliedAnnotation: string(la)}
	return cm
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "dev"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "nginx",
			Env: []corev1.EnvVar{
				{Name: "DB_PASSWORD", Value: testPassword},
				{Name: "LOG_LEVEL", Value: "debug"},
				{Name: "API_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "token"}}},
			},
		}}},
	}
}

// secretTable is a meta.k8s.io/v1 Table of Secrets as the apiserver's
// printer builds it (name, type, data count, age), with each row's object
// as includeObject asks.
func secretTable(t testing.TB, include metav1.IncludeObjectPolicy, secrets ...*corev1.Secret) []byte {
	t.Helper()
	table := &metav1.Table{
		TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"},
		ListMeta: metav1.ListMeta{ResourceVersion: "4711"},
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name"}, {Name: "Type", Type: "string"},
			{Name: "Data", Type: "string"}, {Name: "Age", Type: "string"},
		},
	}
	for _, s := range secrets {
		row := metav1.TableRow{Cells: []any{s.Name, string(s.Type), int64(len(s.Data)), "5m"}}
		switch include {
		case metav1.IncludeObject:
			row.Object.Raw = encodeJSON(t, s)
		case metav1.IncludeMetadata:
			p := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}, ObjectMeta: s.ObjectMeta}
			row.Object.Raw = encodeJSON(t, p)
		}
		table.Rows = append(table.Rows, row)
	}
	b, err := json.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bodyCase is a MaskBody table case: check gets the decoded output.
type bodyCase struct {
	name, url, contentType string
	cfg                    MaskConfig
	body                   func(t testing.TB) []byte
	changed                bool
	check                  func(t *testing.T, got map[string]any)
}

func jsonBodyCases() []bodyCase {
	const jsonCT = "application/json"
	secretURL := "/api/v1/namespaces/dev/secrets/db"
	checkSecret := func(t *testing.T, s map[string]any) {
		t.Helper()
		for k, v := range at(s, "data").(map[string]any) {
			if v != MaskMarkerBase64 {
				t.Errorf("data.%s = %v", k, v)
			}
		}
		if got := at(s, "metadata", "annotations", LastAppliedAnnotation); got != MaskMarker {
			t.Errorf("last-applied = %v", got)
		}
		if got := at(s, "metadata", "annotations", "owner"); got != "team-db" {
			t.Errorf("owner annotation = %v", got)
		}
	}
	return []bodyCase{
		{
			name: "secret get", url: secretURL, contentType: jsonCT, cfg: testConfig, changed: true,
			body: func(t testing.TB) []byte { return encodeJSON(t, testSecret("db")) },
			check: func(t *testing.T, got map[string]any) {
				checkSecret(t, got)
				if at(got, "type") != "Opaque" || at(got, "metadata", "name") != "db" || at(got, "metadata", "labels", "app") != "db" {
					t.Errorf("unmasked fields changed: %v", got)
				}
			},
		},
		{
			name: "secret with stringData, escaped and differently cased keys", url: secretURL, contentType: jsonCT, cfg: MaskConfig{DefaultRules: true}, changed: true,
			body: func(testing.TB) []byte {
				return []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"d\u0061ta":{"a":"aHVudGVyMg=="},"stringData":{"b":"` + testPassword + `"},"Data":{"c":"aHVudGVyMg=="}}`)
			},
			check: func(t *testing.T, got map[string]any) {
				if at(got, "data", "a") != MaskMarkerBase64 || at(got, "Data", "c") != MaskMarkerBase64 || at(got, "stringData", "b") != MaskMarker {
					t.Errorf("got %v", got)
				}
			},
		},
		{
			name: "secret list", url: "/api/v1/namespaces/dev/secrets", contentType: jsonCT, cfg: testConfig, changed: true,
			body: func(t testing.TB) []byte {
				return encodeJSON(t, &corev1.SecretList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"}, Items: []corev1.Secret{*testSecret("a"), *testSecret("b")}})
			},
			check: func(t *testing.T, got map[string]any) {
				items := at(got, "items").([]any)
				if len(items) != 2 {
					t.Fatalf("items: %v", items)
				}
				for _, it := range items {
					checkSecret(t, it.(map[string]any))
				}
			},
		},
		{
			name: "secret table with objects", url: secretURL, contentType: "application/json;as=Table;g=meta.k8s.io;v=v1", cfg: testConfig, changed: true,
			body: func(t testing.TB) []byte {
				return secretTable(t, metav1.IncludeObject, testSecret("a"), testSecret("b"))
			},
			check: func(t *testing.T, got map[string]any) {
				for i := range 2 {
					checkSecret(t, at(got, "rows", i, "object").(map[string]any))
					if at(got, "rows", i, "cells", 1) != "Opaque" || at(got, "rows", i, "cells", 2) != float64(3) {
						t.Errorf("cells changed: %v", at(got, "rows", i, "cells"))
					}
				}
			},
		},
		{
			name: "secret table with metadata", url: "/api/v1/secrets", contentType: "application/json;as=Table;g=meta.k8s.io;v=v1", cfg: MaskConfig{DefaultRules: true}, changed: true,
			body: func(t testing.TB) []byte { return secretTable(t, metav1.IncludeMetadata, testSecret("a")) },
			check: func(t *testing.T, got map[string]any) {
				if at(got, "rows", 0, "object", "metadata", "annotations", LastAppliedAnnotation) != MaskMarker || at(got, "rows", 0, "object", "metadata", "name") != "a" {
					t.Errorf("row object: %v", at(got, "rows", 0, "object"))
				}
			},
		},
		{
			name: "table cell matching a pattern", url: "/api/v1/namespaces/dev/configmaps", contentType: "application/json;as=Table;g=meta.k8s.io;v=v1", cfg: MaskConfig{DefaultPatterns: true}, changed: true,
			body: func(testing.TB) []byte {
				return []byte(`{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[{"name":"Name","type":"string"}],"rows":[{"cells":["web","Bearer ` + testJWT + `",1],"object":null}]}`)
			},
			check: func(t *testing.T, got map[string]any) {
				if at(got, "rows", 0, "cells", 1) != "Bearer "+MaskMarker || at(got, "rows", 0, "cells", 0) != "web" {
					t.Errorf("cells: %v", at(got, "rows", 0, "cells"))
				}
			},
		},
		{
			name: "partial object metadata list", url: "/api/v1/secrets", contentType: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", cfg: MaskConfig{DefaultRules: true}, changed: true,
			body: func(t testing.TB) []byte {
				s := testSecret("a")
				return encodeJSON(t, &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadataList"}, Items: []metav1.PartialObjectMetadata{{ObjectMeta: s.ObjectMeta}}})
			},
			check: func(t *testing.T, got map[string]any) {
				if at(got, "items", 0, "metadata", "annotations", LastAppliedAnnotation) != MaskMarker {
					t.Errorf("items: %v", at(got, "items"))
				}
			},
		},
		{
			name: "status message with a token", url: secretURL, contentType: jsonCT, cfg: testConfig, changed: true,
			body: func(t testing.TB) []byte {
				return encodeJSON(t, &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Message: "denied for token " + testJWT, Code: 403})
			},
			check: func(t *testing.T, got map[string]any) {
				if at(got, "message") != "denied for token "+MaskMarker || at(got, "code") != float64(403) {
					t.Errorf("status: %v", got)
				}
			},
		},
		{
			name: "configmap key pattern", url: "/api/v1/namespaces/dev/configmaps/web", contentType: jsonCT, cfg: testConfig, changed: true,
			body: func(t testing.TB) []byte { return encodeJSON(t, testConfigMap()) },
			check: func(t *testing.T, got map[string]any) {
				if at(got, "data", "db-password") != MaskMarker || at(got, "data", "API_KEY") != MaskMarker || at(got, "data", "app.conf") != "listen=:8080\nlog=debug" {
					t.Errorf("data: %v", at(got, "data"))
				}
				if at(got, "binaryData", "tls.key") != MaskMarkerBase64 || at(got, "binaryData", "logo.png") != "iVBORw==" {
					t.Errorf("binaryData: %v", at(got, "binaryData"))
				}
				la, _ := at(got, "metadata", "annotations", LastAppliedAnnotation).(string)
				applied := decodeMap(t, []byte(la))
				if at(applied, "data", "db-password") != MaskMarker || at(applied, "data", "app.conf") != "listen=:8080\nlog=debug" || at(applied, "metadata", "name") != "web" {
					t.Errorf("last-applied: %s", la)
				}
			},
		},
		{
			name: "pod env name pattern", url: "/api/v1/namespaces/dev/pods/web", contentType: jsonCT, cfg: testConfig, changed: true,
			body: func(t testing.TB) []byte { return encodeJSON(t, testPod()) },
			check: func(t *testing.T, got map[string]any) {
				env := at(got, "spec", "containers", 0, "env")
				if at(env, 0, "value") != MaskMarker || at(env, 1, "value") != "debug" || at(env, 2, "valueFrom", "secretKeyRef", "key") != "token" {
					t.Errorf("env: %v", env)
				}
			},
		},
		{
			name: "pod env value before name", url: "/api/v1/namespaces/dev/pods", contentType: jsonCT, cfg: testConfig, changed: true,
			body: func(testing.TB) []byte {
				return []byte(`{"kind":"PodList","apiVersion":"v1","items":[{"spec":{"containers":[{"env":[{"value":"` + testPassword + `","name":"SECRET_X"},{"value":"1","name":"N"}]}]}}]}`)
			},
			check: func(t *testing.T, got map[string]any) {
				env := at(got, "items", 0, "spec", "containers", 0, "env")
				if at(env, 0, "value") != MaskMarker || at(env, 1, "value") != "1" {
					t.Errorf("env: %v", env)
				}
			},
		},
		{
			name: "jwt and pem in a configmap value", url: "/api/v1/namespaces/dev/configmaps/kube", contentType: jsonCT, cfg: MaskConfig{DefaultPatterns: true}, changed: true,
			body: func(t testing.TB) []byte {
				return encodeJSON(t, &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "kube"},
					Data: map[string]string{"kubeconfig": "users:\n- user:\n    token: " + testJWT + "\n", "key.pem": testPEM + "\n", "plain": "nothing here"}})
			},
			check: func(t *testing.T, got map[string]any) {
				if at(got, "data", "kubeconfig") != "users:\n- user:\n    token: "+MaskMarker+"\n" || at(got, "data", "key.pem") != MaskMarker+"\n" || at(got, "data", "plain") != "nothing here" {
					t.Errorf("data: %q", at(got, "data"))
				}
			},
		},
		{
			name: "secret in a list of another resource", url: "/api/v1/namespaces/dev/configmaps", contentType: jsonCT, cfg: testConfig, changed: true,
			body: func(testing.TB) []byte {
				return []byte(`{"kind":"List","apiVersion":"v1","items":[{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"data":{"k":"aHVudGVyMg=="}},{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"v"}}]}`)
			},
			check: func(t *testing.T, got map[string]any) {
				if at(got, "items", 0, "data", "k") != MaskMarkerBase64 || at(got, "items", 1, "data", "k") != "v" {
					t.Errorf("items: %v", at(got, "items"))
				}
			},
		},
		{
			name: "nothing to mask", url: "/api/v1/namespaces/dev/configmaps/web", contentType: jsonCT, cfg: testConfig,
			body: func(testing.TB) []byte {
				return []byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"web"},"data":{"a":"b"}}`)
			},
		},
		{
			name: "rule for another resource", url: "/api/v1/namespaces/dev/configmaps/web", contentType: jsonCT, cfg: MaskConfig{DefaultRules: true},
			body: func(t testing.TB) []byte { return encodeJSON(t, testConfigMap()) },
		},
	}
}

func TestMaskBodyJSON(t *testing.T) {
	for _, c := range jsonBodyCases() {
		t.Run(c.name, func(t *testing.T) {
			m := newTestMasker(t, c.cfg)
			req := classify(t, "GET", c.url)
			body := c.body(t)
			out, changed, err := m.MaskBody(req, c.contentType, body)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed {
				t.Errorf("changed = %v, want %v", changed, c.changed)
			}
			if !changed && (len(out) != len(body) || &out[0] != &body[0]) {
				t.Error("an unchanged body must come back as the input slice")
			}
			if m.Applies(req) {
				assertNoSecrets(t, out)
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
			if c.check != nil {
				c.check(t, decodeMap(t, out))
			}
			again, changed, err := m.MaskBody(req, c.contentType, out)
			if err != nil || changed || string(again) != string(out) {
				t.Errorf("masking twice changed the body again (%v, %v)", changed, err)
			}
		})
	}
}

func TestMaskBodyFailsClosed(t *testing.T) {
	m := newTestMasker(t, testConfig)
	secretReq := classify(t, "GET", "/api/v1/namespaces/dev/secrets/db")
	pb := encodeProto(t, testSecret("db"))
	cases := []struct {
		name, contentType string
		body              []byte
	}{
		{"protobuf labelled JSON", "application/json", pb},
		{"JSON labelled protobuf", ContentTypeProtobuf, encodeJSON(t, testSecret("db"))},
		{"truncated protobuf", ContentTypeProtobuf, pb[:len(pb)/2]},
		{"garbage protobuf", ContentTypeProtobuf, []byte("k8s\x00\x0a\xff\xff\xff")},
		{"truncated JSON", "application/json", []byte(`{"kind":"Secret","data":{"a":"aHVudGVyMg==`)},
		{"JSON with trailing data", "application/json", []byte(`{"kind":"Secret","apiVersion":"v1"} {"data":{"a":"x"}}`)},
		{"JSON garbage", "application/json", []byte("hunter2")},
		{"JSON bad escape", "application/json", []byte(`{"data":{"a":"\x"}}`)},
		{"JSON too deep", "application/json", []byte(strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1))},
		{"text with a field rule", "text/plain", []byte(testPassword)},
		{"bad YAML", "application/yaml", []byte("kind: Secret\ndata: {a: aHVudGVyMg==\n")},
		{"CBOR", "application/cbor", []byte{0xd9, 0xd9, 0xf7, 0xa0}},
		{"no content type", "", []byte(`{}`)},
		{"watch stream", "application/vnd.kubernetes.protobuf;stream=watch", pb},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, changed, err := m.MaskBody(secretReq, c.contentType, c.body)
			if !errors.Is(err, ErrUnmaskable) || out != nil || changed {
				t.Errorf("MaskBody = %q, %v, %v; want ErrUnmaskable", out, changed, err)
			}
		})
	}

	// Patterns alone cannot read an image; they let it pass.
	cmReq := classify(t, "GET", "/api/v1/namespaces/dev/configmaps/web/proxy")
	png := []byte("\x89PNG\r\n" + testJWT)
	if out, changed, err := m.MaskBody(cmReq, "image/png", png); err != nil || changed || string(out) != string(png) {
		t.Errorf("image with patterns only: %q, %v, %v", out, changed, err)
	}
	// Text gets the patterns.
	logReq := classify(t, "GET", "/api/v1/namespaces/dev/pods/web/log")
	out, changed, err := m.MaskBody(logReq, "text/plain; charset=utf-8", []byte("login with "+testAWSKey+" ok\n"))
	if err != nil || !changed || string(out) != "login with "+MaskMarker+" ok\n" {
		t.Errorf("log: %q, %v, %v", out, changed, err)
	}
}

// TestMaskBodyEmbeddedRawExtension covers objects that embed other objects
// in RawExtensions of their own (a List), read from JSON.
func TestMaskBodyEmbeddedRawExtension(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: []runtime.RawExtension{{Raw: encodeJSON(t, testSecret("a"))}}}
	out, changed, err := m.MaskBody(classify(t, "GET", "/api/v1/namespaces/dev/secrets"), "application/json", encodeJSON(t, list))
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	assertNoSecrets(t, out)
}
