package k8swire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var (
	markerBytes      = []byte(MaskMarker)
	rawExtensionType = reflect.TypeFor[runtime.RawExtension]()
	fieldsV1Type     = reflect.TypeFor[metav1.FieldsV1]()
	timeType         = reflect.TypeFor[metav1.Time]()
	microTimeType    = reflect.TypeFor[metav1.MicroTime]()
)

// maskProtobufBody masks a Kubernetes protobuf body: not at all when
// nothing can apply (protobufUntouched), at the wire level where it can
// (maskProtobufWire), else by decoding it (maskProtobufTyped).
func (m *Masker) maskProtobufBody(req *Request, reqRules []*maskRule, body []byte) ([]byte, bool, error) {
	if m.protobufUntouched(reqRules, body) {
		return body, false, nil
	}
	out, changed, err := m.maskProtobufWire(req, reqRules, body)
	if errors.Is(err, errWireFallback) {
		return m.maskProtobufTyped(req, reqRules, body)
	}
	return out, changed, err
}

// maskProtobufTyped decodes a Kubernetes protobuf body with the scheme,
// masks the object and, if that changed it, encodes it again with the same
// serializer. Fields the scheme's Go types lack are dropped when it does.
// It is the reference the wire masker is tested against.
func (m *Masker) maskProtobufTyped(req *Request, reqRules []*maskRule, body []byte) ([]byte, bool, error) {
	obj, _, err := maskProtobuf.Decode(body, nil, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%w: decoding protobuf: %w", ErrUnmaskable, err)
	}
	if !m.maskObject(req, reqRules, obj) {
		return body, false, nil
	}
	var out bytes.Buffer
	out.Grow(len(body))
	if err := maskProtobuf.Encode(obj, &out); err != nil {
		return nil, false, fmt.Errorf("%w: encoding protobuf: %w", ErrUnmaskable, err)
	}
	return out.Bytes(), true, nil
}

// maskObject masks a decoded object (a list's items one by one) and
// reports whether it changed.
func (m *Masker) maskObject(req *Request, reqRules []*maskRule, obj runtime.Object) bool {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	changed := false
	switch {
	case reflect.TypeOf(obj) == reflect.TypeFor[*metav1.Status]():
		// Patterns only.
	case meta.IsListType(obj):
		if items := v.Elem().FieldByName("Items"); items.IsValid() && items.Kind() == reflect.Slice {
			for i := range items.Len() {
				item := items.Index(i)
				if item.Kind() != reflect.Pointer {
					item = item.Addr()
				}
				changed = m.maskTyped(reqRules, item) || changed
			}
		}
	default:
		changed = m.maskTyped(reqRules, v)
	}
	if m.patterns != nil || len(m.byKind) > 0 {
		changed = m.deepTyped(req, v) || changed
	}
	return changed
}

// maskTyped applies the rules for one object, a pointer to its struct.
func (m *Masker) maskTyped(reqRules []*maskRule, pv reflect.Value) bool {
	if pv.IsNil() {
		return false
	}
	rules := objectRules(reqRules, m.byType[pv.Type().Elem()])
	if len(rules) == 0 {
		return false
	}
	changed := false
	for _, r := range rules {
		for f := range r.fields {
			changed = pathTyped(pv.Elem(), r.fields[f].segs, r) || changed
		}
	}
	if acc, err := meta.Accessor(pv.Interface()); err == nil {
		ann := acc.GetAnnotations()
		if la, ok := ann[LastAppliedAnnotation]; ok && la != MaskMarker {
			out, ch, err := m.maskJSON(nil, reqRules, []byte(la), false)
			switch {
			case err != nil:
				ann[LastAppliedAnnotation], changed = MaskMarker, true
			case ch:
				ann[LastAppliedAnnotation], changed = string(out), true
			}
		}
	}
	return changed
}

