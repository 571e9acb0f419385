package k8swire

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The wire masker's view of the Kubernetes protobuf encoding, derived once
// per Go type by reflection from the gogo struct tags
// (`protobuf:"bytes,N,rep,name=..."`) and the JSON tags the rule paths
// name. Maps are repeated entry messages with the key as field 1 and the
// value as field 2, as the generated code writes them.

// wireKind is what the wire masker does with a field's values.
type wireKind uint8

const (
	wkScalar      wireKind = iota // numbers and booleans: never changed
	wkString                      // a string: rules and patterns
	wkBytes                       // []byte: rules only (base64 in JSON)
	wkMessage                     // a struct with its own schema
	wkOpaque                      // Time, MicroTime, FieldsV1: never changed
	wkQuantity                    // resource.Quantity: opaque, but a rule may not reach into it
	wkRawExt                      // runtime.RawExtension: JSON inside is masked like MaskBody's
	wkUnsupported                 // anything else: the typed path must do it
)

var quantityType = reflect.TypeFor[resource.Quantity]()

// wireField is one protobuf field of a message.
type wireField struct {
	num      protowire.Number
	kind     wireKind
	repeated bool // a slice: each occurrence is one element
	isMap    bool // a map: each occurrence is an entry, kind is the value's
	ptr      bool // a pointer: present means non-zero
	inline   bool // an embedded struct whose fields JSON shows in its parent's
	// visible fields are those jsonFields lists (the only ones a rule or
	// a whole-object mask can name); omitEmpty and name are from it.
	visible   bool
	omitEmpty bool
	name      string
	// holdsString: the patterns pass must look inside.
	holdsString bool
	typ         reflect.Type // the value's Go type (a slice's element, a map's value), pointers stripped
	// scalarType is the wire type of a wkScalar field's values.
	scalarType protowire.Type
	msg        *wireSchema // kind wkMessage: the value's schema
}

// wireSchema is the protobuf layout of one Go struct type.
type wireSchema struct {
	t      reflect.Type
	fields []*wireField // by field number; nil where there is none
	// required are the fields a whole-object mask would set even when
	// absent from the wire (non-omitempty strings and structs): their
	// absence sends the body to the typed path.
	required []protowire.Number
	// inlineProto: a field jsonFields reaches through an embedded struct
	// is on the wire; the whole-object mask cannot map it.
	inlineProto bool
	// nameNum is the field number of the string field "name", 0 if none.
	nameNum protowire.Number
}

func (s *wireSchema) field(n protowire.Number) *wireField {
	if n <= 0 || int(n) >= len(s.fields) {
		return nil
	}
	return s.fields[n]
}

var (
	wireSchemaMu    sync.Mutex
	wireSchemaCache sync.Map // reflect.Type -> *wireSchema
)

// wireSchemaOf is the schema of struct type t.
func wireSchemaOf(t reflect.Type) *wireSchema {
	if s, ok := wireSchemaCache.Load(t); ok {
		return s.(*wireSchema)
	}
	wireSchemaMu.Lock()
	defer wireSchemaMu.Unlock()
	building := map[reflect.Type]*wireSchema{}
	s := buildWireSchema(t, building)
	for bt, bs := range building {
		wireSchemaCache.LoadOrStore(bt, bs)
	}
	return s
}

