package k8swire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// wireCase is one body for the differential tests: a request and an
// object, encoded as the apiserver encodes it.
type wireCase struct {
	name, url string
	obj       runtime.Object
	// wire: the wire masker must mask it itself, not leave it to the
	// typed path.
	wire bool
}

func wireCases(t testing.TB) []wireCase {
	pod := testPod()
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
		Name: "sidecar", Image: "envoy", Args: []string{"--token", testJWT},
		Env:       []corev1.EnvVar{{Name: "SECRET_KEY", Value: "s3cr3t"}, {Name: "EMPTY_SECRET"}, {Name: "PLAIN", Value: "Bearer abcdefghijkl"}},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
		Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Port: intstr.FromString("http"), HTTPHeaders: []corev1.HTTPHeader{{Name: "Authorization", Value: "Bearer " + testJWT}},
		}}},
	})
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(), Message: "key " + testAWSKey}}
	cm := testConfigMap()
	sl := benchSecretList(6)
	return []wireCase{
		{"secret", "/api/v1/namespaces/dev/secrets/a", testSecret("a"), true},
		{"secret list", "/api/v1/namespaces/dev/secrets", &corev1.SecretList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"}, ListMeta: metav1.ListMeta{ResourceVersion: "9", Continue: "tok"}, Items: []corev1.Secret{listItem(testSecret("a")), listItem(testSecret("b"))}}, true},
		{"bench secret list", "/api/v1/secrets", sl, true},
		{"secret via configmaps url", "/api/v1/namespaces/dev/configmaps/x", testSecret("x"), true},
		{"configmap", "/api/v1/namespaces/dev/configmaps/web", cm, true},
		{"configmap list", "/api/v1/namespaces/dev/configmaps", &corev1.ConfigMapList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMapList"}, Items: []corev1.ConfigMap{*cm, *cm}}, true},
		{"pod", "/api/v1/namespaces/dev/pods/web", pod, true},
		{"pod list", "/api/v1/namespaces/dev/pods", &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: []corev1.Pod{*pod, *testPod()}}, true},
		{"partial object metadata list", "/api/v1/secrets", &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadataList"}, Items: []metav1.PartialObjectMetadata{{ObjectMeta: testSecret("a").ObjectMeta}}}, true},
		{"status", "/api/v1/namespaces/dev/secrets/a", &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Message: "token " + testJWT, Code: 403, Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Message: testAWSKey}}}}, true},
		{"raw list", "/api/v1/namespaces/dev/configmaps", &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: []runtime.RawExtension{{Raw: encodeJSON(t, testSecret("a"))}, {Raw: []byte("not json")}}}, true},
		{"nothing to mask", "/api/v1/namespaces/dev/configmaps/web", &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "web"}, Data: map[string]string{"a": "b"}}, true},
		{"service account", "/api/v1/namespaces/dev/serviceaccounts/bot", &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: metav1.ObjectMeta{Name: "bot", Annotations: map[string]string{"note": testJWT}}}, true},
	}
}

// wireConfigs are the configurations the wire masker is checked under:
// the rules of the tests, patterns alone, and rules that end at objects
// and lists (masked whole) and go through maps.
var wireConfigs = []struct {
	name string
	cfg  MaskConfig
}{
	{"test config", testConfig},
	{"default rules", MaskConfig{DefaultRules: true}},
	{"patterns", MaskConfig{DefaultPatterns: true}},
	{"whole objects", MaskConfig{DefaultRules: true, DefaultPatterns: true, Rules: []MaskRule{
		{Resource: "pods", Fields: []string{"spec.containers[].env[]", "spec.containers[].args", "metadata.labels", "status.conditions[]"}},
		{Resource: "pods", Fields: []string{"spec.containers[].ports", "spec.containers[].env[].valueFrom"}, NamePattern: "(?i)side|token"},
		{Resource: "configmaps", Fields: []string{"data", "metadata.annotations.note"}, KeyPattern: "conf"},
		{Resource: "serviceaccounts", Fields: []string{"metadata.annotations"}},
		{Resource: "secrets", Fields: []string{"type", "metadata.labels.app"}},
	}}},
	// A Probe inlines its handler (an embedded struct on the wire): a
	// whole-object mask of it is left to the typed path.
	{"inline", MaskConfig{DefaultRules: true, Rules: []MaskRule{
		{Resource: "pods", Fields: []string{"spec.containers[].livenessProbe"}, NamePattern: "side"},
	}}},
}