// pathTyped applies the rest of a field path to v; lists are walked
// element by element, as in JSON.
func pathTyped(v reflect.Value, segs []pathSeg, r *maskRule) bool {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	seg := segs[0]
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		if isBytes(v.Type()) {
			return false
		}
		changed := false
		for i := range v.Len() {
			changed = pathTyped(v.Index(i), segs, r) || changed
		}
		return changed
	case reflect.Struct:
		f, ok := fieldByJSONName(v.Type(), seg.name)
		if !ok {
			return false
		}
		fv, err := v.FieldByIndexErr(f.index)
		if err != nil {
			return false
		}
		if len(segs) > 1 {
			return pathTyped(fv, segs[1:], r)
		}
		if r.nameRE != nil && !nameMatchesTyped(v, r.nameRE) || f.omitEmpty && fv.IsZero() {
			return false // absent from JSON, so not masked there either
		}
		return maskTypedValue(fv, r.keyRE)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return false
		}
		key := reflect.ValueOf(seg.name).Convert(v.Type().Key())
		mv := v.MapIndex(key)
		if !mv.IsValid() {
			return false
		}
		cp := reflect.New(mv.Type()).Elem()
		cp.Set(mv)
		var changed bool
		if len(segs) > 1 {
			changed = pathTyped(cp, segs[1:], r)
		} else {
			changed = maskTypedValue(cp, r.keyRE)
		}
		if changed {
			v.SetMapIndex(key, cp)
		}
		return changed
	}
	return false
}

// nameMatchesTyped reports whether struct v has a string "name" that re
// matches.
func nameMatchesTyped(v reflect.Value, re *regexp.Regexp) bool {
	f, ok := fieldByJSONName(v.Type(), "name")
	if !ok {
		return false
	}
	fv, err := v.FieldByIndexErr(f.index)
	return err == nil && fv.Kind() == reflect.String && re.MatchString(fv.String())
}

// maskTypedValue masks v, which must be settable: a string or []byte, or
// every string or []byte within it. keyRE, if set, limits the keys of a
// map.
func maskTypedValue(v reflect.Value, keyRE *regexp.Regexp) bool {
	switch v.Kind() {
	case reflect.String:
		if v.String() == MaskMarker || v.String() == MaskMarkerBase64 || !v.CanSet() {
			return false
		}
		v.SetString(MaskMarker)
		return true
	case reflect.Pointer:
		return !v.IsNil() && maskTypedValue(v.Elem(), keyRE)
	case reflect.Interface:
		if v.IsNil() || !v.CanSet() {
			return false
		}
		cp := reflect.New(v.Elem().Type()).Elem()
		cp.Set(v.Elem())
		if !maskTypedValue(cp, nil) {
			return false
		}
		v.Set(cp)
		return true
	case reflect.Slice, reflect.Array:
		if isBytes(v.Type()) {
			if bytes.Equal(v.Bytes(), markerBytes) || !v.CanSet() {
				return false
			}
			v.SetBytes(markerBytes)
			return true
		}
		changed := false
		for i := range v.Len() {
			changed = maskTypedValue(v.Index(i), nil) || changed
		}
		return changed
	case reflect.Map:
		changed := false
		for it := v.MapRange(); it.Next(); {
			k := it.Key()
			if keyRE != nil && (k.Kind() != reflect.String || !keyRE.MatchString(k.String())) {
				continue
			}
			cp := reflect.New(it.Value().Type()).Elem()
			cp.Set(it.Value())
			if maskTypedValue(cp, nil) {
				v.SetMapIndex(k, cp)
				changed = true
			}
		}
		return changed
	case reflect.Struct:
		changed := false
		for _, f := range jsonFields(v.Type()) {
			fv, err := v.FieldByIndexErr(f.index)
			if err != nil || f.omitEmpty && fv.IsZero() {
				continue
			}
			changed = maskTypedValue(fv, nil) || changed
		}
		return changed
	}
	return false
}

