package k8swire

import (
	"bytes"
	"errors"
	"reflect"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The wire masker: protobuf bodies masked without decoding them into Go
// objects. It walks the `k8s\x00` envelope, the runtime.Unknown in it and
// the object's messages with the schema of its Go type (wireSchemaOf),
// copies every byte it does not change as it is, and rewrites only the
// masked values and the length prefixes of the messages that hold them.
//
// It applies the same rules and patterns as the typed path
// (maskProtobufTyped: decode, maskObject, encode), which stays the
// reference: the differential and fuzz tests check that the two results
// decode to the same object. Wherever the walk cannot be sure it does the
// same (an unknown type or field, a field that occurs twice, a value whose
// absence the typed path would fill in, malformed bytes), it gives up with
// errWireFallback and the typed path masks the body, or fails closed.

// errWireFallback sends a body to the typed path.
var errWireFallback = errors.New("protobuf body left to the typed masker")

var protobufMagic = []byte("k8s\x00")

// wireWalk is the state of one body's walk.
type wireWalk struct {
	m        *Masker
	req      *Request
	reqRules []*maskRule
	pat      *patternSet // nil: no patterns
	// deep: strings and RawExtensions are visited (deepTyped runs).
	deep bool
}

// maskProtobufWire masks a Kubernetes protobuf body at the wire level. It
// returns errWireFallback when the typed path must do it.
func (m *Masker) maskProtobufWire(req *Request, reqRules []*maskRule, body []byte) ([]byte, bool, error) {
	e, ok := parseEnvelope(body)
	if !ok {
		return nil, false, errWireFallback
	}
	env, raw, rawStart, rawEnd := body[len(protobufMagic):], e.raw, e.rawStart, e.rawEnd
	obj, err := maskScheme.New(e.gvk)
	if err != nil {
		return nil, false, errWireFallback
	}
	t := reflect.TypeOf(obj)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, false, errWireFallback
	}
	plan := m.wirePlanFor(t.Elem(), reqRules)
	if plan.typed {
		return nil, false, errWireFallback
	}
	w := &wireWalk{m: m, req: req, reqRules: reqRules, pat: m.patterns, deep: m.patterns != nil || len(m.byKind) > 0}
	out := make([]byte, 0, len(body)+len(body)/8+64)
	out = append(out, body[:len(protobufMagic)+rawStart]...)
	mark := len(out)
	out, changed, err := w.message(out, raw, plan.schema, plan.rules, false)
	if err != nil {
		return nil, false, err
	}
	if !changed {
		return body, false, nil
	}
	out = wrapField(out, mark, 2)
	out = append(out, env[rawEnd:]...)
	return out, true, nil
}

// protoEnvelope is what the envelope of a Kubernetes protobuf body says.
type protoEnvelope struct {
	gvk schema.GroupVersionKind
	// raw is the object's bytes; rawStart and rawEnd bound its whole
	// field (tag and length included) in the body after the magic.
	raw              []byte
	rawStart, rawEnd int
}

// parseEnvelope reads the magic and the runtime.Unknown after it:
// typeMeta (1: apiVersion 1, kind 2), raw 2, contentEncoding 3, contentType
// 4. It fails on anything but a well-formed envelope, each field at most
// once, holding raw bytes that are not encoded (gzip).
func parseEnvelope(body []byte) (protoEnvelope, bool) {
	var e protoEnvelope
	if !bytes.HasPrefix(body, protobufMagic) {
		return e, false
	}
	env := body[len(protobufMagic):]
	var apiVersion, kind string
	e.rawStart = -1
	var seen uint64
	for i := 0; i < len(env); {
		num, typ, n := protowire.ConsumeTag(env[i:])
		if n < 0 || typ != protowire.BytesType || num < 1 || num > 4 || seen&(1<<num) != 0 {
			return e, false
		}
		seen |= 1 << num
		start := i
		i += n
		v, n := protowire.ConsumeBytes(env[i:])
		if n < 0 {
			return e, false
		}
		i += n
		switch num {
		case 1:
			var ok bool
			if apiVersion, kind, ok = wireTypeMeta(v); !ok {
				return e, false
			}
		case 2:
			e.raw, e.rawStart, e.rawEnd = v, start, i
		case 3:
			if len(v) > 0 {
				return e, false
			}
		}
	}
	if e.rawStart < 0 {
		return e, false
	}
	e.gvk = schema.FromAPIVersionAndKind(apiVersion, kind)
	return e, true
}

// wireTypeMeta reads a runtime.TypeMeta message.
func wireTypeMeta(b []byte) (apiVersion, kind string, ok bool) {
	var seen uint64
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 || typ != protowire.BytesType || num < 1 || num > 2 || seen&(1<<num) != 0 {
			return "", "", false
		}
		seen |= 1 << num
		i += n
		v, n := protowire.ConsumeBytes(b[i:])
		if n < 0 {
			return "", "", false
		}
		i += n
		if num == 1 {
			apiVersion = string(v)
		} else {
			kind = string(v)
		}
	}
	return apiVersion, kind, true
}

