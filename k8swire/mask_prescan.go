package k8swire

import (
	"bytes"
	"reflect"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// protobufMagic starts every Kubernetes protobuf body.
var protobufMagic = []byte("k8s\x00")

// protobufUntouched reports whether masking certainly leaves a protobuf
// body as it is, without decoding it: no rule of the request's resource,
// an envelope that parses to a kind of the scheme, stored uncompressed,
// whose Go type reaches no type with rules of its own and nothing that
// holds a nested object (a RawExtension or an interface), and no literal
// that a pattern's every match holds anywhere in the body. Strings are
// plain bytes in protobuf, so a literal absent from the body is absent
// from every string in it. False means "decode and see".
//
// This is the common case of a GET of anything but a Secret: a pod GET
// went from a full decode and walk (about a fifth of kubegate's CPU under
// load) to one scan of the body.
func (m *Masker) protobufUntouched(reqRules []*maskRule, body []byte) bool {
	if len(reqRules) > 0 {
		return false
	}
	gvk, ok := protobufEnvelope(body)
	if !ok {
		return false
	}
	if !m.plainType(gvk) {
		return false
	}
	return m.patterns == nil || !m.patterns.mayMatchAny(body)
}

// mayMatchAny reports whether b holds, for any pattern, one of the literals
// its every match holds (or the pattern has none).
func (p *patternSet) mayMatchAny(b []byte) bool {
	for i := range p.res {
		if p.mayMatch(i, b) {
			return true
		}
	}
	return false
}

// protobufEnvelope parses a Kubernetes protobuf body's envelope (the magic,
// then a runtime.Unknown) and returns the kind it declares. It fails on
// anything but a well-formed envelope with uncompressed raw bytes.
func protobufEnvelope(body []byte) (schema.GroupVersionKind, bool) {
	var gvk schema.GroupVersionKind
	b, ok := bytes.CutPrefix(body, protobufMagic)
	if !ok {
		return gvk, false
	}
	var apiVersion, kind []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return gvk, false
		}
		b = b[n:]
		if typ != protowire.BytesType {
			return gvk, false
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return gvk, false
		}
		b = b[n:]
		switch num {
		case 1: // typeMeta
			var ok bool
			if apiVersion, kind, ok = typeMeta(v); !ok {
				return gvk, false
			}
		case 2: // raw
		case 3: // contentEncoding
			if len(v) != 0 {
				return gvk, false
			}
		case 4: // contentType
		default:
			return gvk, false
		}
	}
	gv, err := schema.ParseGroupVersion(string(apiVersion))
	if err != nil || len(kind) == 0 {
		return gvk, false
	}
	return gv.WithKind(string(kind)), true
}

// typeMeta parses a runtime.TypeMeta: apiVersion (1) and kind (2).
func typeMeta(b []byte) (apiVersion, kind []byte, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return nil, nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			apiVersion = v
		case 2:
			kind = v
		default:
			return nil, nil, false
		}
	}
	return apiVersion, kind, true
}

// plainType reports whether objects of kind gvk are Go types of the scheme
// that reach no type with rules of its own, no RawExtension and no
// interface: then only the patterns can change them.
func (m *Masker) plainType(gvk schema.GroupVersionKind) bool {
	if v, ok := m.plain.Load(gvk); ok {
		return v.(bool)
	}
	t, ok := maskScheme.AllKnownTypes()[gvk]
	plain := ok && m.reachesNoRules(t, map[reflect.Type]bool{})
	m.plain.Store(gvk, plain)
	return plain
}

// reachesNoRules walks the types a value of t can hold.
func (m *Masker) reachesNoRules(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return true
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return false
	case reflect.Pointer, reflect.Array, reflect.Slice:
		return m.reachesNoRules(t.Elem(), seen)
	case reflect.Map:
		return m.reachesNoRules(t.Key(), seen) && m.reachesNoRules(t.Elem(), seen)
	case reflect.Struct:
		if t == rawExtensionType || len(m.byType[t]) > 0 {
			return false
		}
		for i := range t.NumField() {
			if !m.reachesNoRules(t.Field(i).Type, seen) {
				return false
			}
		}
	}
	return true
}
