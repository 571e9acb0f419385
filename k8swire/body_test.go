package k8swire

import (
	"bytes"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

func TestProtobufToJSON(t *testing.T) {
	info, _ := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), ContentTypeProtobuf)
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "dev"},
		Data:       map[string]string{"k": "v"},
	}
	var pb bytes.Buffer
	if err := info.Serializer.Encode(cm, &pb); err != nil {
		t.Fatal(err)
	}
	j, err := ProtobufToJSON(pb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(j, &got); err != nil {
		t.Fatalf("%v: %s", err, j)
	}
	md, _ := got["metadata"].(map[string]any)
	data, _ := got["data"].(map[string]any)
	if got["apiVersion"] != "v1" || got["kind"] != "ConfigMap" || md["name"] != "web" || data["k"] != "v" {
		t.Fatalf("JSON %s", j)
	}
	for _, bad := range [][]byte{nil, []byte("k8s\x00garbage"), []byte(`{"kind":"ConfigMap"}`)} {
		if _, err := ProtobufToJSON(bad); err == nil {
			t.Errorf("ProtobufToJSON(%q) succeeded", bad)
		}
	}
}
