package k8swire

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

var (
	markerJSON       = []byte(`"` + MaskMarker + `"`)
	markerBase64JSON = []byte(`"` + MaskMarkerBase64 + `"`)
)

// jsonMasker masks one JSON document by collecting edits, each of which
// replaces one whole string token; everything else is copied as is.
type jsonMasker struct {
	m        *Masker
	req      *Request
	reqRules []*maskRule
	data     []byte
	// kids is a stack of the members and elements of the objects and
	// arrays being walked; each walk truncates it back when done.
	kids  []child
	edits []edit
	// done are the offsets of the objects the rules were applied to, in
	// order.
	done []int
}

// edit replaces data[start:end], one string token, with repl.
type edit struct {
	start, end int
	repl       []byte
}

// maskJSON masks the JSON document data: an API object, list, Table or
// Status, or, if watchEvent, a watch event wrapping one.
func (m *Masker) maskJSON(req *Request, reqRules []*maskRule, data []byte, watchEvent bool) ([]byte, bool, error) {
	w := &jsonMasker{m: m, req: req, reqRules: reqRules, data: data}
	start := skipSpace(data, 0)
	var end int
	var err error
	if watchEvent {
		end, err = w.watchEvent(start)
	} else {
		end, err = w.document(start)
	}
	if err == nil && skipSpace(data, end) != len(data) {
		err = syntaxErr(end, "data after the document")
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: decoding JSON: %w", ErrUnmaskable, err)
	}
	w.embedded(start, end)
	w.sortEdits()
	patternEdits := w.patternPass(start, end)
	if len(w.edits) == 0 && len(patternEdits) == 0 {
		return data, false, nil
	}
	return w.apply(patternEdits), true, nil
}

// index validates the object or array at i and pushes its children.
func (w *jsonMasker) index(i int) (end, lo, hi int, err error) {
	lo = len(w.kids)
	end, err = scanValue(w.data, i, 0, &w.kids)
	return end, lo, len(w.kids), err
}

// member finds the child of [lo, hi) with the exact key name, or -1.
func (w *jsonMasker) member(lo, hi int, name string) int {
	for k := lo; k < hi; k++ {
		c := w.kids[k]
		if c.keyStart >= 0 && keyIs(w.data[c.keyStart:c.keyEnd], []byte(name), false) {
			return k
		}
	}
	return -1
}

// memberString is the value of the string member name, or "".
func (w *jsonMasker) memberString(lo, hi int, name string) string {
	k := w.member(lo, hi, name)
	if k < 0 || w.data[w.kids[k].start] != '"' {
		return ""
	}
	c := w.kids[k]
	return string(decodeString(w.data[c.start:c.end]))
}

// document walks the top-level value at i, dispatching on its kind.
func (w *jsonMasker) document(i int) (int, error) {
	if i >= len(w.data) || w.data[i] != '{' {
		return scanValue(w.data, i, 0, nil)
	}
	end, lo, hi, err := w.index(i)
	if err != nil {
		return end, err
	}
	defer w.truncate(lo)
	kind, apiVersion := w.memberString(lo, hi, "kind"), w.memberString(lo, hi, "apiVersion")
	items := w.member(lo, hi, "items")
	switch {
	case kind == "Status":
		// Patterns only.
	case kind == "Table" && groupOf(apiVersion) == "meta.k8s.io":
		w.table(lo, hi)
	case items >= 0 && w.data[w.kids[items].start] == '[' && (kind == "" || strings.HasSuffix(kind, "List")):
		w.list(items)
	default:
		w.resource(i, lo, hi, kind, apiVersion, w.reqRules)
	}
	return end, nil
}

// watchEvent walks a watch event {"type": ..., "object": {...}}.
func (w *jsonMasker) watchEvent(i int) (int, error) {
	if i >= len(w.data) || w.data[i] != '{' {
		return i, syntaxErr(i, "a watch event is an object")
	}
	end, lo, hi, err := w.index(i)
	if err != nil {
		return end, err
	}
	defer w.truncate(lo)
	t, o := w.member(lo, hi, "type"), w.member(lo, hi, "object")
	if t < 0 || w.data[w.kids[t].start] != '"' || o < 0 || w.data[w.kids[o].start] != '{' {
		return i, syntaxErr(i, `a watch event needs a string "type" and an object "object"`)
	}
	_, err = w.document(w.kids[o].start)
	return end, err
}