// wrapField turns dst[mark:], a field's new content, into the whole field:
// its tag and length go in front.
func wrapField(dst []byte, mark int, num protowire.Number) []byte {
	content := len(dst) - mark
	var hdr [16]byte
	h := protowire.AppendTag(hdr[:0], num, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(content))
	dst = append(dst, h...) // grow by len(h)
	copy(dst[mark+len(h):], dst[mark:mark+content])
	copy(dst[mark:], h)
	return dst
}

// appendField appends a length-delimited field.
func appendField(dst []byte, num protowire.Number, v []byte) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, v)
}

// seenSet finds singular fields that occur twice (the decoder would merge
// or overwrite them; the walk does not try).
type seenSet [2]uint64

func (s *seenSet) add(n protowire.Number) bool {
	if n >= 128 {
		return false
	}
	bit := uint64(1) << (n % 64)
	if s[n/64]&bit != 0 {
		return false
	}
	s[n/64] |= bit
	return true
}

func (s *seenSet) has(n protowire.Number) bool {
	return n < 128 && s[n/64]&(uint64(1)<<(n%64)) != 0
}

// message masks src, a message of schema s, with the rules rn below it
// (nil: none) or whole if full. If anything changes it appends the new
// message to dst and reports true; otherwise it returns dst as it was.
func (w *wireWalk) message(dst, src []byte, s *wireSchema, rn *wireRules, full bool) ([]byte, bool, error) {
	if full && s.inlineProto {
		return nil, false, errWireFallback
	}
	start := len(dst)
	last := 0 // src[last:] is not yet copied to dst
	changed := false
	var seen seenSet
	var name []byte
	if rn != nil && rn.nameRE {
		var err error
		if name, err = wireString(src, s.nameNum); err != nil {
			return nil, false, err
		}
	}
	for i := 0; i < len(src); {
		num, typ, n := protowire.ConsumeTag(src[i:])
		if n < 0 {
			return nil, false, errWireFallback
		}
		fstart := i
		i += n
		vn := protowire.ConsumeFieldValue(num, typ, src[i:])
		if vn < 0 {
			return nil, false, errWireFallback
		}
		val := src[i : i+vn]
		i += vn
		fend := i
		f := s.field(num)
		if f == nil || f.kind == wkUnsupported {
			return nil, false, errWireFallback
		}
		if !f.repeated && !f.isMap && !seen.add(num) {
			return nil, false, errWireFallback
		}
		if f.kind == wkScalar {
			if typ != f.scalarType {
				return nil, false, errWireFallback // packed, or not what the decoder takes
			}
			continue
		}
		if typ != protowire.BytesType {
			return nil, false, errWireFallback
		}
		content, _ := protowire.ConsumeBytes(val)
		if !f.isMap && (f.kind == wkOpaque || f.kind == wkQuantity) && !validOpaque(f, content) {
			return nil, false, errWireFallback // the typed path refuses it
		}
		var edge *wireRuleEdge
		if rn != nil {
			edge = rn.fields[num]
		}
		if !full && edge == nil && !(w.deep && f.holdsString) && f.kind != wkMessage && !f.isMap {
			continue
		}
		// whole: a rule (or the whole-object mask) masks this field's
		// value; for maps, leaf rules filter the keys per entry.
		whole := full && f.visible
		if !whole && edge != nil && !f.isMap {
			whole = leafApplies(edge.leaf, name)
		}
		if whole && f.omitEmpty && !f.repeated && !f.ptr && (f.kind == wkString || f.kind == wkBytes || f.kind == wkMessage) {
			zero, sure := wireIsZero(f, content)
			if !sure {
				return nil, false, errWireFallback
			}
			whole = !zero
		}
		var repl []byte // the field's new value, if it changes
		var sub bool    // the new value is in dst[mark:], to be wrapped
		mark := 0
		switch {
		case f.isMap:
			var leaves []*maskRule
			var keys map[string]*wireRuleEdge
			if edge != nil {
				leaves, keys = edge.leaf, edge.keys
			}
			leaves = leavesFor(leaves, name)
			dst = append(dst, src[last:fstart]...)
			last, mark = fstart, len(dst)
			var ch bool
			var err error
			dst, ch, err = w.mapEntry(dst, content, f, full && f.visible, leaves, keys)
			if err != nil {
				return nil, false, err
			}
			if !ch {
				dst = dst[:mark]
				continue
			}
			sub = true
		case f.kind == wkString:
			switch {
			case whole:
				if !bytes.Equal(content, markerBytes) && string(content) != MaskMarkerBase64 {
					repl = markerBytes
				}
			case w.pat != nil:
				if out, ok := w.pat.replace(content); ok {
					repl = out
				}
			}
		case f.kind == wkBytes:
			if whole && !bytes.Equal(content, markerBytes) {
				repl = markerBytes
			}
		case f.kind == wkMessage:
			var next *wireRules
			if edge != nil && !whole {
				next = edge.next
			}
			dst = append(dst, src[last:fstart]...)
			last, mark = fstart, len(dst)
			var ch bool
			var err error
			dst, ch, err = w.message(dst, content, f.msg, next, whole)
			if err != nil {
				return nil, false, err
			}
			if !ch {
				dst = dst[:mark]
				continue
			}
			sub = true
		case f.kind == wkRawExt:
			if w.deep {
				out, ok, err := w.rawExtension(content)
				if err != nil {
					return nil, false, err
				}
				if ok {
					repl = out
				}
			}
		case f.kind == wkQuantity:
			if whole || edge != nil {
				return nil, false, errWireFallback
			}
		}
		switch {
		case sub:
			dst = wrapField(dst, mark, num)
		case repl != nil:
			dst = append(dst, src[last:fstart]...)
			dst = appendField(dst, num, repl)
		default:
			continue
		}
		last = fend
		changed = true
	}
	if rn != nil {
		for _, n := range rn.needs {
			if !seen.has(n) {
				return nil, false, errWireFallback // a rule's path through a value the typed path fills in
			}
		}
	}
	if full {
		for _, n := range s.required {
			if !seen.has(n) {
				return nil, false, errWireFallback // the typed path would fill it in
			}
		}
	}
	if !changed {
		return dst[:start], false, nil
	}
	return append(dst, src[last:]...), true, nil
}

