package k8swire

import (
	"reflect"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// wireRules are the rules' paths below one message, by field number: the
// typed path's pathTyped, compiled for the wire walk.
type wireRules struct {
	fields map[protowire.Number]*wireRuleEdge
	// nameRE: a leaf rule of this message has a namePattern, so the walk
	// reads the message's "name" first.
	nameRE bool
	// needs are the fields with rules that the typed path would fill in
	// when absent (non-omitempty strings and structs): their absence
	// sends the body to the typed path.
	needs []protowire.Number
}

// wireRuleEdge is what the rules do at one field (or one map key).
type wireRuleEdge struct {
	// leaf rules end here: the value is masked whole (keyRE limiting the
	// keys of a map, nameRE the messages whose name matches).
	leaf []*maskRule
	// next applies to each message value of the field.
	next *wireRules
	// keys apply to the entries of a map field, by key.
	keys map[string]*wireRuleEdge
	// lastApplied marks the last-applied annotation of an object that
	// rules apply to: it is masked as the JSON it holds.
	lastApplied bool
}

// wirePlan is how the wire masker handles one top-level type for one set
// of request rules.
type wirePlan struct {
	schema *wireSchema
	rules  *wireRules
	// typed: the rules reach where the wire walk cannot follow; every body
	// of this type goes to the typed path.
	typed bool
}

type wirePlanKey struct {
	t     reflect.Type
	rules *maskRule // the request rules' first element: the slice is the Masker's
	n     int
}

var statusType = reflect.TypeFor[metav1.Status]()

// wirePlanFor is the plan for objects of struct type t under reqRules,
// cached on the Masker.
func (m *Masker) wirePlanFor(t reflect.Type, reqRules []*maskRule) *wirePlan {
	key := wirePlanKey{t: t, n: len(reqRules)}
	if len(reqRules) > 0 {
		key.rules = reqRules[0]
	}
	if p, ok := m.wirePlans.Load(key); ok {
		return p.(*wirePlan)
	}
	p := m.buildWirePlan(t, reqRules)
	m.wirePlans.Store(key, p)
	return p
}

func (m *Masker) buildWirePlan(t reflect.Type, reqRules []*maskRule) *wirePlan {
	p := &wirePlan{schema: wireSchemaOf(t)}
	obj, ok := reflect.New(t).Interface().(runtime.Object)
	switch {
	case !ok:
		p.typed = true
	case t == statusType:
		// Patterns only, as maskObject.
	case meta.IsListType(obj):
		items, ok := t.FieldByName("Items")
		if !ok || items.Type.Kind() != reflect.Slice {
			p.typed = true
			break
		}
		var f *wireField
		for _, sf := range p.schema.fields {
			if sf != nil && sf.visible && sf.name == "items" {
				f = sf
			}
		}
		et := items.Type.Elem()
		if f == nil || deref(et) != f.typ {
			p.typed = true
			break
		}
		var item *wireRules
		if deref(et).Kind() == reflect.Struct {
			item, p.typed = m.objectWireRules(deref(et), objectRules(reqRules, m.byType[deref(et)]))
		}
		if item != nil {
			p.rules = &wireRules{fields: map[protowire.Number]*wireRuleEdge{f.num: {next: item}}}
		}
	default:
		p.rules, p.typed = m.objectWireRules(t, objectRules(reqRules, m.byType[t]))
	}
	return p
}

// objectWireRules compiles rules for one object of type t, with its
// last-applied annotation; typed reports a path the wire walk cannot take.
func (m *Masker) objectWireRules(t reflect.Type, rules []*maskRule) (*wireRules, bool) {
	if len(rules) == 0 {
		return nil, false
	}
	root := &wireRuleEdge{}
	for _, r := range rules {
		for _, fp := range r.fields {
			if !addWirePath(root, t, fp.segs, r) {
				return nil, true
			}
		}
	}
	if _, err := meta.Accessor(reflect.New(t).Interface()); err == nil {
		// maskTyped masks the JSON in the last-applied annotation of every
		// object it applies rules to.
		s := wireSchemaOf(t)
		var md *wireField
		for _, f := range s.fields {
			if f != nil && f.visible && f.name == "metadata" {
				md = f
			}
		}
		if md == nil || md.typ != objectMetaType || md.kind != wkMessage {
			return nil, true
		}
		ann := md.msg.field(12)
		if ann == nil || ann.name != "annotations" || !ann.isMap || ann.kind != wkString {
			return nil, true
		}
		if root.next == nil {
			root.next = &wireRules{fields: map[protowire.Number]*wireRuleEdge{}}
		}
		mdEdge := root.next.edge(md.num)
		if mdEdge.next == nil {
			mdEdge.next = &wireRules{fields: map[protowire.Number]*wireRuleEdge{}}
		}
		annEdge := mdEdge.next.edge(ann.num)
		annEdge.key(LastAppliedAnnotation).lastApplied = true
	}
	return root.next, false
}

func (r *wireRules) edge(n protowire.Number) *wireRuleEdge {
	e := r.fields[n]
	if e == nil {
		e = &wireRuleEdge{}
		r.fields[n] = e
	}
	return e
}

func (e *wireRuleEdge) key(k string) *wireRuleEdge {
	if e.keys == nil {
		e.keys = map[string]*wireRuleEdge{}
	}
	ke := e.keys[k]
	if ke == nil {
		ke = &wireRuleEdge{}
		e.keys[k] = ke
	}
	return ke
}

// addWirePath adds the rest of a path, segs, that applies to the values
// of Go type t at edge e, as pathTyped walks it. It reports false where
// the wire walk cannot follow.
func addWirePath(e *wireRuleEdge, t reflect.Type, segs []pathSeg, r *maskRule) bool {
	if len(segs) == 0 {
		if !slices.Contains(e.leaf, r) {
			e.leaf = append(e.leaf, r)
		}
		return true
	}
	t = deref(t)
	if t.Kind() == reflect.Slice && !isBytes(t) {
		t = deref(t.Elem()) // pathTyped walks lists element by element
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			return false
		}
	}
	seg := segs[0]
	switch t.Kind() {
	case reflect.Struct:
		switch t {
		case timeType, microTimeType, fieldsV1Type, rawExtensionType:
			_, ok := fieldByJSONName(t, seg.name)
			return !ok // no JSON fields: the path ends in nothing
		}
		jf, ok := fieldByJSONName(t, seg.name)
		if !ok {
			return true // no such field: pathTyped does nothing
		}
		s := wireSchemaOf(t)
		if len(jf.index) != 1 || s.inlineProto {
			return false
		}
		var f *wireField
		for _, sf := range s.fields {
			if sf != nil && sf.visible && sf.name == jf.name {
				f = sf
			}
		}
		if f == nil || f.kind == wkUnsupported || f.kind == wkQuantity {
			return false
		}
		if len(segs) == 1 && r.nameRE != nil && s.nameNum == 0 {
			if _, ok := fieldByJSONName(t, "name"); ok {
				return false // a "name" the wire walk cannot read
			}
		}
		if e.next == nil {
			e.next = &wireRules{fields: map[protowire.Number]*wireRuleEdge{}}
		}
		if len(segs) == 1 && r.nameRE != nil {
			e.next.nameRE = true
		}
		if len(segs) == 1 && r.keyRE != nil && f.isMap && f.kind == wkMessage {
			return false
		}
		if _, ok := e.next.fields[f.num]; !ok && !f.repeated && !f.isMap && !f.ptr && !f.omitEmpty && (f.kind == wkString || f.kind == wkMessage) {
			e.next.needs = append(e.next.needs, f.num)
		}
		return addWirePath(e.next.edge(f.num), jf.typ, segs[1:], r)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return true
		}
		ke := e.key(seg.name)
		if len(segs) == 1 && r.keyRE != nil && deref(t.Elem()).Kind() == reflect.Struct {
			return false
		}
		return addWirePath(ke, t.Elem(), segs[1:], r)
	}
	return true
}
