package k8swire

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestProtobufUntouched checks the shortcut against the full decode: a body
// the shortcut lets through unread is one the decode and walk leave as
// they are, and the bodies the gateway sees most (a pod GET under the
// built-in rules) do take it.
func TestProtobufUntouched(t *testing.T) {
	defaults := newTestMasker(t, MaskConfig{DefaultRules: true, DefaultPatterns: true})
	withRules := newTestMasker(t, testConfig)
	plainPod := testPod()
	plainPod.Spec.Containers[0].Env = nil
	jwtPod := testPod()
	jwtPod.Annotations = map[string]string{"note": "token " + testJWT}
	cases := []struct {
		name      string
		m         *Masker
		url       string
		obj       runtime.Object
		untouched bool
	}{
		{"pod under the built-in rules", defaults, "/api/v1/namespaces/dev/pods/web", plainPod, true},
		{"pod list under the built-in rules", defaults, "/api/v1/namespaces/dev/pods",
			&corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: []corev1.Pod{*plainPod, *plainPod}}, true},
		{"pod holding a JWT", defaults, "/api/v1/namespaces/dev/pods/web", jwtPod, false},
		{"pod with an env rule", withRules, "/api/v1/namespaces/dev/pods/web", plainPod, false},
		{"secret", defaults, "/api/v1/namespaces/dev/secrets/a", testSecret("a"), false},
		{"secret fetched as another resource", defaults, "/api/v1/namespaces/dev/configmaps/a", testSecret("a"), false},
		{"list of raw objects", defaults, "/api/v1/namespaces/dev/configmaps",
			&corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: []runtime.RawExtension{{Raw: encodeJSON(t, testSecret("a"))}}}, false},
		{"plain status", defaults, "/api/v1/namespaces/dev/pods/web",
			&metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Message: "not found", Code: 404}, true},
		{"status holding a JWT", defaults, "/api/v1/namespaces/dev/pods/web",
			&metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Message: "token " + testJWT, Code: 403}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := classify(t, "GET", c.url)
			body := encodeProto(t, c.obj)
			got := c.m.protobufUntouched(c.m.requestRules(req), body)
			if got != c.untouched {
				t.Fatalf("protobufUntouched = %v, want %v", got, c.untouched)
			}
			assertDecodeAgrees(t, c.m, req, body, got)
		})
	}
}

// assertDecodeAgrees checks that when the shortcut said untouched, the
// full decode and walk change nothing either.
func assertDecodeAgrees(t *testing.T, m *Masker, req *Request, body []byte, untouched bool) {
	t.Helper()
	if !untouched {
		return
	}
	obj, _, err := maskProtobuf.Decode(body, nil, nil)
	if err != nil {
		return // the decode refuses it; the shortcut passed bytes with nothing to mask
	}
	if m.maskObject(req, m.requestRules(req), obj) {
		t.Fatalf("the shortcut let through a body the decode masks: %q", body)
	}
}

// TestParseEnvelope checks the envelope parser on good and broken
// bodies: anything but a complete, uncompressed envelope is refused.
func TestParseEnvelope(t *testing.T) {
	good := encodeProto(t, testPod())
	if e, ok := parseEnvelope(good); !ok || e.gvk.Kind != "Pod" || e.gvk.Version != "v1" || e.gvk.Group != "" {
		t.Fatalf("parseEnvelope(pod) = %v, %v", e.gvk, ok)
	}
	for name, b := range map[string][]byte{
		"truncated":  good[:len(good)-3],
		"no magic":   good[4:],
		"json":       encodeJSON(t, testPod()),
		"empty":      nil,
		"magic only": []byte("k8s\x00"),
		"gzip raw":   append(bytes.Clone(good), 0x1a, 0x04, 'g', 'z', 'i', 'p'),
		"extra":      append(bytes.Clone(good), 0x28, 0x01),
	} {
		if e, ok := parseEnvelope(b); ok {
			t.Errorf("%s: parseEnvelope = %v, want a refusal", name, e.gvk)
		}
	}
}

// FuzzProtobufUntouched mutates encoded objects: whenever the shortcut
// lets a body through, the full decode and walk must change nothing.
func FuzzProtobufUntouched(f *testing.F) {
	plainPod := testPod()
	plainPod.Spec.Containers[0].Env = nil
	for _, obj := range []runtime.Object{plainPod, testPod(), testSecret("a"), testConfigMap(),
		&metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Message: "x"}} {
		f.Add(false, encodeProto(f, obj))
		f.Add(true, encodeProto(f, obj))
	}
	m := newTestMasker(f, MaskConfig{DefaultRules: true, DefaultPatterns: true})
	pods, secrets := classify(f, "GET", "/api/v1/namespaces/dev/pods/web"), classify(f, "GET", "/api/v1/namespaces/dev/secrets/a")
	f.Fuzz(func(t *testing.T, secret bool, body []byte) {
		req := pods
		if secret {
			req = secrets
		}
		assertDecodeAgrees(t, m, req, body, m.protobufUntouched(m.requestRules(req), body))
	})
}

// BenchmarkMaskPodProtobuf masks a pod GET's protobuf body under the
// built-in rules and patterns: the shortcut's case.
func BenchmarkMaskPodProtobuf(b *testing.B) {
	m := newTestMasker(b, MaskConfig{DefaultRules: true, DefaultPatterns: true})
	req := classify(b, "GET", "/api/v1/namespaces/dev/pods/web")
	body := encodeProto(b, testPod())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.MaskBody(req, ContentTypeProtobuf, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMaskPodJSON(b *testing.B) {
	m := newTestMasker(b, MaskConfig{DefaultRules: true, DefaultPatterns: true})
	req := classify(b, "GET", "/api/v1/namespaces/dev/pods/web")
	body := encodeJSON(b, testPod())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.MaskBody(req, "application/json", body); err != nil {
			b.Fatal(err)
		}
	}
}
