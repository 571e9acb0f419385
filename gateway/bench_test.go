package gateway

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/internal/benchcpu"
	"github.com/kubegate/kubegate/k8swire"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// BenchmarkServeGet runs one pod GET through the whole pipeline per
// iteration: authentication (a fake), classification, policy (a fake),
// the forward over HTTP/2 and TLS to an upstream that answers with a pod in
// protobuf, masking under the built-in rules, and the audit event written
// to a file. The client side is in process, so the figures are the
// gateway's own cost plus the upstream round trip.
func BenchmarkServeGet(b *testing.B) {
	g, body := benchGateway(b)
	b.ReportAllocs()
	defer benchcpu.Report(b)()
	for b.Loop() {
		benchGet(b, g, body)
	}
}

// BenchmarkServeGetParallel is BenchmarkServeGet with 50 clients at once
// (25 per GOMAXPROCS), as in the throughput profile of issue #9: their
// audit events meet in the one audit file.
func BenchmarkServeGetParallel(b *testing.B) {
	g, body := benchGateway(b)
	benchGet(b, g, body) // one connection upstream, not one per client
	b.ResetTimer()
	b.ReportAllocs()
	defer benchcpu.Report(b)()
	b.SetParallelism(25)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchGet(b, g, body)
		}
	})
}

// benchGateway is a gateway in front of an upstream that answers every
// request with the pod body it returns.
func benchGateway(b *testing.B) (*Gateway, []byte) {
	body := benchPodProtobuf(b)
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", k8swire.ContentTypeProtobuf)
		_, _ = w.Write(body)
	}))
	upstream.EnableHTTP2 = true
	upstream.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short at Close
	upstream.StartTLS()
	b.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	sink, err := audit.NewFileSink(audit.FileConfig{Path: filepath.Join(b.TempDir(), "events.jsonl")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sink.Close() })
	masker, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultRules: true, DefaultPatterns: true})
	if err != nil {
		b.Fatal(err)
	}
	// One user's requests as fast as they go: the per-user rate limit
	// would refuse them (it has BenchmarkLimiterAllow of its own).
	g, err := New(Config{Upstream: u, Transport: upstream.Client().Transport, Authenticator: fakeAuthn{}, Policy: fakePolicy{},
		Audit: sink, Masker: masker, Limits: Limits{RequestsPerSecond: -1, MaxStreams: -1}})
	if err != nil {
		b.Fatal(err)
	}
	return g, body
}

func benchGet(b *testing.B, g *Gateway, body []byte) {
	r := httptest.NewRequest("GET", "/api/v1/namespaces/dev/pods/toolbox", nil)
	r.Header.Set("Authorization", "Bearer good")
	r.Header.Set("Accept", k8swire.ContentTypeProtobuf)
	w := httptest.NewRecorder()
	g.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), body) {
		b.Errorf("got %d: %.200q", w.Code, w.Body.Bytes())
	}
}

// benchPodProtobuf is a pod of the size kubectl run makes, in protobuf.
func benchPodProtobuf(b *testing.B) []byte {
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "toolbox", Namespace: "dev", UID: "5e1c3f1e-4f0e-4a52-9a43-3f8f6a0d2b11", ResourceVersion: "4711",
			Labels: map[string]string{"app": "toolbox", "team": "platform"}, Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-23T07:00:00Z"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shell", Image: "registry.example.com/toolbox:1.2.3", Command: []string{"sleep", "infinity"},
			Env:       []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "REGION", Value: "eu-west-1"}},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}}}},
			NodeName: "node-1", ServiceAccountName: "default", RestartPolicy: corev1.RestartPolicyAlways},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", HostIP: "127.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}}},
	}
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), k8swire.ContentTypeProtobuf)
	if !ok {
		b.Fatal("no protobuf serializer")
	}
	var buf bytes.Buffer
	if err := info.Serializer.Encode(pod, &buf); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