// deepTyped applies the patterns to every string in v, and masks the JSON
// documents that RawExtensions carry (the items of a List) as MaskBody
// would: by the patterns, and by the rules of the kind they declare.
func (m *Masker) deepTyped(req *Request, v reflect.Value) bool {
	p := m.patterns
	switch v.Kind() {
	case reflect.String:
		if p == nil || !v.CanSet() {
			return false
		}
		out, ok := p.replaceString(v.String())
		if ok {
			v.SetString(out)
		}
		return ok
	case reflect.Pointer:
		return !v.IsNil() && m.deepTyped(req, v.Elem())
	case reflect.Interface:
		if v.IsNil() || !v.CanSet() {
			return false
		}
		if e := v.Elem(); e.Kind() == reflect.Pointer {
			return m.deepTyped(req, e)
		}
		cp := reflect.New(v.Elem().Type()).Elem()
		cp.Set(v.Elem())
		if !m.deepTyped(req, cp) {
			return false
		}
		v.Set(cp)
		return true
	case reflect.Slice, reflect.Array:
		if isBytes(v.Type()) {
			return false
		}
		changed := false
		for i := range v.Len() {
			changed = m.deepTyped(req, v.Index(i)) || changed
		}
		return changed
	case reflect.Map:
		changed := false
		for it := v.MapRange(); it.Next(); {
			if val := it.Value(); val.Kind() == reflect.String {
				if p == nil {
					continue
				}
				if out, ok := p.replaceString(val.String()); ok {
					v.SetMapIndex(it.Key(), reflect.ValueOf(out).Convert(val.Type()))
					changed = true
				}
				continue
			}
			cp := reflect.New(it.Value().Type()).Elem()
			cp.Set(it.Value())
			if m.deepTyped(req, cp) {
				v.SetMapIndex(it.Key(), cp)
				changed = true
			}
		}
		return changed
	case reflect.Struct:
		switch v.Type() {
		case timeType, microTimeType, fieldsV1Type:
			return false
		case rawExtensionType:
			return m.rawExtension(req, v)
		}
		changed := false
		for _, i := range stringFields(v.Type()) {
			changed = m.deepTyped(req, v.Field(i)) || changed
		}
		return changed
	}
	return false
}

// stringFieldsCache maps a struct type to its stringFields.
var stringFieldsCache sync.Map

// stringFields lists the exported fields of struct type t that can hold a
// string somewhere below them, the only ones the patterns pass visits.
func stringFields(t reflect.Type) []int {
	if fs, ok := stringFieldsCache.Load(t); ok {
		return fs.([]int)
	}
	var fs []int
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && mayHoldString(f.Type, map[reflect.Type]bool{}) {
			fs = append(fs, i)
		}
	}
	stringFieldsCache.Store(t, fs)
	return fs
}

// mayHoldString reports whether a value of type t can hold a string that
// deepTyped would look at. seen breaks cycles (a type on the way is taken
// to hold one).
func mayHoldString(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return true
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.String, reflect.Interface:
		return true
	case reflect.Pointer, reflect.Array:
		return mayHoldString(t.Elem(), seen)
	case reflect.Slice:
		return !isBytes(t) && mayHoldString(t.Elem(), seen)
	case reflect.Map:
		return mayHoldString(t.Elem(), seen)
	case reflect.Struct:
		switch t {
		case timeType, microTimeType, fieldsV1Type:
			return false
		case rawExtensionType:
			return true
		}
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && mayHoldString(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// rawExtension masks the JSON a RawExtension holds and its decoded Object.
// Raw bytes that are not JSON are left alone.
func (m *Masker) rawExtension(req *Request, v reflect.Value) bool {
	changed := false
	if obj := v.FieldByName("Object"); !obj.IsNil() {
		changed = m.deepTyped(req, obj)
	}
	raw := v.FieldByName("Raw")
	b := raw.Bytes()
	if i := skipSpace(b, 0); i < len(b) && (b[i] == '{' || b[i] == '[') {
		if out, ch, err := m.maskJSON(req, nil, b, false); err == nil && ch {
			raw.SetBytes(out)
			changed = true
		}
	}
	return changed
}

// replaceString is replace for a string, without copying when nothing
// matches.
func (p *patternSet) replaceString(s string) (string, bool) {
	hit := false
	for i, re := range p.res {
		if p.mayMatchString(i, s) && re.MatchString(s) {
			hit = true
			break
		}
	}
	if !hit {
		return s, false
	}
	out, ok := p.replace([]byte(s))
	return string(out), ok
}
