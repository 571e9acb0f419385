package k8swire

import (
	"errors"
	"fmt"
	"strings"
)

// JSONStream masks a JSON response body as it is read. The items of a list
// are masked one at a time as each arrives, so a large list goes on to the
// client while the rest is still on its way, and is never held whole. Any
// other document (an object, a Table, a Status, a list whose kind or
// apiVersion comes after its items, or whose own kind has rules) is held
// whole and masked when it ends. Either way the output is what MaskBody
// gives for the whole body, byte for byte: a list's items, and the values
// of its other members, are masked as MaskBody masks them inside the list.
//
// Malformed input is an error wrapping ErrUnmaskable, as soon as it is
// seen; nothing from the malformed value on is ever output. A JSONStream is
// not safe for concurrent use.
type JSONStream struct {
	m        *Masker
	req      *Request
	reqRules []*maskRule
	limit    int

	// in is the input not yet output (all of it until the stream commits
	// to masking item by item); parsing stands at pos, and out holds the
	// masked bytes from in[:emit].
	in      []byte
	pos     int
	emit    int
	out     []byte
	state   streamState
	first   bool // no member or item yet in the current object or array
	retryAt int  // an incomplete value is scanned again once in is this long
	changed bool
	eof     bool
	listing bool    // the list's header was output: masking item by item
	kind    *string // the first kind and apiVersion members, once seen
	apiVer  *string
	header  []child // the list's members before its items, until listing
	w       jsonMasker
}

type streamState int

const (
	streamStart   streamState = iota // before the top-level '{'
	streamMembers                    // between the list's members
	streamItems                      // between the items
	streamEnd                        // after the top-level '}': only space
	streamWhole                      // held whole, masked at Close
	streamRaw                        // nothing applies: passed as it is
)

// incompleteSlack is how close to the end of the input a syntax error may
// be and still be a value cut short by the read (a literal, a number or a
// \u escape), to be scanned again with more input.
const incompleteSlack = 64

// NewJSONStream returns a JSONStream for a response to req, or nil if
// contentType is not JSON (or is a JSON stream, a watch: use MaskWatch).
// limit bounds what is held at once: a whole document, or one item.
func (m *Masker) NewJSONStream(req *Request, contentType string, limit int) *JSONStream {
	mt, params := mediaType(contentType)
	if !isJSONMediaType(mt) || params["stream"] != "" {
		return nil
	}
	s := &JSONStream{m: m, req: req, reqRules: m.requestRules(req), limit: limit, first: true}
	if len(s.reqRules) == 0 && m.patterns == nil {
		s.state = streamRaw
	}
	s.w.m, s.w.req, s.w.reqRules = m, req, s.reqRules
	return s
}

// Write takes the next bytes of the body.
func (s *JSONStream) Write(p []byte) error {
	s.in = append(s.in, p...)
	if s.state == streamRaw {
		return nil
	}
	if s.state != streamWhole && len(s.in) >= s.retryAt {
		if err := s.advance(); err != nil {
			return err
		}
	}
	if len(s.in)-s.emit > s.limit {
		return fmt.Errorf("%w: more than %d bytes of JSON held at once", ErrUnmaskable, s.limit)
	}
	return nil
}

// Close says the body ended, and checks that it was whole.
func (s *JSONStream) Close() error {
	s.eof = true
	switch {
	case s.state == streamRaw:
		return nil
	case !s.listing:
		return s.whole()
	}
	if err := s.advance(); err != nil {
		return err
	}
	if s.state != streamEnd {
		return s.fail(len(s.in), "unexpected end")
	}
	s.emitRaw(len(s.in)) // the space after the list
	return nil
}

// Next returns the masked bytes that are ready, valid until the next call.
func (s *JSONStream) Next() []byte {
	if s.state == streamRaw {
		out := s.in
		s.in = s.in[:0]
		return out
	}
	out := s.out
	s.out = s.out[:0]
	if s.emit > 0 && s.emit*2 >= len(s.in) {
		s.compact()
	}
	return out
}

// Changed reports whether anything output so far was masked.
func (s *JSONStream) Changed() bool { return s.changed }

