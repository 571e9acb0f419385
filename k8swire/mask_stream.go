package k8swire

import (
	"unicode/utf8"
)

// maxEscapeLen is the longest incomplete terminal escape sequence (an OSC
// hyperlink, say) a StreamMasker holds back to keep it whole.
const maxEscapeLen = 4096

// StreamMasker masks one output stream (stdout or stderr) of an exec or
// attach session by the Masker's value patterns, matched against the text
// a terminal shows: escape sequences do not hide a secret from them.
//
// A secret split over several writes is still masked: the bytes that could
// be the start of a match are held back until later writes say, up to
// MaxPatternLen of them. Past that, they are sent masked on suspicion, and
// the masker follows the patterns' programs to drop what continues the
// match in later writes. Held bytes never end inside a UTF-8 character or
// an escape sequence, and masking never cuts into an escape sequence: those
// within a masked span are kept after the marker, so colours and cursor
// moves still work. So the output is what masking the whole stream at once
// gives, as long as no match is longer than MaxPatternLen.
//
// A StreamMasker is not safe for concurrent use; use one per stream.
type StreamMasker struct {
	p       *patternSet
	maxHold int
	// buf is the last bytes already sent (about one character: the context
	// of assertions such as \b), then the held bytes.
	buf  []byte
	sent int // len of the sent context at the front of buf
	// cont are where matches stand that were sent before they ended.
	// contNext and specNext are where the matches followed on and those
	// sent on suspicion in this write will stand once it is sent.
	cont, contNext, specNext []contState
	holdAt                   []int // per pattern, where text that could become a match starts
	out                      []byte
	spans                    []span
	regions                  []escRegion
	view                     textView
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
	// An incomplete escape sequence at the end is held, and not yet text.
	end, regions := len(buf), s.regions
	if open >= 0 && len(buf)-open <= maxEscapeLen {
		end = open
		for len(regions) > 0 && regions[len(regions)-1].start >= end {
			regions = regions[:len(regions)-1]
		}
	}
	s.match(buf[:end], regions)
	cut := s.cutPoint(buf, end)
	s.follow(cut)
	s.out = renderMasked(s.out[:0], buf, s.sent, cut, s.spans, regions)
	// Keep about a character of context, not starting inside a region.
	keep := max(0, cut-utf8.UTFMax)
	for _, r := range regions {
		if r.start < keep && keep < r.end {
			keep = r.start
		}
	}
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
	s.match(buf, s.regions)
	s.out = renderMasked(s.out[:0], buf, s.sent, len(buf), s.spans, s.regions)
	s.buf, s.sent, s.cont = buf[:0], 0, nil
	return s.out
}

// match finds the spans to mask in b: the rest of the matches sent
// earlier, if any, then the matches of the patterns.
func (s *StreamMasker) match(b []byte, regions []escRegion) {
	v := &s.view
	v.build(b, regions)
	s.spans = v.find(s.p, s.spans)
	s.contNext, s.specNext = s.contNext[:0], s.specNext[:0]
	if len(s.cont) == 0 {
		return
	}
	from := v.toText(s.sent)
	to := from
	for _, st := range s.cont {
		end, alive, next := runProg(s.p.progs[st.pat], st, v.text[from:])
		if alive {
			s.contNext = append(s.contNext, next)
			to = len(v.text)
		} else if end >= 0 {
			to = max(to, from+end)
		}
	}
	if to == from {
		if len(s.contNext) == 0 {
			s.cont = nil
		}
		return
	}
	s.addSpan(v.spanToBytes(span{start: from, end: to, fullStart: from, fullEnd: to, cont: true, open: len(s.contNext) > 0}))
}

// addSpan adds sp to the sorted spans, merging those it overlaps.
func (s *StreamMasker) addSpan(sp span) {
	i := 0
	for i < len(s.spans) && s.spans[i].end <= sp.start {
		i++
	}
	j := i
	for j < len(s.spans) && s.spans[j].start < sp.end {
		o := s.spans[j]
		if o.start < sp.start {
			sp.start, sp.cont = o.start, o.cont
		}
		sp.end, sp.fullStart, sp.fullEnd = max(sp.end, o.end), min(sp.fullStart, o.fullStart), max(sp.fullEnd, o.fullEnd)
		sp.open = sp.open || o.open
		j++
	}
	s.spans = append(s.spans[:i], append([]span{sp}, s.spans[j:]...)...)
}