func buildWireSchema(t reflect.Type, building map[reflect.Type]*wireSchema) *wireSchema {
	if s, ok := wireSchemaCache.Load(t); ok {
		return s.(*wireSchema)
	}
	if s, ok := building[t]; ok {
		return s
	}
	s := &wireSchema{t: t}
	building[t] = s
	byIndex := map[int]*wireField{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("protobuf")
		if tag == "" {
			continue // not on the wire (TypeMeta, unexported state)
		}
		parts := strings.Split(tag, ",")
		if len(parts) < 3 {
			continue
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil || n <= 0 || n > 1<<16 {
			continue
		}
		f := &wireField{num: protowire.Number(n), scalarType: protowire.BytesType}
		switch parts[0] {
		case "varint", "zigzag32", "zigzag64":
			f.scalarType = protowire.VarintType
		case "fixed32":
			f.scalarType = protowire.Fixed32Type
		case "fixed64":
			f.scalarType = protowire.Fixed64Type
		}
		ft := sf.Type
		switch {
		case ft.Kind() == reflect.Map:
			f.isMap = true
			if ft.Key().Kind() != reflect.String {
				f.kind = wkUnsupported
				break
			}
			f.typ = deref(ft.Elem())
			f.kind = wireKindOf(ft.Elem(), building, f)
		case ft.Kind() == reflect.Slice && !isBytes(ft):
			f.repeated = true
			f.typ = deref(ft.Elem())
			f.kind = wireKindOf(ft.Elem(), building, f)
		default:
			f.ptr = ft.Kind() == reflect.Pointer
			f.typ = deref(ft)
			f.kind = wireKindOf(ft, building, f)
		}
		f.holdsString = mayHoldString(sf.Type, map[reflect.Type]bool{})
		for int(f.num) >= len(s.fields) {
			s.fields = append(s.fields, nil)
		}
		if s.fields[f.num] != nil {
			s.fields[f.num].kind = wkUnsupported // two Go fields, one number
			continue
		}
		s.fields[f.num] = f
		byIndex[i] = f
	}
	fields := jsonFields(t)
	for _, jf := range fields {
		if len(jf.index) != 1 {
			// Through an embedded struct: fine if that struct is not on
			// the wire (TypeMeta), or if it is a message all of whose
			// fields the parent shows under their own names
			// (LocalObjectReference in SecretKeySelector): a whole-object
			// mask then masks it whole too.
			f, ok := byIndex[jf.index[0]]
			if !ok || f.inline {
				continue
			}
			if f.kind != wkMessage || f.repeated || f.isMap || !inlinedWhole(t, jf.index[0], fields) {
				s.inlineProto = true
				continue
			}
			f.inline, f.visible = true, true
			if !f.ptr {
				s.required = append(s.required, f.num)
			}
			continue
		}
		f, ok := byIndex[jf.index[0]]
		if !ok {
			continue
		}
		f.visible, f.omitEmpty, f.name = true, jf.omitEmpty, jf.name
		if !f.repeated && !f.isMap && !f.ptr && !f.omitEmpty && (f.kind == wkString || f.kind == wkMessage) {
			s.required = append(s.required, f.num)
		}
		if jf.name == "name" && f.kind == wkString && !f.repeated && !f.isMap {
			s.nameNum = f.num
		}
	}
	return s
}

// inlinedWhole reports whether every JSON field of t's embedded field i
// is among t's JSON fields (fields), under the same name.
func inlinedWhole(t reflect.Type, i int, fields []jsonField) bool {
	et := deref(t.Field(i).Type)
	for _, ef := range jsonFields(et) {
		want := append([]int{i}, ef.index...)
		if !slices.ContainsFunc(fields, func(f jsonField) bool { return f.name == ef.name && slices.Equal(f.index, want) }) {
			return false
		}
	}
	return true
}

// wireKindOf classifies a value of Go type t (a field, a slice element or
// a map value).
func wireKindOf(t reflect.Type, building map[reflect.Type]*wireSchema, f *wireField) wireKind {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
		if f.repeated || f.isMap {
			return wkUnsupported // pointer elements: nil vs empty is not on the wire
		}
	}
	switch t.Kind() {
	case reflect.String:
		return wkString
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return wkScalar
	case reflect.Slice:
		if isBytes(t) && !f.repeated {
			return wkBytes
		}
	case reflect.Struct:
		switch t {
		case timeType, microTimeType, fieldsV1Type:
			return wkOpaque
		case quantityType:
			return wkQuantity
		case rawExtensionType:
			return wkRawExt
		}
		f.msg = buildWireSchema(t, building)
		return wkMessage
	}
	return wkUnsupported
}

// validOpaque reports whether the typed decoder accepts b as a value of
// f, an opaque kind the walk copies without reading.
func validOpaque(f *wireField, b []byte) bool {
	switch f.typ {
	case timeType:
		var t metav1.Time
		return t.Unmarshal(b) == nil
	case microTimeType:
		var t metav1.MicroTime
		return t.Unmarshal(b) == nil
	case quantityType:
		var q resource.Quantity
		return q.Unmarshal(b) == nil
	case fieldsV1Type:
		// raw (1, bytes); the decoder skips other fields.
		for i := 0; i < len(b); {
			num, typ, n := protowire.ConsumeTag(b[i:])
			if n < 0 || num == 1 && typ != protowire.BytesType || typ == protowire.EndGroupType {
				return false
			}
			i += n
			n = protowire.ConsumeFieldValue(num, typ, b[i:])
			if n < 0 {
				return false
			}
			i += n
		}
		return true
	}
	return false
}