// checkWire masks body with the wire masker and with the typed one and
// fails unless both results decode to the same object. It reports whether
// the wire masker did the work.
func checkWire(t testing.TB, m *Masker, req *Request, body []byte) bool {
	t.Helper()
	rules := m.requestRules(req)
	wout, wch, werr := m.maskProtobufWire(req, rules, body)
	if errors.Is(werr, errWireFallback) {
		return false
	}
	tout, tch, terr := m.maskProtobufTyped(req, rules, body)
	switch {
	case terr != nil && werr == nil:
		t.Fatalf("the typed masker refuses the body (%v), the wire masker passes it", terr)
	case werr != nil:
		t.Fatalf("wire masker: %v", werr)
	case wch != tch:
		t.Fatalf("changed: wire %v, typed %v", wch, tch)
	case !wch:
		if !bytes.Equal(wout, body) {
			t.Fatal("unchanged, but the wire masker's output differs from the body")
		}
		return true
	}
	wobj, _, err := maskProtobuf.Decode(wout, nil, nil)
	if err != nil {
		t.Fatalf("the wire masker's output does not decode: %v", err)
	}
	tobj, _, err := maskProtobuf.Decode(tout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(wobj, tobj) {
		t.Fatalf("wire and typed masking differ:\nwire  %s\ntyped %s", encodeJSON(t, wobj), encodeJSON(t, tobj))
	}
	return true
}

// TestMaskProtobufWireMatchesTyped is the differential test: the wire
// masker against the typed reference, over every case and configuration.
func TestMaskProtobufWireMatchesTyped(t *testing.T) {
	for _, c := range wireConfigs {
		m := newTestMasker(t, c.cfg)
		for _, wc := range wireCases(t) {
			t.Run(c.name+"/"+wc.name, func(t *testing.T) {
				body := encodeProto(t, wc.obj)
				if !checkWire(t, m, classify(t, "GET", wc.url), body) && wc.wire && c.name != "inline" {
					t.Error("left to the typed masker")
				}
			})
		}
	}
}

// TestMaskProtobufWireMutations flips, drops and inserts bytes in the
// test bodies (a fixed seed): the wire masker either leaves the body to
// the typed path or agrees with it, and never passes what the typed
// masker refuses.
func TestMaskProtobufWireMutations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	wire := 0
	n := 0
	for _, c := range wireConfigs {
		m := newTestMasker(t, c.cfg)
		for _, wc := range wireCases(t) {
			body := encodeProto(t, wc.obj)
			req := classify(t, "GET", wc.url)
			for range 150 {
				b := mutate(rng, body)
				n++
				if checkWire(t, m, req, b) {
					wire++
				}
			}
		}
	}
	t.Logf("%d of %d mutated bodies masked at the wire level", wire, n)
	if wire == 0 {
		t.Error("no mutated body was masked at the wire level")
	}
}

// mutate changes one to three bytes of a copy of b (not its magic).
func mutate(rng *rand.Rand, b []byte) []byte {
	out := bytes.Clone(b)
	for range 1 + rng.IntN(3) {
		if len(out) <= 5 {
			break
		}
		i := 4 + rng.IntN(len(out)-4)
		switch rng.IntN(4) {
		case 0:
			out[i] ^= byte(1 << rng.IntN(8))
		case 1:
			out[i] = byte(rng.IntN(256))
		case 2:
			out = append(out[:i], out[i+1:]...)
		default:
			out = append(out[:i], append([]byte{byte(rng.IntN(256))}, out[i:]...)...)
		}
	}
	return out
}

// FuzzMaskProtobufWire: for any body, the wire masker leaves it to the
// typed path or produces what the typed path produces.
func FuzzMaskProtobufWire(f *testing.F) {
	for _, wc := range wireCases(f) {
		f.Add(encodeProto(f, wc.obj), wc.url)
	}
	maskers := make([]*Masker, len(wireConfigs))
	for i, c := range wireConfigs {
		maskers[i] = newTestMasker(f, c.cfg)
	}
	f.Fuzz(func(t *testing.T, body []byte, url string) {
		req := classify(t, "GET", "/api/v1/namespaces/dev/secrets")
		for _, u := range []string{"/api/v1/namespaces/dev/configmaps", "/api/v1/namespaces/dev/pods/web", "/api/v1/secrets"} {
			if u == url {
				req = classify(t, "GET", u)
			}
		}
		for _, m := range maskers {
			checkWire(t, m, req, body)
		}
	})
}
