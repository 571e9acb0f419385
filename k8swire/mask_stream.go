package k8swire

import (
	"bytes"
	"unicode/utf8"
)

// maxEscapeLen is the longest incomplete terminal escape sequence (an OSC
// hyperlink, say) a StreamMasker holds back to keep it whole.
const maxEscapeLen = 4096

// StreamMasker masks one output stream (stdout or stderr) of an exec or
// attach session by the Masker's value patterns. A secret split over
// several writes is still masked: the bytes that could be the start of a
// match are held back until the next write says, up to MaxPatternLen of
// them. Held bytes never end inside a UTF-8 character or a terminal escape
// sequence, and masking never cuts into an escape sequence: the escape
// sequences within a masked span are kept after the marker, so colours and
// cursor moves still work. Output is what masking the whole stream at once
// would give, as long as no match is longer than MaxPatternLen.
//
// A StreamMasker is not safe for concurrent use; use one per stream.
type StreamMasker struct {
	p       *patternSet
	maxHold int
	// buf is the last bytes already sent (up to one UTF-8 character, the
	// context of assertions such as \b), then the held bytes.
	buf     []byte
	sent    int // len of the sent context at the front of buf
	out     []byte
	spans   []span
	regions []escRegion
}

// NewStreamMasker returns a StreamMasker for one stream. Without patterns
// it passes everything through.
func (m *Masker) NewStreamMasker() *StreamMasker {
	return &StreamMasker{p: m.patterns, maxHold: m.maxPatternLen}
}

// Write masks p, following what earlier writes held back, and returns the
// bytes that are ready to send; it may return none. The result is valid
// until the next Write or Flush, and may be p itself.
func (s *StreamMasker) Write(p []byte) []byte {
	if s.p == nil {
		return p
	}
	buf := append(s.buf, p...)
	var open int
	s.regions, open = escapeRegions(buf, s.regions[:0])
	s.spans = s.spans[:0]
	if s.p.matchesAny(buf) {
		s.spans = s.p.find(buf, s.spans)
	}
	cut := s.cutPoint(buf, open)
	s.out = renderMasked(s.out[:0], buf, s.sent, cut, s.spans, s.regions)
	keep := max(0, cut-utf8.UTFMax)
	s.buf, s.sent = buf[:copy(buf, buf[keep:])], cut-keep
	return s.out
}

// Flush returns the held-back bytes, masked. Call it when the stream ends.
// The result is valid until the next Write or Flush.
func (s *StreamMasker) Flush() []byte {
	if s.p == nil || len(s.buf) == s.sent {
		return nil
	}
	buf := s.buf
	s.regions, _ = escapeRegions(buf, s.regions[:0])
	s.spans = s.p.find(buf, s.spans)
	s.out = renderMasked(s.out[:0], buf, s.sent, len(buf), s.spans, s.regions)
	s.buf, s.sent = buf[:0], 0
	return s.out
}

// cutPoint is where the bytes that can be sent now end: at least s.sent.
func (s *StreamMasker) cutPoint(buf []byte, open int) int {
	n, base := len(buf), s.sent
	cut := n
	from := max(base, n-s.maxHold)
	if loc := s.p.hold.FindIndex(buf[from:]); loc != nil {
		cut = from + loc[0]
	}
	if open >= 0 && n-open <= maxEscapeLen {
		cut = min(cut, open)
	}
	cut = max(base, min(cut, incompleteRune(buf)))
	// Never cut between the start of a match and the end of what it masks:
	// hold the match whole, or, once it is longer than the limit, send it
	// masked to its end.
	forced := false
	for moved := true; moved; {
		moved = false
		if !forced {
			if c := max(base, s.splitSafe(buf, cut)); c != cut {
				cut, moved = c, true
			}
		}
		for _, sp := range s.spans {
			if max(sp.fullStart, base) < cut && cut < sp.end {
				if !forced && n-sp.fullStart <= s.maxHold {
					cut = max(sp.fullStart, base)
				} else {
					cut, forced = sp.end, true
				}
				moved = true
				break
			}
		}
	}
	return cut
}

