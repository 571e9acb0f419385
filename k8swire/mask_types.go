package k8swire

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/version"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// maskScheme holds the kinds the masker knows by their Go types: those of
// client-go's scheme, plus the meta.k8s.io kinds the apiserver sends for
// as=PartialObjectMetadata(List) and as=Table.
var maskScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(metav1.AddMetaToScheme(s))
	utilruntime.Must(metav1beta1.AddMetaToScheme(s))
	return s
}()

// maskProtobuf is the protobuf serializer of maskScheme, which both decodes
// and re-encodes the bodies the masker changes.
var maskProtobuf = func() runtime.Serializer {
	info, ok := runtime.SerializerInfoForMediaType(serializer.NewCodecFactory(maskScheme).SupportedMediaTypes(), ContentTypeProtobuf)
	if !ok {
		panic("k8swire: no protobuf serializer")
	}
	return info.Serializer
}()

// kindTypes maps "group/resource" to the Go struct types of that
// resource's kinds in maskScheme, highest-priority version first. The
// resource of a kind is guessed the way kubectl guesses it without
// discovery (Secret -> secrets, NetworkPolicy -> networkpolicies).
var kindTypes = sync.OnceValue(func() map[string][]reflect.Type {
	type entry struct {
		version string
		t       reflect.Type
	}
	found := map[string][]entry{}
	for gvk, t := range maskScheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || gvk.Kind == "" {
			continue
		}
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		key := gvk.Group + "/" + plural.Resource
		found[key] = append(found[key], entry{gvk.Version, t})
	}
	out := make(map[string][]reflect.Type, len(found))
	for key, es := range found {
		slices.SortFunc(es, func(a, b entry) int {
			if c := version.CompareKubeAwareVersionStrings(b.version, a.version); c != 0 {
				return c
			}
			return strings.Compare(a.t.String(), b.t.String())
		})
		for _, e := range es {
			if !slices.Contains(out[key], e.t) {
				out[key] = append(out[key], e.t)
			}
		}
	}
	return out
})

// jsonField is a struct field reached by its JSON name.
type jsonField struct {
	name  string
	index []int
	typ   reflect.Type
	// omitEmpty fields are absent from JSON when zero.
	omitEmpty bool
}

var jsonFieldCache sync.Map // reflect.Type -> []jsonField

// jsonFields lists the fields of struct type t by JSON name, with inlined
// embedded structs (TypeMeta) flattened, as encoding/json sees them.
func jsonFields(t reflect.Type) []jsonField {
	if fs, ok := jsonFieldCache.Load(t); ok {
		return fs.([]jsonField)
	}
	var fs []jsonField
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			index := append(slices.Clone(prefix), i)
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, index)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !slices.ContainsFunc(fs, func(g jsonField) bool { return g.name == name }) {
				omit := slices.Contains(strings.Split(opts, ","), "omitempty")
				fs = append(fs, jsonField{name: name, index: index, typ: f.Type, omitEmpty: omit})
			}
		}
	}
	walk(t, nil)
	jsonFieldCache.Store(t, fs)
	return fs
}

// fieldByJSONName finds a field by exact JSON name, else case-insensitively
// as encoding/json would.
func fieldByJSONName(t reflect.Type, name string) (jsonField, bool) {
	fs := jsonFields(t)
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	for _, f := range fs {
		if strings.EqualFold(f.name, name) {
			return f, true
		}
	}
	return jsonField{}, false
}

// deref strips pointers from t; nil stays nil.
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// isBytes reports whether values of t are base64 strings in JSON.
func isBytes(t reflect.Type) bool {
	t = deref(t)
	return t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
}

// isList reports whether t is a JSON array of elements.
func isList(t reflect.Type) bool {
	t = deref(t)
	return t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && !isBytes(t)
}

// typeChild is the type of member key of a value of type t, or nil when
// unknown.
func typeChild(t reflect.Type, key string) reflect.Type {
	switch t = deref(t); {
	case t == nil:
		return nil
	case t.Kind() == reflect.Struct:
		if f, ok := fieldByJSONName(t, key); ok {
			return f.typ
		}
	case t.Kind() == reflect.Map:
		return t.Elem()
	}
	return nil
}

// typeElem is the element type of list type t, or nil when unknown.
func typeElem(t reflect.Type) reflect.Type {
	if isList(t) {
		return deref(t).Elem()
	}
	return nil
}

// pathSeg is one resolved segment of a field path.
type pathSeg struct {
	name string
	// key marks a map key, compared exactly; field names compare
	// case-insensitively, as encoding/json matches them.
	key bool
}

// fieldPath is a compiled MaskRule field.
type fieldPath struct {
	text string
	segs []pathSeg
	// leaf is the Go type of the values at the path, nil when unknown; it
	// tells base64 fields from strings.
	leaf reflect.Type
}

var objectMetaType = reflect.TypeFor[metav1.ObjectMeta]()

// resolvePath resolves raw against root, the Go type of the rule's kind,
// or against no type (nil) for kinds the scheme does not know, in which case
// only metadata.* is checked.
func resolvePath(root reflect.Type, raw []rawSeg) (fieldPath, error) {
	var fp fieldPath
	t := root
	known := root != nil
	if !known && len(raw) > 0 && !raw[0].quoted && raw[0].name == "metadata" {
		fp.segs = append(fp.segs, pathSeg{name: "metadata"})
		if raw[0].array {
			return fp, errors.New("metadata is not a list")
		}
		t, known, raw = objectMetaType, true, raw[1:]
	}
	for i, rs := range raw {
		t = deref(t)
		if !known {
			fp.segs = append(fp.segs, pathSeg{name: rs.name, key: rs.quoted})
			continue
		}
		switch t.Kind() {
		case reflect.Map:
			name := rs.name
			if !rs.quoted {
				// The rest of the path is the key: annotation and label
				// keys hold dots.
				name = rs.rest
			}
			fp.segs = append(fp.segs, pathSeg{name: name, key: true})
			t = t.Elem()
			if !rs.quoted {
				fp.leaf = t
				return fp, nil
			}
		case reflect.Struct:
			f, ok := fieldByJSONName(t, rs.name)
			if !ok {
				return fp, fmt.Errorf("%s has no field %q", t, rs.name)
			}
			fp.segs = append(fp.segs, pathSeg{name: f.name})
			t = f.typ
			if isList(t) && !rs.array && i < len(raw)-1 {
				return fp, fmt.Errorf("%s is a list: write %s[]", f.name, f.name)
			}
		default:
			return fp, fmt.Errorf("%s is a %s: it has no field %q", fp.segs[len(fp.segs)-1].name, t, rs.name)
		}
		if rs.array {
			if !isList(t) {
				return fp, fmt.Errorf("%s is not a list", rs.name)
			}
			t = typeElem(t)
		}
	}
	if known {
		fp.leaf = t
	}
	return fp, nil
}

// groupOf is the API group of an apiVersion ("v1" -> "", "apps/v1" ->
// "apps").
func groupOf(apiVersion string) string {
	g, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return g
}
