package policy

import (
	"bytes"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubegate/kubegate/k8swire"
)

// mustNew compiles cfg or fails the test.
func mustNew(tb testing.TB, cfg Config) *Engine {
	tb.Helper()
	e, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return e
}

// allowAll is the last rule of engines that test one rule in front of it.
var allowAll = Rule{Name: "allow-all", Action: Allow}

// resourceRequest is a classified resource request.
func resourceRequest(verb, group, resource, sub, ns, name string) k8swire.Request {
	version := "v1"
	path := "/api/v1"
	if group != "" {
		path = "/apis/" + group + "/v1"
	}
	if ns != "" {
		path += "/namespaces/" + ns
	}
	path += "/" + resource
	if name != "" {
		path += "/" + name
	}
	if sub != "" {
		path += "/" + sub
	}
	return k8swire.Request{
		Verb: verb, APIGroup: group, APIVersion: version, Resource: resource,
		Subresource: sub, Namespace: ns, Name: name, IsResourceRequest: true, Path: path,
	}
}

// execRequest is a pods/exec request in ns with the given stream.
func execRequest(ns string, s k8swire.Stream) k8swire.Request {
	r := resourceRequest("create", "", "pods", "exec", ns, "web")
	r.Upgrade = k8swire.SPDY
	r.Stream = &s
	return r
}

func nonResourceRequest(verb, path string) k8swire.Request {
	return k8swire.Request{Verb: verb, Path: path}
}

// encodeProtobuf encodes a typed object as the apiserver's protobuf
// clients do. obj must carry its apiVersion and kind.
func encodeProtobuf(tb testing.TB, obj runtime.Object) []byte {
	tb.Helper()
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		tb.Fatal("no protobuf serializer")
	}
	var buf bytes.Buffer
	if err := info.Serializer.Encode(obj, &buf); err != nil {
		tb.Fatalf("encoding protobuf: %v", err)
	}
	return buf.Bytes()
}
