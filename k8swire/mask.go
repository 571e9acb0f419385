package k8swire

import (
	"errors"
	"fmt"
	"mime"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
)

// ErrUnmaskable marks a response the Masker cannot vouch for: a body that
// does not decode as its content type says, a content type it cannot read
// while a rule applies, a watch event over the size limit. The gateway must
// then send an error Status, never the response.
var ErrUnmaskable = errors.New("response cannot be masked")

// ErrWatchEventTooLarge marks a watch event larger than
// MaskConfig.MaxWatchEvent. Errors that wrap it wrap ErrUnmaskable too.
var ErrWatchEventTooLarge = errors.New("watch event too large")

// Masker hides secret values in the responses the apiserver sends through
// the gateway: the fields its rules name, in every object of every
// representation (JSON, Table, protobuf, watch events), and whatever its
// value patterns match in any string, text body or exec/attach output.
//
// A Masker is immutable and safe for concurrent use; it does no I/O of its
// own beyond the reader and writer MaskWatch is given.
type Masker struct {
	rules      []*maskRule
	byResource map[groupResource][]*maskRule
	// byType and byKind find the rules of an object by its Go type
	// (protobuf) or its declared kind (JSON), whatever the request, so
	// that an object of a masked kind is masked wherever it appears.
	byType        map[reflect.Type][]*maskRule
	byKind        map[groupResource][]*maskRule
	patterns      *patternSet
	maxPatternLen int
	maxWatchEvent int
	// wirePlans caches the wire masker's plan per object type and
	// request rules (wirePlanKey -> *wirePlan).
	wirePlans sync.Map
	// plain caches plainType by kind.
	plain sync.Map // schema.GroupVersionKind -> bool
}

// groupResource keys rules by API group and resource (or kind).
type groupResource struct{ group, name string }

// maskRule is a compiled MaskRule.
type maskRule struct {
	fields []fieldPath
	keyRE  *regexp.Regexp
	nameRE *regexp.Regexp
}

// NewMasker validates cfg and compiles it.
func NewMasker(cfg MaskConfig) (*Masker, error) {
	return compileMaskConfig(cfg)
}

func compileMaskConfig(c MaskConfig) (*Masker, error) {
	m := &Masker{
		byResource:    map[groupResource][]*maskRule{},
		byType:        map[reflect.Type][]*maskRule{},
		byKind:        map[groupResource][]*maskRule{},
		maxPatternLen: c.MaxPatternLen,
		maxWatchEvent: c.MaxWatchEvent,
	}
	if c.MaxPatternLen < 0 || c.MaxWatchEvent < 0 {
		return nil, invalidf("maxPatternLen and maxWatchEvent may not be negative")
	}
	if m.maxPatternLen == 0 {
		m.maxPatternLen = DefaultMaxPatternLen
	}
	if m.maxWatchEvent == 0 {
		m.maxWatchEvent = DefaultMaxWatchEvent
	}
	rules := c.Rules
	if c.DefaultRules {
		rules = append(DefaultMaskRules(), rules...)
	}
	for i, r := range rules {
		mr, types, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", ruleName(r, i), err)
		}
		m.rules = append(m.rules, mr)
		gr := groupResource{r.APIGroup, r.Resource}
		m.byResource[gr] = append(m.byResource[gr], mr)
		for _, t := range types {
			m.byType[t] = append(m.byType[t], mr)
			obj, ok := reflect.New(t).Interface().(runtime.Object)
			if !ok {
				continue
			}
			gvks, _, _ := maskScheme.ObjectKinds(obj)
			for _, gvk := range gvks {
				gk := groupResource{gvk.Group, gvk.Kind}
				if !slices.Contains(m.byKind[gk], mr) {
					m.byKind[gk] = append(m.byKind[gk], mr)
				}
			}
		}
	}
	patterns := c.Patterns
	if c.DefaultPatterns {
		patterns = append(DefaultMaskPatterns(), patterns...)
	}
	p, err := compilePatterns(patterns)
	if err != nil {
		return nil, err
	}
	m.patterns = p
	return m, nil
}

