package k8swire

import (
	"regexp/syntax"
	"slices"
	"unicode/utf8"
)

// This file runs one pattern's program step by step, so a StreamMasker can
// follow a match that it had to send before the match ended into the next
// writes: what continues it is dropped too.

// contState is where a pattern's match stands after the text sent so far.
type contState struct {
	pat     int
	pending []uint32 // instructions to follow with the next rune
	prev    rune     // the last rune consumed
}

// allEmpty satisfies every empty-width assertion.
const allEmpty = syntax.EmptyBeginLine | syntax.EmptyEndLine | syntax.EmptyBeginText |
	syntax.EmptyEndText | syntax.EmptyWordBoundary | syntax.EmptyNoWordBoundary

// runProg continues st over text. It returns where the longest match ends
// in text (-1 if nowhere), whether the match could still go on after
// text, and the state after text.
func runProg(prog *syntax.Prog, st contState, text []byte) (matchEnd int, alive bool, next contState) {
	return run(prog, st, text, false)
}

// runProgFrom runs pattern pat over text, after rune prev (-1 at the start
// of the text), with a match starting at every position of text, and
// returns the state after text and whether any could still go on.
func runProgFrom(prog *syntax.Prog, pat int, prev rune, text []byte) (contState, bool) {
	_, alive, next := run(prog, contState{pat: pat, prev: prev}, text, true)
	return next, alive
}

func run(prog *syntax.Prog, st contState, text []byte, startEverywhere bool) (matchEnd int, alive bool, next contState) {
	seen := &visited{marks: make([]uint32, len(prog.Inst))}
	var clist, stack []uint32
	pending, spare := slices.Clone(st.pending), []uint32(nil)
	prev := st.prev
	matchEnd = -1
	for pos := 0; pos < len(text); {
		r, size := utf8.DecodeRune(text[pos:])
		if startEverywhere {
			pending = append(pending, uint32(prog.Start))
		}
		clist, stack = closure(prog, clist[:0], stack, seen, pending, syntax.EmptyOpContext(prev, r))
		next := spare[:0]
		for _, pc := range clist {
			inst := &prog.Inst[pc]
			if inst.Op == syntax.InstMatch {
				matchEnd = pos
			} else if matchesRune(inst, r) {
				next = append(next, inst.Out)
			}
		}
		if len(next) == 0 && !startEverywhere {
			return matchEnd, false, contState{}
		}
		pending, spare, prev = next, pending, r
		pos += size
	}
	// The next rune is not known yet: assume any assertion may hold.
	clist, _ = closure(prog, clist[:0], stack, seen, pending, allEmpty)
	for _, pc := range clist {
		if prog.Inst[pc].Op == syntax.InstMatch {
			matchEnd = len(text)
		} else {
			alive = true
		}
	}
	return matchEnd, alive, contState{pat: st.pat, pending: slices.Clone(pending), prev: prev}
}

// visited marks instructions seen in one closure: those whose mark is gen.
type visited struct {
	marks []uint32
	gen   uint32
}

// closure appends the rune and match instructions reachable from pcs by
// empty transitions allowed in ctx; stack is scratch space, returned for
// reuse.
func closure(prog *syntax.Prog, dst, stack []uint32, seen *visited, pcs []uint32, ctx syntax.EmptyOp) ([]uint32, []uint32) {
	seen.gen++
	stack = append(stack[:0], pcs...)
	for len(stack) > 0 {
		pc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen.marks[pc] == seen.gen {
			continue
		}
		seen.marks[pc] = seen.gen
		inst := &prog.Inst[pc]
		switch inst.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, inst.Out, inst.Arg)
		case syntax.InstNop, syntax.InstCapture:
			stack = append(stack, inst.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(inst.Arg)&^ctx == 0 {
				stack = append(stack, inst.Out)
			}
		case syntax.InstFail:
		default:
			dst = append(dst, pc)
		}
	}
	return dst, stack
}

func matchesRune(inst *syntax.Inst, r rune) bool {
	switch inst.Op {
	case syntax.InstRune:
		return inst.MatchRune(r)
	case syntax.InstRune1:
		return r == inst.Rune[0]
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	}
	return false
}

// lastRune is the last rune of b, or -1 if b is empty.
func lastRune(b []byte) rune {
	if len(b) == 0 {
		return -1
	}
	r, _ := utf8.DecodeLastRune(b)
	return r
}
