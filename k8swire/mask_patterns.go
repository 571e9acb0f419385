package k8swire

import (
	"bytes"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
)

// patternSet is the compiled value patterns of a Masker. It is immutable and
// safe for concurrent use.
type patternSet struct {
	res []*regexp.Regexp
	// group is, per regexp, the index of its "mask" subexpression, or 0 to
	// mask the whole match.
	group []int
	// hold matches, at the end of its input, text that is a prefix of a
	// match of some pattern: what a StreamMasker must hold back until more
	// bytes say whether it is a secret.
	hold *regexp.Regexp
	// progs are the patterns' programs, which a StreamMasker runs to follow
	// a match it had to send before it ended.
	progs []*syntax.Prog
}

// span is a match: mask is what gets replaced, full the whole match.
type span struct {
	start, end         int // masked bytes
	fullStart, fullEnd int // the whole match
	pat                int // the pattern that matched (to fullEnd)
	// cont marks the rest of a match whose start was sent already: it is
	// dropped, not replaced by another marker.
	cont bool
	// open marks a span that may go on after the text seen so far.
	open bool
}

// compilePatterns compiles exprs; nil when there are none.
func compilePatterns(exprs []string) (*patternSet, error) {
	if len(exprs) == 0 {
		return nil, nil
	}
	p := &patternSet{}
	var holds []*syntax.Regexp
	for i, expr := range exprs {
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("%w: pattern #%d: %w", ErrInvalidMaskConfig, i, err)
		}
		if re.MatchString("") {
			return nil, invalidf("pattern #%d %q matches the empty string", i, expr)
		}
		if re.MatchString(MaskMarker) {
			return nil, invalidf("pattern #%d %q matches the mask marker %q", i, expr, MaskMarker)
		}
		g := max(re.SubexpIndex("mask"), 0)
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return nil, fmt.Errorf("%w: pattern #%d: %w", ErrInvalidMaskConfig, i, err)
		}
		p.res = append(p.res, re)
		p.group = append(p.group, g)
		holds = append(holds, prefixRegexp(tree.Simplify()))
		prog, err := syntax.Compile(tree.Simplify())
		if err != nil {
			return nil, fmt.Errorf("%w: pattern #%d: %w", ErrInvalidMaskConfig, i, err)
		}
		p.progs = append(p.progs, prog)
	}
	hold := &syntax.Regexp{Op: syntax.OpConcat, Sub: []*syntax.Regexp{alternate(holds...), {Op: syntax.OpEndText}}}
	re, err := regexp.Compile(hold.String())
	if err != nil {
		return nil, fmt.Errorf("%w: patterns: building the stream look-back: %w", ErrInvalidMaskConfig, err)
	}
	p.hold = re
	return p, nil
}

// matchesAny reports whether any pattern matches b, without allocating.
func (p *patternSet) matchesAny(b []byte) bool {
	for _, re := range p.res {
		if re.Match(b) {
			return true
		}
	}
	return false
}

// find returns the matches in b, sorted and merged where they overlap.
func (p *patternSet) find(b []byte, dst []span) []span {
	dst = dst[:0]
	for i, re := range p.res {
		if g := p.group[i]; g > 0 {
			for _, m := range re.FindAllSubmatchIndex(b, -1) {
				if m[2*g] >= 0 && m[2*g] < m[2*g+1] {
					dst = append(dst, span{start: m[2*g], end: m[2*g+1], fullStart: m[0], fullEnd: m[1], pat: i})
				}
			}
			continue
		}
		for _, m := range re.FindAllIndex(b, -1) {
			if m[0] < m[1] {
				dst = append(dst, span{start: m[0], end: m[1], fullStart: m[0], fullEnd: m[1], pat: i})
			}
		}
	}
	if len(dst) < 2 {
		return dst
	}
	slices.SortFunc(dst, func(a, b span) int { return a.start - b.start })
	out := dst[:1]
	for _, s := range dst[1:] {
		last := &out[len(out)-1]
		if s.start <= last.end {
			last.end = max(last.end, s.end)
			last.fullStart = min(last.fullStart, s.fullStart)
			if s.fullEnd > last.fullEnd {
				last.fullEnd, last.pat = s.fullEnd, s.pat
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// replace returns b with every match replaced by MaskMarker, and whether
// anything matched. b is returned as is when nothing did.
func (p *patternSet) replace(b []byte) ([]byte, bool) {
	if !p.matchesAny(b) {
		return b, false
	}
	spans := p.find(b, nil)
	if len(spans) == 0 {
		return b, false
	}
	var out bytes.Buffer
	out.Grow(len(b))
	at := 0
	for _, s := range spans {
		out.Write(b[at:s.start])
		out.WriteString(MaskMarker)
		at = s.end
	}
	out.Write(b[at:])
	return out.Bytes(), true
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