// whole masks everything held as one document, as MaskBody does.
func (s *JSONStream) whole() error {
	s.state = streamWhole
	if !s.eof {
		return nil
	}
	if len(s.in) == 0 {
		s.state = streamEnd // an empty body passes, as in MaskBody
		return nil
	}
	out, changed, err := s.m.maskJSON(s.req, s.reqRules, s.in, false)
	if err != nil {
		return err
	}
	s.changed = s.changed || changed
	s.out = append(s.out, out...)
	s.in, s.pos, s.emit = s.in[:0], 0, 0
	s.state = streamEnd
	return nil
}

// compact drops the input already output.
func (s *JSONStream) compact() {
	n := copy(s.in, s.in[s.emit:])
	s.in = s.in[:n]
	s.pos -= s.emit
	s.retryAt = max(0, s.retryAt-s.emit)
	s.emit = 0
}

// advance parses and masks what the input holds so far.
func (s *JSONStream) advance() error {
	for {
		i := skipSpace(s.in, s.pos)
		if i == len(s.in) {
			return nil
		}
		switch s.state {
		case streamStart:
			if s.in[i] != '{' {
				return s.whole() // not a list: MaskBody's verdict at Close
			}
			s.pos, s.state = i+1, streamMembers
		case streamMembers:
			if done, err := s.member(i); err != nil || !done {
				return err
			}
		case streamItems:
			if done, err := s.item(i); err != nil || !done {
				return err
			}
		case streamEnd:
			return s.fail(i, "data after the document")
		default:
			return nil
		}
	}
}

// member parses the next member of the top-level object at in[i], or its
// end. It reports false when it needs more input.
func (s *JSONStream) member(i int) (bool, error) {
	if s.in[i] == '}' {
		return s.end(i)
	}
	if !s.first {
		if s.in[i] != ',' {
			return false, s.fail(i, "want ',' or '}'")
		}
		if i = skipSpace(s.in, i+1); i == len(s.in) {
			return false, nil
		}
	}
	if s.in[i] != '"' {
		return false, s.fail(i, "want a key")
	}
	keyEnd, err := scanString(s.in, i)
	if err != nil {
		return false, s.incomplete(i, err)
	}
	colon := skipSpace(s.in, keyEnd)
	if colon == len(s.in) {
		return false, nil
	}
	if s.in[colon] != ':' {
		return false, s.fail(colon, "want ':'")
	}
	v := skipSpace(s.in, colon+1)
	if v == len(s.in) {
		return false, nil
	}
	key := s.in[i:keyEnd]
	if !s.listing && keyIs(key, []byte("items"), false) {
		if !s.listable(v) {
			return false, s.whole()
		}
		return true, s.commit(v)
	}
	end, ok, err := s.scan(v, 1)
	if !ok {
		return false, err
	}
	if s.listing {
		s.emitRaw(v)
		s.emitMasked(s.in[v:end], false)
	} else {
		s.header = append(s.header, child{i, keyEnd, v, end})
		if keyIs(key, []byte("kind"), false) && s.kind == nil {
			s.kind = s.stringValue(v, end)
		}
		if keyIs(key, []byte("apiVersion"), false) && s.apiVer == nil {
			s.apiVer = s.stringValue(v, end)
		}
	}
	s.pos, s.first = end, false
	return true, nil
}

// stringValue is the value of the JSON string in[v:end], "" for a value
// of another type (as memberString reads it).
func (s *JSONStream) stringValue(v, end int) *string {
	str := ""
	if s.in[v] == '"' {
		str = string(decodeString(s.in[v:end]))
	}
	return &str
}

// listable reports whether the top-level object is a list that MaskBody
// walks item by item, whose items at in[v] can be masked one at a time:
// its kind and apiVersion came first, and its own kind has no rules.
func (s *JSONStream) listable(v int) bool {
	if s.in[v] != '[' || s.kind == nil || s.apiVer == nil {
		return false
	}
	kind := *s.kind
	if kind == "Status" || kind == "Table" && groupOf(*s.apiVer) == "meta.k8s.io" || kind != "" && !strings.HasSuffix(kind, "List") {
		return false
	}
	return len(s.m.byKind[groupResource{groupOf(*s.apiVer), kind}]) == 0
}