// splitSafe moves cut back out of an escape sequence or UTF-8 character it
// would split.
func (s *StreamMasker) splitSafe(buf []byte, cut int) int {
	for i := len(s.regions) - 1; i >= 0; i-- {
		r := s.regions[i]
		if r.end <= cut {
			break
		}
		if r.start < cut {
			cut = r.start
		}
	}
	if cut <= 0 || cut >= len(buf) || utf8.RuneStart(buf[cut]) {
		return cut
	}
	for k := 1; k <= utf8.UTFMax-1 && cut-k >= 0; k++ {
		if utf8.RuneStart(buf[cut-k]) {
			if _, size := utf8.DecodeRune(buf[cut-k:]); size > k {
				return cut - k
			}
			break
		}
	}
	return cut
}

// incompleteRune is where an incomplete UTF-8 character at the end of buf
// starts, or len(buf).
func incompleteRune(buf []byte) int {
	for j := len(buf) - 1; j >= 0 && j >= len(buf)-(utf8.UTFMax-1); j-- {
		if utf8.RuneStart(buf[j]) {
			if !utf8.FullRune(buf[j:]) {
				return j
			}
			break
		}
	}
	return len(buf)
}

// maskText masks a complete text, appending to dst.
func (p *patternSet) maskText(dst, b []byte) ([]byte, bool) {
	if !p.matchesAny(b) {
		return append(dst, b...), false
	}
	spans := p.find(b, nil)
	regions, _ := escapeRegions(b, nil)
	return renderMasked(dst, b, 0, len(b), spans, regions), len(spans) > 0
}

// renderMasked appends b[from:to] to dst with every span within it
// replaced by MaskMarker followed by the escape sequences inside the span.
// A span is shrunk so that it neither starts before from nor starts or ends
// inside an escape sequence.
func renderMasked(dst, b []byte, from, to int, spans []span, regions []escRegion) []byte {
	at, ri := from, 0
	for _, sp := range spans {
		if sp.end > to {
			break
		}
		start, end := max(sp.start, from), sp.end
		for ri < len(regions) && regions[ri].end <= start {
			ri++
		}
		if ri < len(regions) && regions[ri].start < start {
			start = regions[ri].end
		}
		first := ri
		for ri < len(regions) && regions[ri].end <= end {
			ri++
		}
		if ri < len(regions) && regions[ri].start < end {
			end = regions[ri].start
		}
		if start >= end || start < at {
			continue
		}
		dst = append(dst, b[at:start]...)
		dst = append(dst, MaskMarker...)
		for _, r := range regions[first:ri] {
			if r.start >= start && r.end <= end {
				dst = append(dst, b[r.start:r.end]...)
			}
		}
		at = end
	}
	return append(dst, b[at:to]...)
}

// escRegion is the extent of something a masker must keep whole: a
// control sequence, or the opening or terminator of a string sequence
// (OSC, DCS, SOS, PM, APC), whose text in between may be masked.
type escRegion struct{ start, end int }

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
			dst = append(dst, escRegion{a, j})
			i = j
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_': // string sequences
			dst = append(dst, escRegion{a, a + 2})
			t := bytes.IndexAny(b[a+2:], "\x07\x1b")
			if t < 0 {
				return dst, a
			}
			t += a + 2
			switch {
			case b[t] == 0x07:
				dst = append(dst, escRegion{t, t + 1})
				i = t + 1
			case t+1 == n:
				return dst, a
			case b[t+1] == '\\':
				dst = append(dst, escRegion{t, t + 2})
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
			dst = append(dst, escRegion{a, j})
			i = j
		case c >= 0x30 && c <= 0x7e:
			dst = append(dst, escRegion{a, a + 2})
			i = a + 2
		default:
			dst = append(dst, escRegion{a, a + 1})
			i = a + 1
		}
	}
	return dst, -1
}
