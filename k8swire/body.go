package k8swire

import (
	"bytes"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// ContentTypeProtobuf is the media type of Kubernetes protobuf bodies.
const ContentTypeProtobuf = "application/vnd.kubernetes.protobuf"

var (
	protobufSerializer = func() runtime.Serializer {
		info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), ContentTypeProtobuf)
		if !ok {
			return nil
		}
		return info.Serializer
	}()
	jsonSerializer = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{})
)

// DecodeProtobuf decodes a protobuf body of a built-in kind (the kinds of
// client-go's scheme), with its apiVersion and kind set.
func DecodeProtobuf(b []byte) (runtime.Object, error) {
	if protobufSerializer == nil {
		return nil, errors.New("no protobuf serializer in the client-go scheme")
	}
	obj, gvk, err := protobufSerializer.Decode(b, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding protobuf: %w", err)
	}
	if gvk != nil {
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
	}
	return obj, nil
}

// ProtobufToJSON re-encodes a protobuf body of a built-in kind as JSON, as
// the client would have sent it had it spoken JSON.
func ProtobufToJSON(b []byte) ([]byte, error) {
	obj, err := DecodeProtobuf(b)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := jsonSerializer.Encode(obj, &out); err != nil {
		return nil, fmt.Errorf("encoding JSON: %w", err)
	}
	return bytes.TrimRight(out.Bytes(), "\n"), nil
}