func (w *jsonMasker) truncate(lo int) { w.kids = w.kids[:lo] }

// children pushes the children of the validated object or array at i.
func (w *jsonMasker) children(i int) (lo, hi int) {
	lo = len(w.kids)
	skipChildren(w.data, i, &w.kids)
	return lo, len(w.kids)
}

// table walks a meta.k8s.io Table: the object of each row is a document
// of its own (the full object, or PartialObjectMetadata). Cells get the
// patterns, like every string.
func (w *jsonMasker) table(lo, hi int) {
	rows := w.member(lo, hi, "rows")
	if rows < 0 || w.data[w.kids[rows].start] != '[' {
		return
	}
	rlo, rhi := w.children(w.kids[rows].start)
	defer w.truncate(rlo)
	for r := rlo; r < rhi; r++ {
		if w.data[w.kids[r].start] != '{' {
			continue
		}
		olo, ohi := w.children(w.kids[r].start)
		if o := w.member(olo, ohi, "object"); o >= 0 && w.data[w.kids[o].start] == '{' {
			_, _ = w.document(w.kids[o].start)
		}
		w.truncate(olo)
	}
}

// list walks the items of a list: each is an object of the request's
// resource, or of the kind it declares.
func (w *jsonMasker) list(items int) {
	ilo, ihi := w.children(w.kids[items].start)
	defer w.truncate(ilo)
	for k := ilo; k < ihi; k++ {
		if w.data[w.kids[k].start] != '{' {
			continue
		}
		lo, hi := w.children(w.kids[k].start)
		w.resource(w.kids[k].start, lo, hi, w.memberString(lo, hi, "kind"), w.memberString(lo, hi, "apiVersion"), w.reqRules)
		w.truncate(lo)
	}
}

// resource applies the rules for one object at offset at, whose members
// are [lo, hi): reqRules, and the rules of the kind it declares.
func (w *jsonMasker) resource(at, lo, hi int, kind, apiVersion string, reqRules []*maskRule) {
	var kindRules []*maskRule
	if kind != "" {
		kindRules = w.m.byKind[groupResource{groupOf(apiVersion), kind}]
	}
	rules := objectRules(reqRules, kindRules)
	if len(rules) == 0 {
		return
	}
	if i, found := slices.BinarySearch(w.done, at); !found {
		w.done = slices.Insert(w.done, i, at)
	}
	first := len(w.edits)
	for _, r := range rules {
		for f := range r.fields {
			w.path(lo, hi, r.fields[f].segs, &r.fields[f], r)
		}
	}
	w.lastApplied(lo, hi, first, reqRules)
}

var kindKey = []byte(`"kind"`)

// embedded applies the rules of their kind to the objects nested anywhere
// in data[v:end] that declare a kind and apiVersion (the items of a List,
// an object a custom resource embeds), but were not walked as API objects.
func (w *jsonMasker) embedded(v, end int) {
	if len(w.m.byKind) == 0 || !bytes.Contains(w.data[v:end], kindKey) {
		return
	}
	switch w.data[v] {
	case '{':
		lo, hi := w.children(v)
		if _, found := slices.BinarySearch(w.done, v); !found {
			if kind := w.memberString(lo, hi, "kind"); kind != "" {
				w.resource(v, lo, hi, kind, w.memberString(lo, hi, "apiVersion"), nil)
			}
		}
		for k := lo; k < hi; k++ {
			w.embedded(w.kids[k].start, w.kids[k].end)
		}
		w.truncate(lo)
	case '[':
		lo, hi := w.children(v)
		for k := lo; k < hi; k++ {
			w.embedded(w.kids[k].start, w.kids[k].end)
		}
		w.truncate(lo)
	}
}

