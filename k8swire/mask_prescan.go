package k8swire

import (
	"reflect"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

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
	e, ok := parseEnvelope(body)
	if !ok {
		return false
	}
	if !m.plainType(e.gvk) {
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