// compileRule compiles r and returns the Go types of its kind, if the
// scheme knows it.
func compileRule(r MaskRule) (*maskRule, []reflect.Type, error) {
	if r.Resource == "" || strings.ContainsAny(r.Resource, "/*") {
		return nil, nil, invalidf("resource %q: want a plural resource name", r.Resource)
	}
	if len(r.Fields) == 0 {
		return nil, nil, invalidf("no fields")
	}
	mr := &maskRule{}
	var err error
	if mr.keyRE, err = compileRegexp("keyPattern", r.KeyPattern); err != nil {
		return nil, nil, err
	}
	if mr.nameRE, err = compileRegexp("namePattern", r.NamePattern); err != nil {
		return nil, nil, err
	}
	types := kindTypes()[r.APIGroup+"/"+r.Resource]
	for _, f := range r.Fields {
		raw, err := parseFieldPath(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: field %q: %w", ErrInvalidMaskConfig, f, err)
		}
		if mr.nameRE != nil && raw[len(raw)-1].array {
			return nil, nil, invalidf("field %q: namePattern needs a path that ends in a field, not []", f)
		}
		var fp fieldPath
		if len(types) == 0 {
			fp, err = resolvePath(nil, raw)
		} else {
			for i, t := range types {
				var e error
				if fp, e = resolvePath(t, raw); e == nil {
					err = nil
					break
				}
				if i == 0 {
					err = e
				}
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: field %q: %w", ErrInvalidMaskConfig, f, err)
		}
		fp.text = f
		mr.fields = append(mr.fields, fp)
	}
	return mr, types, nil
}

// noObjectSubresources are subresources whose responses are not the
// object: field rules do not apply to them.
var noObjectSubresources = map[string]bool{
	"log": true, "exec": true, "attach": true, "portforward": true, "proxy": true,
}

// requestRules are the rules for the objects of req's resource.
func (m *Masker) requestRules(req *Request) []*maskRule {
	if req == nil || !req.IsResourceRequest || noObjectSubresources[req.Subresource] {
		return nil
	}
	return m.byResource[groupResource{req.APIGroup, req.Resource}]
}

// Applies reports whether any rule or pattern could change a response to
// req, so the gateway can skip the others untouched: field rules apply to
// their resource's requests (not to its log, exec, attach, portforward or
// proxy subresources); patterns to every response but port-forward
// streams. A nil req is one the caller could not classify: Applies is then
// true if anything is configured.
func (m *Masker) Applies(req *Request) bool {
	switch {
	case m == nil:
		return false
	case req == nil:
		return len(m.rules) > 0 || m.patterns != nil
	case req.Stream != nil || req.IsResourceRequest && req.Resource == "pods" && req.Subresource == "portforward":
		return m.patterns != nil && req.Subresource != "portforward"
	}
	return len(m.requestRules(req)) > 0 || m.patterns != nil
}

// mediaType parses a Content-Type into its lowercased media type and
// parameters; an unparsable one yields "".
func mediaType(contentType string) (string, map[string]string) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", nil
	}
	return mt, params
}

func isJSONMediaType(mt string) bool {
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// MaskBody masks a complete response body of the given Content-Type for
// req, and reports whether it changed anything. It reads JSON (objects,
// lists, Status, as=Table with or without the rows' objects,
// as=PartialObjectMetadata[List]), Kubernetes protobuf (re-encoded as
// protobuf), YAML (masked as the JSON it converts to) and, for patterns
// only, text (logs). Field rules fail closed on
// any other content type; patterns alone let bodies they cannot read pass.
//
// A body that does not decode when anything applies is an error wrapping
// ErrUnmaskable: the caller must not send it. When nothing changes, the
// input slice is returned as is; JSON is otherwise rewritten only at the
// masked strings, every other byte kept.
func (m *Masker) MaskBody(req *Request, contentType string, body []byte) ([]byte, bool, error) {
	rules := m.requestRules(req)
	if len(rules) == 0 && m.patterns == nil || len(body) == 0 {
		return body, false, nil
	}
	mt, params := mediaType(contentType)
	if params["stream"] != "" {
		return nil, false, fmt.Errorf("%w: %q is a stream: use MaskWatch", ErrUnmaskable, contentType)
	}
	switch {
	case isJSONMediaType(mt):
		return m.maskJSON(req, rules, body, false)
	case mt == ContentTypeProtobuf:
		return m.maskProtobufBody(req, rules, body)
	case mt == ContentTypeYAML:
		return m.maskYAML(req, rules, body)
	case strings.HasPrefix(mt, "text/") && len(rules) == 0:
		out, changed := m.patterns.maskText(nil, body)
		if !changed {
			return body, false, nil
		}
		return out, true, nil
	case len(rules) == 0:
		return body, false, nil
	}
	return nil, false, fmt.Errorf("%w: content type %q cannot be masked", ErrUnmaskable, contentType)
}

// objectRules are the rules for one object: those of the request's
// resource and those of the object's own kind.
func objectRules(reqRules, kindRules []*maskRule) []*maskRule {
	switch {
	case len(kindRules) == 0:
		return reqRules
	case len(reqRules) == 0:
		return kindRules
	}
	out := slices.Clone(reqRules)
	for _, r := range kindRules {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
