package policy

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubegate/kubegate/k8swire"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The request body content types the engine decodes.
const (
	ContentTypeJSON           = "application/json"
	ContentTypeYAML           = "application/yaml"
	ContentTypeProtobuf       = k8swire.ContentTypeProtobuf
	ContentTypeJSONPatch      = "application/json-patch+json"
	ContentTypeMergePatch     = "application/merge-patch+json"
	ContentTypeStrategicPatch = "application/strategic-merge-patch+json"
	ContentTypeApplyPatch     = "application/apply-patch+yaml"
)

// errBody marks a request body the engine cannot decode.
var errBody = errors.New("cannot decode request body")

// mediaType is ct without parameters, lowercased.
func mediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// patchTypeOf is the CEL patchType of a body of content type ct: "json",
// "merge", "strategic", "apply", or "" for a body that is no patch.
func patchTypeOf(ct string) string {
	switch mediaType(ct) {
	case ContentTypeJSONPatch:
		return "json"
	case ContentTypeMergePatch:
		return "merge"
	case ContentTypeStrategicPatch:
		return "strategic"
	case ContentTypeApplyPatch:
		return "apply"
	}
	return ""
}

// decodeBody turns a request body into what CEL's object sees: a
// map[string]any for objects and merge, strategic-merge and apply patches,
// a []any of operations for a JSON patch, nil for an empty body. JSON and
// YAML are decoded the way the apiserver decodes them (sigs.k8s.io/yaml,
// then case-sensitive JSON keeping integers as int64), so a rule sees the
// fields the apiserver will. An empty content type is JSON, as for the
// apiserver.
func decodeBody(body []byte, contentType string) (any, error) {
	if len(body) == 0 {
		return nil, nil
	}
	mt := mediaType(contentType)
	var (
		v   any
		err error
	)
	switch mt {
	case "", ContentTypeJSON, ContentTypeJSONPatch, ContentTypeMergePatch, ContentTypeStrategicPatch:
		v, err = decodeJSON(body)
	case ContentTypeYAML, ContentTypeApplyPatch:
		var j []byte
		if j, err = yaml.YAMLToJSON(body); err == nil {
			v, err = decodeJSON(j)
		}
	case ContentTypeProtobuf:
		v, err = decodeProtobuf(body)
	default:
		return nil, fmt.Errorf("%w: unsupported content type %q", errBody, mt)
	}
	if err != nil {
		return nil, fmt.Errorf("%w as %s: %w", errBody, displayType(mt), err)
	}
	switch v.(type) {
	case nil:
	case []any:
		if mt != ContentTypeJSONPatch {
			return nil, fmt.Errorf("%w as %s: a list where an object belongs", errBody, displayType(mt))
		}
	case map[string]any:
		if mt == ContentTypeJSONPatch {
			return nil, fmt.Errorf("%w as %s: a JSON patch must be a list of operations", errBody, displayType(mt))
		}
	default:
		return nil, fmt.Errorf("%w as %s: not an object", errBody, displayType(mt))
	}
	return v, nil
}

func displayType(mt string) string {
	if mt == "" {
		return ContentTypeJSON
	}
	return mt
}

func decodeJSON(b []byte) (any, error) {
	var v any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func decodeProtobuf(b []byte) (any, error) {
	obj, err := k8swire.DecodeProtobuf(b)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return m, nil
}
