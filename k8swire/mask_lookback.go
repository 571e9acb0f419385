package k8swire

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// This file tells a StreamMasker what to hold back: the text at the end of
// what it has seen that could still grow into a match, found by running,
// from the places a match can start, a regexp for the prefixes of the
// pattern's matches.

// holdMatcher finds where text that could still grow into a match of one
// pattern starts: the leftmost position from which the rest of the text is
// a prefix of a match.
type holdMatcher struct {
	lit   []byte    // a literal that every match starts with, if any
	first [256]bool // the bytes a match can start with
	// starts lists first's bytes when they are few (at most maxStarts), so
	// that they are looked for with bytes.IndexByte; nil otherwise.
	starts []byte
	re     *regexp.Regexp
}

// maxStarts is how many first bytes a holdMatcher looks for one by one.
const maxStarts = 4

func newHoldMatcher(re *regexp.Regexp, tree *syntax.Regexp) (holdMatcher, error) {
	h := holdMatcher{}
	lit, _ := re.LiteralPrefix()
	h.lit = []byte(lit)
	h.first, _ = firstBytes(tree)
	for b, ok := range h.first {
		if ok {
			h.starts = append(h.starts, byte(b))
		}
	}
	if len(h.starts) > maxStarts {
		h.starts = nil
	}
	var err error
	h.re, err = regexp.Compile(`^(?:` + prefixRegexp(tree).String() + `)\z`)
	return h, err
}

// leftmost returns the leftmost c in [from, limit) from which text[c:] is a
// non-empty prefix of a match, or -1. Only the places where a match can
// start are tried.
func (h *holdMatcher) leftmost(text []byte, from, limit int) int {
	limit = min(limit, len(text))
	if len(h.lit) == 0 && h.starts != nil {
		return h.leftmostByStarts(text, from, limit)
	}
	if len(h.lit) == 0 {
		for c := from; c < limit; c++ {
			if h.first[text[c]] && h.re.Match(text[c:]) {
				return c
			}
		}
		return -1
	}
	for c := from; c < limit; c++ {
		k := bytes.Index(text[c:], h.lit)
		if k < 0 {
			// Only a partial literal at the end is left to try.
			for c = max(c, len(text)-len(h.lit)+1); c < limit; c++ {
				if bytes.HasPrefix(h.lit, text[c:]) && h.re.Match(text[c:]) {
					return c
				}
			}
			return -1
		}
		if c += k; c < limit && h.re.Match(text[c:]) {
			return c
		}
	}
	return -1
}

// leftmostByStarts is leftmost for a pattern with few first bytes: it
// tries only where bytes.IndexByte finds one of them. next[i] caches where
// starts[i] occurs next at or after c (limit: not before limit).
func (h *holdMatcher) leftmostByStarts(text []byte, from, limit int) int {
	var next [maxStarts]int
	for i := range h.starts {
		next[i] = -1 // not looked for yet
	}
	for c := from; c < limit; c++ {
		at := limit
		for i, b := range h.starts {
			if next[i] < c {
				next[i] = limit
				if k := bytes.IndexByte(text[c:limit], b); k >= 0 {
					next[i] = c + k
				}
			}
			at = min(at, next[i])
		}
		if at == limit {
			return -1
		}
		if c = at; h.re.Match(text[c:]) {
			return c
		}
	}
	return -1
}