// cutPoint is where the bytes that can be sent now end: at least s.sent,
// at most end, where an incomplete escape sequence starts.
func (s *StreamMasker) cutPoint(buf []byte, end int) int {
	n, base, v := len(buf), s.sent, &s.view
	cut := max(base, min(end, incompleteRune(buf[:end])))
	// Hold what could still become a match, unless it is too long to hold.
	from, hold := v.toText(base), len(v.text)
	s.holdAt = s.holdAt[:0]
	for i := range s.p.holds {
		c := s.p.holds[i].leftmost(v.text, from, len(v.text))
		s.holdAt = append(s.holdAt, c)
		if c >= 0 {
			hold = min(hold, c)
		}
	}
	if at := v.toBytes(hold, true); hold < len(v.text) && n-at <= s.maxHold {
		cut = max(base, min(cut, at))
	}
	// The bytes are matched too (textView.find): hold what could still
	// become a match of them, such as a secret whose first byte ends an
	// escape sequence.
	if len(v.regions) > 0 {
		for i := range s.p.holds {
			if c := s.p.holds[i].leftmost(v.raw, base, len(v.raw)); c >= 0 && n-c <= s.maxHold {
				cut = max(base, min(cut, c))
			}
		}
	}
	// Never cut between the start of a match and the end of what it masks:
	// hold the match whole, or, if it is too long, send it masked to its
	// end.
	forced := false
	for moved := true; moved; {
		moved = false
		if !forced {
			if c := max(base, s.splitSafe(buf, cut)); c != cut {
				cut, moved = c, true
			}
		}
		for _, sp := range s.spans {
			if max(sp.fullStart, base) < cut && cut < sp.end || sp.open && cut < sp.end {
				c := sp.end
				if !forced && n-sp.fullStart <= s.maxHold {
					c = max(sp.fullStart, base)
				} else {
					forced = true
				}
				if c != cut {
					cut, moved = c, true
					break
				}
			}
		}
	}
	s.suspect(cut)
	return cut
}

// suspect masks, of the text sent now, what could still become a match of
// a pattern, from where that starts, and follows those patterns into the
// next writes.
func (s *StreamMasker) suspect(cut int) {
	v := &s.view
	to := v.toText(cut)
	for i, h := range s.holdAt {
		if h < 0 || h >= to {
			continue
		}
		next, alive := runProgFrom(s.p.progs[i], i, lastRune(v.text[:h]), v.text[h:to])
		if !alive {
			continue
		}
		s.specNext = append(s.specNext, next)
		sp := v.spanToBytes(span{start: h, end: to, fullStart: h, fullEnd: to})
		sp.end, sp.fullEnd = cut, cut
		s.addSpan(sp)
	}
}

// follow updates the matches to follow once the bytes up to cut are sent.
func (s *StreamMasker) follow(cut int) {
	for _, sp := range s.spans {
		if sp.cont && sp.end > cut {
			return // nothing of it went out: follow it as before
		}
	}
	var cont []contState
	if len(s.cont) > 0 {
		cont = append(cont, s.contNext...)
	}
	s.cont = append(cont, s.specNext...)
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
	regions, _ := escapeRegions(b, nil)
	var v textView
	v.build(b, regions)
	spans := v.find(p, nil)
	if len(spans) == 0 {
		return append(dst, b...), false
	}
	return renderMasked(dst, b, 0, len(b), spans, regions), true
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
		if !sp.cont {
			dst = append(dst, MaskMarker...)
		}
		for _, r := range regions[first:ri] {
			if r.start >= start && r.end <= end {
				dst = append(dst, b[r.start:r.end]...)
			}
		}
		at = end
	}
	return append(dst, b[at:to]...)
}
