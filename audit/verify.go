package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// ProblemKind is what VerifyChain found wrong.
type ProblemKind string

const (
	// ProblemNoAuditID is a line that is not an event carrying a valid
	// AnnotationAuditID.
	ProblemNoAuditID ProblemKind = "no-audit-id"
	// ProblemConflict is two events with the same audit id and different
	// bytes.
	ProblemConflict ProblemKind = "conflict"
	// ProblemGap is a range of sequence numbers no event has: missing
	// events.
	ProblemGap ProblemKind = "gap"
	// ProblemModified is an event whose hash is not the AnnotationAuditPrev
	// the next one carries, or that carries a wrong one itself.
	ProblemModified ProblemKind = "modified"
	// ProblemReordered is an event found after one with a higher sequence
	// number in the same file or object.
	ProblemReordered ProblemKind = "reordered"
	// ProblemRecordingAltered is a recording whose SHA-256 is not the one
	// its event carries in AnnotationRecordingSHA256.
	ProblemRecordingAltered ProblemKind = "recording-altered"
	// ProblemRecordingMissing is a recording an event names that does not
	// exist.
	ProblemRecordingMissing ProblemKind = "recording-missing"
	// ProblemRecordingUnreadable is a recording that exists and could not
	// be read.
	ProblemRecordingUnreadable ProblemKind = "recording-unreadable"
)

// Problem is one thing wrong with the stored events.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Node is the node whose chain it is in; "" for a line without an
	// audit id.
	Node string `json:"node,omitempty"`
	// Events are the audit ids of the events concerned; for a gap, the
	// events either side of it.
	Events []string `json:"events,omitempty"`
	// Where is where each of Events was found (file:line or key:line), or
	// the line that is not an event.
	Where []string `json:"where,omitempty"`
	// MissingFrom and MissingTo are a gap's missing sequence numbers,
	// both included.
	MissingFrom uint64 `json:"missingFrom,omitempty"`
	MissingTo   uint64 `json:"missingTo,omitempty"`
	// Recording is the recording's path, as its event names it.
	Recording string `json:"recording,omitempty"`
	// Detail says what is wrong.
	Detail string `json:"detail"`

	seq uint64 // orders a node's problems
}

func (p Problem) String() string { return string(p.Kind) + ": " + p.Detail }

// NodeChain summarises one node's chain as read.
type NodeChain struct {
	Node string `json:"node"`
	// First and Last are the lowest and highest sequence numbers read.
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
	// Events is the number of distinct audit ids read.
	Events int `json:"events"`
	// Head is the hash of the event with the highest sequence number: the
	// AnnotationAuditPrev the node's next event will carry.
	Head string `json:"head"`
}

// Report is what VerifyChain found.
type Report struct {
	// Nodes are the chains read, by node name.
	Nodes []NodeChain `json:"nodes"`
	// Problems are everything wrong, each naming the events concerned.
	// None means the events verify.
	Problems []Problem `json:"problems"`
	// Notes are things that are not wrong but worth knowing, such as an
	// incomplete last line left out.
	Notes []string `json:"notes,omitempty"`
	// Lines is the number of lines read, Duplicates the number of those
	// dropped as exact copies of another (same audit id, same bytes).
	Lines      int `json:"lines"`
	Duplicates int `json:"duplicates"`
	// Recordings is the number of distinct recordings checked.
	Recordings int `json:"recordings"`
}

// OK reports whether the events verify: no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// RecordingOpener opens recordings by the path an event names in its
// AnnotationRecording.
type RecordingOpener interface {
	// OpenRecording opens the recording at path. One that does not exist
	// is an error matching ErrRecordingNotFound.
	OpenRecording(ctx context.Context, path string) (io.ReadCloser, error)
}

// VerifyChain checks every event src holds (see AnnotationAuditID) and
// every recording they name. Its error is one reading src; what is wrong
// with the events is in the report.
func VerifyChain(ctx context.Context, src Source) (*Report, error) {
	v := NewVerifier()
	for l, err := range src.Lines(ctx) {
		if err != nil {
			return nil, err
		}
		v.Add(l)
	}
	return v.Finish(ctx, src)
}

// Verifier checks the hash chains of event lines, and the recordings the
// events name. Add each line in the order it was read, then call Finish.
// It keeps under a hundred bytes per event, not the lines. It does no I/O
// of its own.
type Verifier struct {
	files    []string // the File of every entry's file index
	nodes    map[string]*nodeEntries
	problems []Problem // lines without an audit id, reordered events
	notes    []string
	recs     []recordingRef
	lines    int

	// Within the file being read: each node's previous entry.
	prevInFile map[string]chainEntry
}

type nodeEntries struct{ entries []chainEntry }

// chainEntry is what the verifier keeps of an event.
type chainEntry struct {
	seq       uint64
	hash      [sha256.Size]byte
	prev      [sha256.Size]byte
	prevState uint8 // prevNone, prevSet or prevBad
	file      uint32
	line      uint32
}

const (
	prevNone = iota
	prevSet
	prevBad
)

type recordingRef struct {
	path, sum, id, where string
}