// firstBytes is the set of bytes that a match of re can start with, and
// whether re matches the empty string. It over-approximates.
func firstBytes(re *syntax.Regexp) (set [256]bool, nullable bool) {
	switch re.Op {
	case syntax.OpNoMatch:
		return set, false
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return set, true
		}
		r := re.Rune[0]
		addRune(&set, r)
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				addRune(&set, f)
			}
		}
		return set, false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= min(re.Rune[i+1], utf8.RuneSelf-1); r++ {
				set[r] = true
			}
			if re.Rune[i+1] >= utf8.RuneSelf {
				for b := utf8.RuneSelf; b < 256; b++ {
					set[b] = true // any multi-byte or invalid UTF-8
				}
			}
		}
		return set, false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for b := range set {
			set[b] = re.Op == syntax.OpAnyChar || b != '\n'
		}
		return set, false
	case syntax.OpCapture, syntax.OpPlus:
		return firstBytes(re.Sub[0])
	case syntax.OpStar, syntax.OpQuest:
		set, _ = firstBytes(re.Sub[0])
		return set, true
	case syntax.OpRepeat:
		set, nullable = firstBytes(re.Sub[0])
		return set, nullable || re.Min == 0
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			s, n := firstBytes(sub)
			for b, ok := range s {
				set[b] = set[b] || ok
			}
			if !n {
				return set, false
			}
		}
		return set, true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			s, n := firstBytes(sub)
			for b, ok := range s {
				set[b] = set[b] || ok
			}
			nullable = nullable || n
		}
		return set, nullable
	}
	// Empty matches and assertions.
	return set, true
}

// addRune adds the first byte of r's UTF-8 encoding to set.
func addRune(set *[256]bool, r rune) {
	var b [utf8.UTFMax]byte
	utf8.EncodeRune(b[:], r)
	set[b[0]] = true
}

// prefixRegexp builds a regexp for the proper and improper prefixes of
// what re matches: the text a stream may have to hold back because more
// bytes could complete a match. It over-approximates (assertions such as \b
// and ^ become empty), which only holds back more.
func prefixRegexp(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpNoMatch:
		return re
	case syntax.OpLiteral:
		// a(b(c)?)? for "abc".
		var out *syntax.Regexp
		for i := len(re.Rune) - 1; i >= 0; i-- {
			lit := &syntax.Regexp{Op: syntax.OpLiteral, Flags: re.Flags, Rune: []rune{re.Rune[i]}}
			if out != nil {
				lit = concat(lit, out)
			}
			out = quest(lit)
		}
		return out
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return quest(re)
	case syntax.OpCapture:
		return prefixRegexp(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		sub := withoutAssertions(re.Sub[0])
		return concat(&syntax.Regexp{Op: syntax.OpStar, Flags: re.Flags, Sub: []*syntax.Regexp{sub}}, prefixRegexp(re.Sub[0]))
	case syntax.OpQuest:
		return prefixRegexp(re.Sub[0])
	case syntax.OpConcat:
		// prefix(A) | A prefix(B...), from the right.
		out := prefixRegexp(re.Sub[len(re.Sub)-1])
		for i := len(re.Sub) - 2; i >= 0; i-- {
			out = alternate(prefixRegexp(re.Sub[i]), concat(withoutAssertions(re.Sub[i]), out))
		}
		return out
	case syntax.OpAlternate:
		subs := make([]*syntax.Regexp, len(re.Sub))
		for i, s := range re.Sub {
			subs[i] = prefixRegexp(s)
		}
		return alternate(subs...)
	}
	// Empty matches and assertions.
	return &syntax.Regexp{Op: syntax.OpEmptyMatch}
}

// withoutAssertions copies re with its zero-width assertions made empty
// and its capture groups dropped.
func withoutAssertions(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	case syntax.OpCapture:
		return withoutAssertions(re.Sub[0])
	}
	if len(re.Sub) == 0 {
		return re
	}
	c := *re
	c.Sub = make([]*syntax.Regexp, len(re.Sub))
	for i, s := range re.Sub {
		c.Sub[i] = withoutAssertions(s)
	}
	return &c
}

func quest(re *syntax.Regexp) *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpQuest, Sub: []*syntax.Regexp{re}}
}

func concat(res ...*syntax.Regexp) *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpConcat, Sub: res}
}

func alternate(res ...*syntax.Regexp) *syntax.Regexp {
	if len(res) == 1 {
		return res[0]
	}
	return &syntax.Regexp{Op: syntax.OpAlternate, Sub: res}
}