// commit outputs the list's members so far, masked, and the items' '['.
func (s *JSONStream) commit(v int) error {
	for _, c := range s.header {
		s.emitRaw(c.start)
		s.emitMasked(s.in[c.start:c.end], false)
	}
	s.header, s.listing = nil, true
	s.emitRaw(v + 1)
	s.pos, s.first, s.state = v+1, true, streamItems
	return nil
}

// item parses the next item at in[i], or the end of the items.
func (s *JSONStream) item(i int) (bool, error) {
	switch {
	case s.in[i] == ']':
		s.pos, s.first, s.state = i+1, false, streamMembers
		return true, nil
	case !s.first && s.in[i] != ',':
		return false, s.fail(i, "want ',' or ']'")
	case !s.first:
		if i = skipSpace(s.in, i+1); i == len(s.in) {
			return false, nil
		}
	}
	end, ok, err := s.scan(i, 2)
	if !ok {
		return false, err
	}
	s.emitRaw(i)
	s.emitMasked(s.in[i:end], true)
	s.pos, s.first = end, false
	return true, nil
}

// end is the top-level object's closing brace at in[i].
func (s *JSONStream) end(i int) (bool, error) {
	if !s.listing {
		// Not a list, or one without items: MaskBody at Close.
		return false, s.whole()
	}
	s.pos, s.state = i+1, streamEnd
	s.emitRaw(i + 1)
	return true, nil
}

// scan validates the value at in[v], at the given depth. ok is false when
// the value may continue past what was read so far.
func (s *JSONStream) scan(v, depth int) (end int, ok bool, err error) {
	end, err = scanValue(s.in, v, depth, nil)
	if err != nil {
		return 0, false, s.incomplete(v, err)
	}
	if !s.eof && skipSpace(s.in, end) == len(s.in) {
		// A number, or a literal, may go on.
		s.retryAt = len(s.in) + 1
		return 0, false, nil
	}
	return end, true, nil
}

// incomplete reads a syntax error in the value from in[v]: with more input
// to come, one at the end of the input is a value cut short, scanned again
// once the input has doubled past v (so a large item is scanned a bounded
// number of times); any other is malformed JSON.
func (s *JSONStream) incomplete(v int, err error) error {
	var se *jsonSyntaxError
	if !s.eof && errors.As(err, &se) && se.off >= len(s.in)-incompleteSlack {
		s.retryAt = max(len(s.in)+1, v+2*(len(s.in)-v))
		return nil
	}
	return fmt.Errorf("%w: decoding JSON: %w", ErrUnmaskable, err)
}

func (s *JSONStream) fail(i int, msg string) error {
	return fmt.Errorf("%w: decoding JSON: %w", ErrUnmaskable, syntaxErr(i, msg))
}

// emitRaw outputs the input from emit up to i as it is: space, commas,
// keys and brackets.
func (s *JSONStream) emitRaw(i int) {
	s.out = append(s.out, s.in[s.emit:i]...)
	s.emit = i
}

// emitMasked outputs one value of the list, masked as MaskBody masks it in
// place: an item gets the rules for its object (the request's resource, or
// its own kind), and every value the rules of the kinds it embeds and the
// patterns.
func (s *JSONStream) emitMasked(data []byte, item bool) {
	w := &s.w
	w.data, w.kids, w.edits, w.done = data, w.kids[:0], w.edits[:0], w.done[:0]
	if item && data[0] == '{' {
		lo, hi := w.children(0)
		w.resource(0, lo, hi, w.memberString(lo, hi, "kind"), w.memberString(lo, hi, "apiVersion"), w.reqRules)
		w.truncate(lo)
	}
	w.embedded(0, len(data))
	w.sortEdits()
	patternEdits := w.patternPass(0, len(data))
	s.emit += len(data)
	if len(w.edits) == 0 && len(patternEdits) == 0 {
		s.out = append(s.out, data...)
		return
	}
	s.changed = true
	s.out = w.appendApplied(s.out, patternEdits)
}