// leafApplies reports whether one of the leaf rules masks a field of the
// message whose name is name.
func leafApplies(leaf []*maskRule, name []byte) bool {
	for _, r := range leaf {
		if r.nameRE == nil || r.nameRE.Match(name) {
			return true
		}
	}
	return false
}

// leavesFor are the leaf rules whose namePattern (if any) matches name.
func leavesFor(leaf []*maskRule, name []byte) []*maskRule {
	for i, r := range leaf {
		if r.nameRE != nil && !r.nameRE.Match(name) {
			out := slices.Clone(leaf[:i])
			for _, r := range leaf[i+1:] {
				if r.nameRE == nil || r.nameRE.Match(name) {
					out = append(out, r)
				}
			}
			return out
		}
	}
	return leaf
}

// mapEntry masks one map entry (key 1, value 2) of map field f. full masks
// every value; leaves mask the values whose keys their keyPattern
// matches; keys are the rules for single keys.
func (w *wireWalk) mapEntry(dst, src []byte, f *wireField, full bool, leaves []*maskRule, keys map[string]*wireRuleEdge) ([]byte, bool, error) {
	var key, value []byte
	valStart, valEnd := -1, -1
	var seen seenSet
	for i := 0; i < len(src); {
		num, typ, n := protowire.ConsumeTag(src[i:])
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) || !seen.add(num) {
			return nil, false, errWireFallback
		}
		s := i
		i += n
		v, n := protowire.ConsumeBytes(src[i:])
		if n < 0 {
			return nil, false, errWireFallback
		}
		i += n
		if num == 1 {
			key = v
		} else {
			value, valStart, valEnd = v, s, i
		}
	}
	if valStart >= 0 && (f.kind == wkOpaque || f.kind == wkQuantity) && !validOpaque(f, value) {
		return nil, false, errWireFallback
	}
	masked := full
	for _, r := range leaves {
		if r.keyRE == nil || r.keyRE.Match(key) {
			masked = true
		}
	}
	var ke *wireRuleEdge
	if keys != nil {
		ke = keys[string(key)]
	}
	if ke != nil && len(ke.leaf) > 0 {
		masked = true
	}
	if valStart < 0 {
		if masked && f.kind != wkScalar || ke != nil && ke.lastApplied {
			return nil, false, errWireFallback // the typed path masks the zero value
		}
		if f.kind == wkMessage && (ke != nil && ke.next != nil) {
			return nil, false, errWireFallback
		}
		return dst, false, nil
	}
	var repl []byte
	start := len(dst)
	switch f.kind {
	case wkString:
		v, ch := value, false
		if masked && !bytes.Equal(v, markerBytes) && string(v) != MaskMarkerBase64 {
			v, ch = markerBytes, true
		}
		if ke != nil && ke.lastApplied && !bytes.Equal(v, markerBytes) {
			// maskTyped: the annotation repeats the object, masked as JSON.
			out, jch, err := w.m.maskJSON(nil, w.reqRules, v, false)
			switch {
			case err != nil:
				v, ch = markerBytes, true
			case jch:
				v, ch = out, true
			}
		}
		if w.pat != nil {
			if out, ok := w.pat.replace(v); ok {
				v, ch = out, true
			}
		}
		if ch {
			repl = v
		}
	case wkBytes:
		if masked && !bytes.Equal(value, markerBytes) {
			repl = markerBytes
		}
	case wkMessage:
		var next *wireRules
		if ke != nil && !masked {
			next = ke.next
		}
		dst = append(dst, src[:valStart]...)
		mark := len(dst)
		var ch bool
		var err error
		dst, ch, err = w.message(dst, value, f.msg, next, masked)
		if err != nil {
			return nil, false, err
		}
		if !ch {
			return dst[:start], false, nil
		}
		dst = wrapField(dst, mark, 2)
		return append(dst, src[valEnd:]...), true, nil
	case wkRawExt:
		if w.deep {
			out, ok, err := w.rawExtension(value)
			if err != nil {
				return nil, false, err
			}
			if ok {
				repl = out
			}
		}
	case wkQuantity:
		if masked || ke != nil {
			return nil, false, errWireFallback
		}
	}
	if repl == nil {
		return dst, false, nil
	}
	dst = append(dst, src[:valStart]...)
	dst = appendField(dst, 2, repl)
	return append(dst, src[valEnd:]...), true, nil
}