// NewVerifier returns an empty Verifier.
func NewVerifier() *Verifier {
	return &Verifier{nodes: map[string]*nodeEntries{}, prevInFile: map[string]chainEntry{}}
}

// Add takes the next line read.
func (v *Verifier) Add(l Line) {
	v.lines++
	if len(v.files) == 0 || v.files[len(v.files)-1] != l.File {
		v.files = append(v.files, l.File)
		clear(v.prevInFile)
	}
	where := l.Where()
	var ev struct {
		Annotations map[string]string `json:"annotations"`
	}
	if len(bytes.TrimSpace(l.Bytes)) == 0 {
		v.noID(where, "empty line")
		return
	}
	if err := json.Unmarshal(l.Bytes, &ev); err != nil {
		if l.Incomplete {
			v.notes = append(v.notes, where+": incomplete last line left out (a write in progress, or cut short)")
			return
		}
		v.noID(where, "not a JSON audit event: "+err.Error())
		return
	}
	id := ev.Annotations[AnnotationAuditID]
	if id == "" {
		v.noID(where, "event has no "+AnnotationAuditID+" annotation")
		return
	}
	node, seq, err := ParseAuditID(id)
	if err != nil {
		v.noID(where, err.Error())
		return
	}
	e := chainEntry{seq: seq, file: uint32(len(v.files) - 1), line: uint32(l.N)}
	e.hash = sha256.Sum256(trimNewline(l.Bytes)) // LineHash, not hex-encoded
	switch prev := ev.Annotations[AnnotationAuditPrev]; {
	case prev == "":
		e.prevState = prevNone
	case len(prev) == hex.EncodedLen(sha256.Size):
		if _, err := hex.Decode(e.prev[:], []byte(prev)); err == nil {
			e.prevState = prevSet
		} else {
			e.prevState = prevBad
		}
	default:
		e.prevState = prevBad
	}
	n := v.nodes[node]
	if n == nil {
		n = &nodeEntries{}
		v.nodes[node] = n
	}
	n.entries = append(n.entries, e)

	if before, ok := v.prevInFile[node]; ok && seq < before.seq {
		v.problems = append(v.problems, Problem{
			Kind:   ProblemReordered,
			Node:   node,
			Events: []string{id, FormatAuditID(node, before.seq)},
			Where:  []string{where, v.where(before)},
			Detail: fmt.Sprintf("%s at %s comes after %s at %s", id, where, FormatAuditID(node, before.seq), v.where(before)),
			seq:    seq,
		})
	}
	v.prevInFile[node] = e

	if path, sum := ev.Annotations[AnnotationRecording], ev.Annotations[AnnotationRecordingSHA256]; path != "" && sum != "" {
		v.recs = append(v.recs, recordingRef{path: path, sum: sum, id: id, where: where})
	}
}

func (v *Verifier) noID(where, detail string) {
	v.problems = append(v.problems, Problem{Kind: ProblemNoAuditID, Where: []string{where}, Detail: where + ": " + detail})
}

func (v *Verifier) where(e chainEntry) string {
	return v.files[e.file] + ":" + strconv.FormatUint(uint64(e.line), 10)
}

// Finish checks the chains of the lines added and the recordings their
// events name, opened with recs (nil: none checked), and reports. Its
// error is ctx's.
func (v *Verifier) Finish(ctx context.Context, recs RecordingOpener) (*Report, error) {
	r := &Report{Lines: v.lines, Notes: v.notes, Problems: []Problem{}}
	r.Problems = append(r.Problems, v.problems...)
	for _, node := range slices.Sorted(maps.Keys(v.nodes)) {
		v.checkNode(r, node, v.nodes[node].entries)
	}
	// Lines without an audit id first, in the order read; then by node
	// and sequence number.
	slices.SortStableFunc(r.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.seq, b.seq))
	})
	if recs != nil {
		if err := v.checkRecordings(ctx, r, recs); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// checkNode checks one node's chain: duplicates and conflicts, gaps, and
// the link from each event to the next.
func (v *Verifier) checkNode(r *Report, node string, es []chainEntry) {
	slices.SortStableFunc(es, func(a, b chainEntry) int { return cmp.Compare(a.seq, b.seq) })
	id := func(seq uint64) string { return FormatAuditID(node, seq) }
	add := func(p Problem) {
		p.Node = node
		r.Problems = append(r.Problems, p)
	}
	var prev []chainEntry // the variants of the previous sequence number
	chain := NodeChain{Node: node, First: es[0].seq}
	if first := es[0]; first.seq > 1 {
		add(Problem{
			Kind: ProblemGap, Events: []string{id(first.seq)}, Where: []string{v.where(first)},
			MissingFrom: 1, MissingTo: first.seq - 1,
			Detail: fmt.Sprintf("%s missing: the first event read is %s at %s", seqRange(node, 1, first.seq-1), id(first.seq), v.where(first)),
		})
	}
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].seq == es[i].seq {
			j++
		}
		group := v.distinct(r, es[i:j])
		seq := group[0].seq
		if len(group) > 1 {
			var where []string
			for _, e := range group {
				where = append(where, v.where(e))
			}
			add(Problem{
				Kind: ProblemConflict, Events: []string{id(seq)}, Where: where, seq: seq,
				Detail: fmt.Sprintf("%s has different bytes at %s", id(seq), strings.Join(where, " and ")),
			})
		}
		switch {
		case seq == 1:
			for _, e := range group {
				if e.prevState != prevNone {
					add(Problem{
						Kind: ProblemModified, Events: []string{id(seq)}, Where: []string{v.where(e)}, seq: seq,
						Detail: fmt.Sprintf("%s at %s carries %s, and the first event of a chain carries none", id(seq), v.where(e), AnnotationAuditPrev),
					})
				}
			}
		case prev != nil && prev[0].seq+1 < seq:
			before, after := prev[0], group[0]
			add(Problem{
				Kind: ProblemGap, Events: []string{id(before.seq), id(seq)}, Where: []string{v.where(before), v.where(after)},
				MissingFrom: before.seq + 1, MissingTo: seq - 1, seq: before.seq + 1,
				Detail: fmt.Sprintf("%s missing, between %s at %s and %s at %s",
					seqRange(node, before.seq+1, seq-1), id(before.seq), v.where(before), id(seq), v.where(after)),
			})
		case prev != nil:
			v.checkLink(node, prev, group, add)
		}
		chain.Events++
		chain.Last = seq
		chain.Head = hex.EncodeToString(group[0].hash[:])
		prev = group
		i = j
	}
	r.Nodes = append(r.Nodes, chain)
}

