package k8swire

import (
	"bytes"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"unicode/utf8"
	"unsafe"
)

// patternSet is the compiled value patterns of a Masker. It is immutable and
// safe for concurrent use.
type patternSet struct {
	res []*regexp.Regexp
	// group is, per regexp, the index of its "mask" subexpression, or 0 to
	// mask the whole match.
	group []int
	// needles are, per pattern, literals one of which every match holds
	// (nil: none known), to skip a pattern on text that has none.
	needles [][]needle
	// holds find, per pattern, text that is a prefix of a match: what a
	// StreamMasker must hold back until more bytes say whether it is one.
	holds []holdMatcher
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
		p.needles = append(p.needles, required(tree.Simplify()))
		h, err := newHoldMatcher(re, tree.Simplify())
		if err != nil {
			return nil, fmt.Errorf("%w: pattern #%d: building its stream look-back: %w", ErrInvalidMaskConfig, i, err)
		}
		p.holds = append(p.holds, h)
		prog, err := syntax.Compile(tree.Simplify())
		if err != nil {
			return nil, fmt.Errorf("%w: pattern #%d: %w", ErrInvalidMaskConfig, i, err)
		}
		p.progs = append(p.progs, prog)
	}
	return p, nil
}

// matchesAny reports whether any pattern matches b, without allocating.
func (p *patternSet) matchesAny(b []byte) bool {
	for i, re := range p.res {
		if p.mayMatch(i, b) && re.Match(b) {
			return true
		}
	}
	return false
}

// mayMatch reports whether b holds one of the literals that every match of
// pattern i holds.
func (p *patternSet) mayMatch(i int, b []byte) bool {
	if p.needles[i] == nil {
		return true
	}
	for _, n := range p.needles[i] {
		if n.in(b) {
			return true
		}
	}
	return false
}

// mayMatchString is mayMatch for a string.
func (p *patternSet) mayMatchString(i int, s string) bool {
	if p.needles[i] == nil {
		return true
	}
	for _, n := range p.needles[i] {
		if n.inString(s) {
			return true
		}
	}
	return false
}

// find returns the matches in b, sorted and merged where they overlap.
func (p *patternSet) find(b []byte, dst []span) []span {
	dst = dst[:0]
	for i, re := range p.res {
		if !p.mayMatch(i, b) {
			continue
		}
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
	return mergeSpans(dst)
}

// mergeSpans sorts spans by start and merges those that overlap.
func mergeSpans(dst []span) []span {
	if len(dst) < 2 {
		return dst
	}
	slices.SortFunc(dst, func(a, b span) int { return a.start - b.start })
	out := dst[:1]
	for _, s := range dst[1:] {
		last := &out[len(out)-1]
		if s.start < last.end {
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

// needle is a literal to look for, case-insensitively (ASCII) if fold.
type needle struct {
	lit  []byte // lower case if fold
	fold bool
}

// in reports whether b holds n. A folded needle's first byte is looked for
// in both cases, each search resumed only once it has been passed, so text
// full of one case is not scanned again for the other at every hit.
func (n needle) in(b []byte) bool {
	if !n.fold {
		return bytes.Contains(b, n.lit)
	}
	lo, up, size := n.lit[0], upperASCII(n.lit[0]), len(n.lit)
	nextLo, nextUp := -1, -1 // where lo and up occur next, len(b) if not
	for c := 0; c+size <= len(b); {
		if nextLo < c {
			nextLo = indexByteFrom(b, c, lo)
		}
		if nextUp < c {
			nextUp = indexByteFrom(b, c, up)
		}
		i := min(nextLo, nextUp)
		if i+size > len(b) {
			return false
		}
		if equalFoldASCII(b[i:i+size], n.lit) {
			return true
		}
		c = i + 1
	}
	return false
}

// indexByteFrom is the index of the first c in b at or after from, or
// len(b).
func indexByteFrom(b []byte, from int, c byte) int {
	if k := bytes.IndexByte(b[from:], c); k >= 0 {
		return from + k
	}
	return len(b)
}

// inString reports whether s holds n, reading s in place (n.in does not
// write to it). A folded needle is ASCII without k or s (required), so
// ASCII folding finds what Unicode folding would.
func (n needle) inString(s string) bool {
	return n.in(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// upperASCII is c in upper case if it is an ASCII letter.
func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 0x20
	}
	return c
}

// equalFoldASCII reports whether b equals lower, a lower-case literal, in
// ASCII case folding.
func equalFoldASCII(b, lower []byte) bool {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c |= 0x20
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// required returns literals one of which every match of re holds, or nil
// if it knows none.
func required(re *syntax.Regexp) []needle {
	switch re.Op {
	case syntax.OpLiteral:
		fold := re.Flags&syntax.FoldCase != 0
		lit := []byte(string(re.Rune))
		if fold {
			for i, c := range lit {
				switch {
				case c >= utf8.RuneSelf || c == 'k' || c == 'K' || c == 's' || c == 'S':
					return nil // folds outside ASCII (K as Kelvin, s as long s)
				case c >= 'A' && c <= 'Z':
					lit[i] = c | 0x20
				}
			}
		}
		if len(lit) == 0 {
			return nil
		}
		return []needle{{lit, fold}}
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []needle
		for _, sub := range re.Sub {
			if r := required(sub); r != nil && (best == nil || shortest(r) > shortest(best)) {
				best = r
			}
		}
		return best
	case syntax.OpAlternate:
		var all []needle
		for _, sub := range re.Sub {
			r := required(sub)
			if r == nil {
				return nil
			}
			all = append(all, r...)
		}
		return all
	}
	return nil
}

func shortest(ns []needle) int {
	n := len(ns[0].lit)
	for _, x := range ns[1:] {
		n = min(n, len(x.lit))
	}
	return n
}