// rawExtension masks the JSON document a RawExtension (raw: field 1)
// holds, as the typed path's rawExtension does; other bytes pass.
func (w *wireWalk) rawExtension(src []byte) ([]byte, bool, error) {
	raw, err := wireBytesField(src, 1)
	if err != nil {
		return nil, false, err
	}
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' && raw[i] != '[' {
		return nil, false, nil
	}
	out, ch, err := w.m.maskJSON(w.req, nil, raw, false)
	if err != nil || !ch {
		return nil, false, nil
	}
	return appendField(nil, 1, out), true, nil
}

// wireBytesField reads the only field of a message that may hold just
// field num, length-delimited; absent is empty.
func wireBytesField(src []byte, num protowire.Number) ([]byte, error) {
	var v []byte
	found := false
	for i := 0; i < len(src); {
		n2, typ, n := protowire.ConsumeTag(src[i:])
		if n < 0 || n2 != num || typ != protowire.BytesType || found {
			return nil, errWireFallback
		}
		i += n
		b, n := protowire.ConsumeBytes(src[i:])
		if n < 0 {
			return nil, errWireFallback
		}
		i += n
		v, found = b, true
	}
	return v, nil
}

// wireString reads string field num of a message; absent is empty.
func wireString(src []byte, num protowire.Number) ([]byte, error) {
	var v []byte
	if num == 0 {
		return nil, nil
	}
	for i := 0; i < len(src); {
		n2, typ, n := protowire.ConsumeTag(src[i:])
		if n < 0 {
			return nil, errWireFallback
		}
		i += n
		vn := protowire.ConsumeFieldValue(n2, typ, src[i:])
		if vn < 0 {
			return nil, errWireFallback
		}
		if n2 == num {
			if typ != protowire.BytesType {
				return nil, errWireFallback
			}
			v, _ = protowire.ConsumeBytes(src[i : i+vn])
		}
		i += vn
	}
	return v, nil
}

// wireIsZero reports whether the value of singular field f with wire
// content b decodes to its Go zero value (reflect's IsZero), and whether
// it can tell.
func wireIsZero(f *wireField, b []byte) (zero, sure bool) {
	switch f.kind {
	case wkString:
		return len(b) == 0, true
	case wkBytes:
		return false, true // present: the decoder makes it non-nil
	case wkMessage:
		return messageIsZero(f.msg, b)
	}
	return false, false
}

func messageIsZero(s *wireSchema, b []byte) (zero, sure bool) {
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return false, false
		}
		i += n
		vn := protowire.ConsumeFieldValue(num, typ, b[i:])
		if vn < 0 {
			return false, false
		}
		val := b[i : i+vn]
		i += vn
		f := s.field(num)
		if f == nil || f.repeated || f.isMap || f.ptr {
			return false, f != nil
		}
		switch f.kind {
		case wkScalar:
			if typ != f.scalarType || typ != protowire.VarintType {
				return false, false
			}
			if v, _ := protowire.ConsumeVarint(val); v != 0 {
				return false, true
			}
		case wkString, wkBytes, wkMessage:
			if typ != protowire.BytesType {
				return false, false
			}
			c, _ := protowire.ConsumeBytes(val)
			if z, sure := wireIsZero(f, c); !sure || !z {
				return false, sure
			}
		default:
			return false, false
		}
	}
	return true, true
}