// distinct drops the exact copies among the entries of one sequence
// number, counting them.
func (v *Verifier) distinct(r *Report, group []chainEntry) []chainEntry {
	out := group[:1]
	for _, e := range group[1:] {
		if slices.ContainsFunc(out, func(o chainEntry) bool { return o.hash == e.hash }) {
			r.Duplicates++
			continue
		}
		out = append(out, e)
	}
	return out
}

// checkLink checks that an event of the next sequence number carries the
// hash of an event of the previous one.
func (v *Verifier) checkLink(node string, prev, next []chainEntry, add func(Problem)) {
	for _, n := range next {
		if n.prevState != prevSet {
			what := "no"
			if n.prevState == prevBad {
				what = "a malformed"
			}
			add(Problem{
				Kind: ProblemModified, Events: []string{FormatAuditID(node, n.seq)}, Where: []string{v.where(n)}, seq: n.seq,
				Detail: fmt.Sprintf("%s at %s carries %s %s", FormatAuditID(node, n.seq), v.where(n), what, AnnotationAuditPrev),
			})
			return
		}
	}
	for _, p := range prev {
		for _, n := range next {
			if n.prevState == prevSet && n.prev == p.hash {
				return
			}
		}
	}
	p, n := prev[0], next[0]
	pid, nid := FormatAuditID(node, p.seq), FormatAuditID(node, n.seq)
	add(Problem{
		Kind: ProblemModified, Events: []string{pid, nid}, Where: []string{v.where(p), v.where(n)}, seq: p.seq,
		Detail: fmt.Sprintf("%s at %s: its hash %s is not the %s that %s at %s carries",
			pid, v.where(p), short(hex.EncodeToString(p.hash[:])), AnnotationAuditPrev, nid, v.where(n)),
	})
}

// checkRecordings hashes every distinct recording the events name.
func (v *Verifier) checkRecordings(ctx context.Context, r *Report, recs RecordingOpener) error {
	seen := map[recordingRef]bool{}
	for _, ref := range v.recs {
		key := recordingRef{path: ref.path, sum: strings.ToLower(ref.sum)}
		if seen[key] {
			continue
		}
		seen[key] = true
		r.Recordings++
		got, err := hashRecording(ctx, recs, ref.path)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		p := Problem{Events: []string{ref.id}, Where: []string{ref.where}, Recording: ref.path}
		switch {
		case errors.Is(err, ErrRecordingNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrObjectNotFound):
			p.Kind = ProblemRecordingMissing
			p.Detail = fmt.Sprintf("recording %s of %s at %s does not exist", ref.path, ref.id, ref.where)
		case err != nil:
			p.Kind = ProblemRecordingUnreadable
			p.Detail = fmt.Sprintf("recording %s of %s at %s: %v", ref.path, ref.id, ref.where, err)
		case got != key.sum:
			p.Kind = ProblemRecordingAltered
			p.Detail = fmt.Sprintf("recording %s of %s at %s has sha256 %s, and the event says %s", ref.path, ref.id, ref.where, short(got), short(key.sum))
		default:
			continue
		}
		r.Problems = append(r.Problems, p)
	}
	return nil
}

func hashRecording(ctx context.Context, recs RecordingOpener, path string) (string, error) {
	rc, err := recs.OpenRecording(ctx, path)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// seqRange names the events from seq from to seq to of node.
func seqRange(node string, from, to uint64) string {
	if from == to {
		return "event " + FormatAuditID(node, from)
	}
	return fmt.Sprintf("events %s..%d (%d)", FormatAuditID(node, from), to, to-from+1)
}

// short abbreviates a hex hash for a message.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
