package k8swire

import (
	"bytes"
	"sort"
)

// This file finds terminal escape sequences in exec/attach output, so that
// patterns match the text a terminal shows (a secret in colour, or with a
// bold run inside, is still one) and masking never breaks a sequence.

// escRegion is the extent of something a masker must keep whole: a
// control sequence, or the opening or terminator of a string sequence
// (OSC, DCS, SOS, PM, APC), whose text in between may be masked.
type escRegion struct {
	start, end int
	// sep marks the opening or terminator of a string sequence, which
	// separates text rather than joining it.
	sep bool
}

const esc = 0x1b

// escapeRegions lists the escape sequences of b (ECMA-48), appending to
// dst, and where an incomplete one at the end of b starts, or -1.
func escapeRegions(b []byte, dst []escRegion) ([]escRegion, int) {
	n := len(b)
	for i := 0; i < n; {
		k := bytes.IndexByte(b[i:], esc)
		if k < 0 {
			break
		}
		a := i + k
		if a+1 >= n {
			return dst, a
		}
		switch c := b[a+1]; {
		case c == '[': // CSI: parameters and intermediates, then a final byte
			j := a + 2
			for j < n && b[j] >= 0x20 && b[j] <= 0x3f {
				j++
			}
			if j == n {
				return dst, a
			}
			if b[j] >= 0x40 && b[j] <= 0x7e {
				j++
			}
			dst = append(dst, escRegion{a, j, false})
			i = j
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_': // string sequences
			dst = append(dst, escRegion{a, a + 2, true})
			t := bytes.IndexAny(b[a+2:], "\x07\x1b")
			if t < 0 {
				return dst, a
			}
			t += a + 2
			switch {
			case b[t] == 0x07:
				dst = append(dst, escRegion{t, t + 1, true})
				i = t + 1
			case t+1 == n:
				return dst, a
			case b[t+1] == '\\':
				dst = append(dst, escRegion{t, t + 2, true})
				i = t + 2
			default:
				i = t // cancelled by another sequence
			}
		case c >= 0x20 && c <= 0x2f: // intermediates, then a final byte
			j := a + 1
			for j < n && b[j] >= 0x20 && b[j] <= 0x2f {
				j++
			}
			if j == n {
				return dst, a
			}
			if b[j] >= 0x30 && b[j] <= 0x7e {
				j++
			}
			dst = append(dst, escRegion{a, j, false})
			i = j
		case c >= 0x30 && c <= 0x7e:
			dst = append(dst, escRegion{a, a + 2, false})
			i = a + 2
		default:
			dst = append(dst, escRegion{a, a + 1, false})
			i = a + 1
		}
	}
	return dst, -1
}

// textView is what a terminal shows of some bytes: the bytes without their
// escape regions, with the mapping back.
type textView struct {
	text     []byte
	own      []byte // text's buffer when it is not the bytes themselves
	regions  []escRegion
	raw      []byte // the bytes themselves
	rawSpans []span // matches in raw, reused
	pos      []int  // text offset of each region
	removed  []int  // bytes of the bytes that regions [0, i] do not show in text
}

// separator stands in the text for the opening and terminator of a string
// sequence: its text is not shown next to the text around it.
const separator = 0

// build makes the view of b, whose regions (all within b) are given. The
// text is b itself when b has no regions.
func (v *textView) build(b []byte, regions []escRegion) {
	v.regions, v.raw = regions, b
	v.pos, v.removed = v.pos[:0], v.removed[:0]
	if len(regions) == 0 {
		v.text = b
		return
	}
	text := v.own[:0]
	at, removed := 0, 0
	for _, r := range regions {
		text = append(text, b[at:r.start]...)
		v.pos = append(v.pos, len(text))
		removed += r.end - r.start
		if r.sep {
			text = append(text, separator)
			removed--
		}
		v.removed = append(v.removed, removed)
		at = r.end
	}
	v.text = append(text, b[at:]...)
	v.own = v.text
}

// toBytes maps text offset p to an offset in the bytes. Control sequences
// have no width in the text: after says whether p maps past those at p or
// before them.
func (v *textView) toBytes(p int, after bool) int {
	i := sort.Search(len(v.pos), func(i int) bool { return v.pos[i] >= p })
	b := p
	if i > 0 {
		b += v.removed[i-1]
	}
	for ; after && i < len(v.pos) && v.pos[i] == p && !v.regions[i].sep; i++ {
		b += v.regions[i].end - v.regions[i].start
	}
	return b
}

// toText maps an offset in the bytes to the text; an offset inside a
// region maps to the region's text offset.
func (v *textView) toText(b int) int {
	i := sort.Search(len(v.regions), func(i int) bool { return v.regions[i].end > b })
	if i < len(v.regions) && v.regions[i].start < b {
		return v.pos[i]
	}
	if i > 0 {
		return b - v.removed[i-1]
	}
	return b
}

// find returns the matches of p in the view's text, as offsets in the
// bytes, appending to dst.
func (v *textView) find(p *patternSet, dst []span) []span {
	dst = dst[:0]
	if len(v.regions) == 0 {
		if !p.matchesAny(v.text) {
			return dst
		}
		return p.find(v.text, dst)
	}
	if p.matchesAny(v.text) {
		dst = p.find(v.text, dst)
		for i, sp := range dst {
			dst[i] = v.spanToBytes(sp)
		}
	}
	// A terminal takes the first bytes of "ESC SP AKIA…" into an escape
	// sequence and shows "KIA…", but a log or a file keeps the bytes: they
	// are matched too (renderMasked keeps the escape sequence whole).
	if p.matchesAny(v.raw) {
		v.rawSpans = p.find(v.raw, v.rawSpans)
		dst = mergeSpans(append(dst, v.rawSpans...))
	}
	return dst
}

// spanToBytes maps a span of the text to the bytes.
func (v *textView) spanToBytes(sp span) span {
	if len(v.regions) == 0 {
		return sp
	}
	sp.start, sp.end = v.toBytes(sp.start, true), v.toBytes(sp.end, false)
	sp.fullStart, sp.fullEnd = v.toBytes(sp.fullStart, true), v.toBytes(sp.fullEnd, false)
	return sp
}