// path applies one field path to the object whose members are [lo, hi).
func (w *jsonMasker) path(lo, hi int, segs []pathSeg, fp *fieldPath, r *maskRule) {
	seg := segs[0]
	name := []byte(seg.name)
	for k := lo; k < hi; k++ {
		c := w.kids[k]
		if c.keyStart < 0 || !keyIs(w.data[c.keyStart:c.keyEnd], name, !seg.key) {
			continue
		}
		if len(segs) > 1 {
			w.descend(c.start, segs[1:], fp, r)
			continue
		}
		if r.nameRE != nil && !w.nameMatches(lo, hi, r.nameRE) {
			continue
		}
		w.maskValue(c.start, fp.leaf, r.keyRE)
	}
}

// descend follows the rest of a path into the value at v; lists are
// walked element by element whether or not the path says [].
func (w *jsonMasker) descend(v int, segs []pathSeg, fp *fieldPath, r *maskRule) {
	switch w.data[v] {
	case '{':
		lo, hi := w.children(v)
		w.path(lo, hi, segs, fp, r)
		w.truncate(lo)
	case '[':
		lo, hi := w.children(v)
		for k := lo; k < hi; k++ {
			w.descend(w.kids[k].start, segs, fp, r)
		}
		w.truncate(lo)
	}
}

// nameMatches reports whether the object [lo, hi) has a string "name"
// that re matches.
func (w *jsonMasker) nameMatches(lo, hi int, re *regexp.Regexp) bool {
	k := w.member(lo, hi, "name")
	if k < 0 || w.data[w.kids[k].start] != '"' {
		return false
	}
	c := w.kids[k]
	return re.Match(decodeString(w.data[c.start:c.end]))
}

// maskValue masks the value at v, of Go type t (nil if unknown): a string,
// or every string in an object (whose keys keyRE, if set, must match) or
// array.
func (w *jsonMasker) maskValue(v int, t reflect.Type, keyRE *regexp.Regexp) {
	switch w.data[v] {
	case '"':
		w.maskString(v, t)
	case '{', '[':
		lo, hi := w.children(v)
		for k := lo; k < hi; k++ {
			c := w.kids[k]
			if c.keyStart < 0 {
				w.maskValue(c.start, typeElem(t), nil)
				continue
			}
			key := decodeString(w.data[c.keyStart:c.keyEnd])
			if keyRE != nil && !keyRE.Match(key) {
				continue
			}
			var ct reflect.Type
			if dt := deref(t); dt != nil && dt.Kind() == reflect.Map {
				ct = dt.Elem()
			} else if dt != nil {
				ct = typeChild(dt, string(key))
			}
			w.maskValue(c.start, ct, nil)
		}
		w.truncate(lo)
	}
}

// maskString replaces the string at v with the marker, in base64 if t is a
// []byte. A marker, in either form, is left as it is: rules of two kinds
// may mask one value (an object of another kind than the request's).
func (w *jsonMasker) maskString(v int, t reflect.Type) {
	end := stringEnd(w.data, v)
	if raw := w.data[v:end]; bytes.Equal(raw, markerJSON) || bytes.Equal(raw, markerBase64JSON) {
		return
	}
	repl := markerJSON
	if isBytes(t) {
		repl = markerBase64JSON
	}
	w.edits = append(w.edits, edit{v, end, repl})
}

// lastApplied masks, inside the last-applied-configuration annotation of
// the object [lo, hi), what the rules mask in the object: kubectl apply
// copies the whole object there. An annotation that does not parse is
// masked whole. Edits from first on are this object's so far.
func (w *jsonMasker) lastApplied(lo, hi, first int, reqRules []*maskRule) {
	md := w.member(lo, hi, "metadata")
	if md < 0 || w.data[w.kids[md].start] != '{' {
		return
	}
	mlo, mhi := w.children(w.kids[md].start)
	defer w.truncate(mlo)
	an := w.member(mlo, mhi, "annotations")
	if an < 0 || w.data[w.kids[an].start] != '{' {
		return
	}
	alo, ahi := w.children(w.kids[an].start)
	la := w.member(alo, ahi, LastAppliedAnnotation)
	if la < 0 || w.data[w.kids[la].start] != '"' {
		return
	}
	c := w.kids[la]
	if bytes.Equal(w.data[c.start:c.end], markerJSON) {
		return
	}
	for _, e := range w.edits[first:] {
		if e.start == c.start {
			return
		}
	}
	out, changed, err := w.m.maskJSON(w.req, reqRules, decodeString(w.data[c.start:c.end]), false)
	switch {
	case err != nil:
		w.edits = append(w.edits, edit{c.start, c.end, markerJSON})
	case changed:
		w.edits = append(w.edits, edit{c.start, c.end, appendJSONString(nil, out)})
	}
}

// sortEdits orders the rule edits and drops duplicates (two rules masking
// one string), keeping a base64 marker over a plain one.
func (w *jsonMasker) sortEdits() {
	if len(w.edits) < 2 {
		return
	}
	slices.SortStableFunc(w.edits, func(a, b edit) int { return a.start - b.start })
	out := w.edits[:1]
	for _, e := range w.edits[1:] {
		last := &out[len(out)-1]
		if e.start == last.start {
			if bytes.Equal(e.repl, markerBase64JSON) {
				last.repl = e.repl
			}
			continue
		}
		out = append(out, e)
	}
	w.edits = out
}

// patternPass applies the patterns to every string value in data[start:end]
// that no rule masked, and returns the edits, in order.
func (w *jsonMasker) patternPass(start, end int) []edit {
	p := w.m.patterns
	if p == nil || !mayMatchJSON(p, w.data[start:end]) {
		return nil
	}
	var out []edit
	rules := w.edits
	j := 0
	for i := start; i < end; {
		q := bytes.IndexByte(w.data[i:end], '"')
		if q < 0 {
			break
		}
		i += q
		e := stringEnd(w.data, i)
		if k := skipSpace(w.data, e); k < len(w.data) && w.data[k] == ':' {
			i = e // a key
			continue
		}
		for j < len(rules) && rules[j].start < i {
			j++
		}
		if j < len(rules) && rules[j].start == i {
			i = e
			continue
		}
		if s, ok := p.replace(decodeString(w.data[i:e])); ok {
			out = append(out, edit{i, e, appendJSONString(nil, s)})
		}
		i = e
	}
	return out
}

// mayMatchJSON reports whether a pattern may match a string in the JSON
// data. Without a backslash, every string holds its bytes as they are, so
// a literal that every match of a pattern needs, missing from data, is
// missing from each string in it: one search of the whole body spares
// looking at each string.
func mayMatchJSON(p *patternSet, data []byte) bool {
	if bytes.IndexByte(data, '\\') >= 0 {
		return true
	}
	for i := range p.res {
		if p.mayMatch(i, data) {
			return true
		}
	}
	return false
}

// apply writes data with the rule edits and the pattern edits, both sorted
// and disjoint.
func (w *jsonMasker) apply(patternEdits []edit) []byte {
	grow := 0
	for _, e := range w.edits {
		grow += len(e.repl) - (e.end - e.start)
	}
	for _, e := range patternEdits {
		grow += len(e.repl) - (e.end - e.start)
	}
	return w.appendApplied(make([]byte, 0, len(w.data)+max(grow, 0)), patternEdits)
}

// appendApplied appends data with the edits applied to dst.
func (w *jsonMasker) appendApplied(dst []byte, patternEdits []edit) []byte {
	at, a, b := 0, w.edits, patternEdits
	for len(a) > 0 || len(b) > 0 {
		var e edit
		if len(b) == 0 || len(a) > 0 && a[0].start < b[0].start {
			e, a = a[0], a[1:]
		} else {
			e, b = b[0], b[1:]
		}
		dst = append(dst, w.data[at:e.start]...)
		dst = append(dst, e.repl...)
		at = e.end
	}
	return append(dst, w.data[at:]...)
}
