package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// chainT0 is when the test chains' first event happened.
var chainT0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// chainedEvent is event seq of a test chain: a GET of a pod, a second
// after the one before.
func chainedEvent(node string, seq int) *auditv1.Event {
	at := metav1.NewMicroTime(chainT0.Add(time.Duration(seq) * time.Second))
	return &auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:                    "Metadata",
		AuditID:                  types.UID(fmt.Sprintf("%s-%04d", node, seq)),
		Stage:                    auditv1.StageResponseComplete,
		RequestURI:               fmt.Sprintf("/api/v1/namespaces/dev/pods/web-%d", seq),
		Verb:                     "get",
		User:                     authnv1.UserInfo{Username: "alice@kubegate.test", Groups: []string{"dev"}},
		ObjectRef:                &auditv1.ObjectReference{Resource: "pods", Namespace: "dev", Name: fmt.Sprintf("web-%d", seq), APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: 200},
		RequestReceivedTimestamp: at,
		StageTimestamp:           at,
		Annotations:              map[string]string{AnnotationDecision: "allow"},
	}
}

// chainEvents encodes events as the chain of node, as a FileSink does:
// each gets its audit id, from 1, and the hash of the line before.
func chainEvents(t testing.TB, node string, events ...*auditv1.Event) [][]byte {
	t.Helper()
	var lines [][]byte
	prev := ""
	for i, ev := range events {
		ev = ev.DeepCopy()
		if ev.Annotations == nil {
			ev.Annotations = map[string]string{}
		}
		ev.Annotations[AnnotationAuditID] = FormatAuditID(node, uint64(i+1))
		ev.Annotations[AnnotationAuditPrev] = prev
		line, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
		prev = LineHash(line)
	}
	return lines
}

// smallEvent is a test chain's event with little more than its
// annotations: short lines for the fuzzer to work on.
func smallEvent(node string, seq int) *auditv1.Event {
	return &auditv1.Event{
		Verb:        "get",
		User:        authnv1.UserInfo{Username: "alice"},
		Annotations: map[string]string{},
	}
}

// chainOf is the chain of n test events of node; edit, if not nil,
// changes event seq before it is chained.
func chainOf(t testing.TB, node string, n int, edit func(seq int, ev *auditv1.Event)) [][]byte {
	t.Helper()
	return chainMade(t, chainedEvent, node, n, edit)
}

// chainMade is chainOf with events made by mk.
func chainMade(t testing.TB, mk func(node string, seq int) *auditv1.Event, node string, n int, edit func(seq int, ev *auditv1.Event)) [][]byte {
	t.Helper()
	var events []*auditv1.Event
	for seq := 1; seq <= n; seq++ {
		ev := mk(node, seq)
		if edit != nil {
			edit(seq, ev)
		}
		events = append(events, ev)
	}
	return chainEvents(t, node, events...)
}

// verifyFile is a file or object of event lines.
type verifyFile struct {
	name  string
	lines [][]byte
	// incomplete: the last line has no newline.
	incomplete bool
}

// verifyLines are the lines of files, as a Source yields them.
func verifyLines(files []verifyFile) []Line {
	var out []Line
	for _, f := range files {
		for i, b := range f.lines {
			out = append(out, Line{File: f.name, N: i + 1, Bytes: b, Incomplete: f.incomplete && i == len(f.lines)-1})
		}
	}
	return out
}

// mapRecordings opens recordings from a map of path to content.
type mapRecordings map[string]string

func (m mapRecordings) OpenRecording(_ context.Context, path string) (io.ReadCloser, error) {
	s, ok := m[path]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrRecordingNotFound, path)
	}
	if s == "\x00unreadable" {
		return io.NopCloser(errReader{}), nil
	}
	return io.NopCloser(strings.NewReader(s)), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// problemSummary is a problem as the table tests state it: kind, events
// and where they were found.
func problemSummary(p Problem) string {
	s := string(p.Kind) + " " + strings.Join(p.Events, ",") + " @" + strings.Join(p.Where, ",")
	if p.Kind == ProblemGap {
		s += fmt.Sprintf(" missing %d..%d", p.MissingFrom, p.MissingTo)
	}
	return s
}

// files builds the files of a case from lines.
func one(name string, lines ...[]byte) []verifyFile {
	return []verifyFile{{name: name, lines: lines}}
}

// without returns lines without the ones at the given indexes.
func without(lines [][]byte, drop ...int) [][]byte {
	var out [][]byte
	for i, l := range lines {
		if !containsInt(drop, i) {
			out = append(out, l)
		}
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// editByte returns a copy of line with the first occurrence of old
// replaced by new.
func editByte(t testing.TB, line []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(line, []byte(old)) {
		t.Fatalf("%q is not in %s", old, line)
	}
	return bytes.Replace(line, []byte(old), []byte(new), 1)
}

type verifyCase struct {
	name       string
	files      []verifyFile
	recordings mapRecordings
	want       []string // problemSummary of each problem, in order
	wantNodes  []string // "node first..last events"
	wantDups   int
	wantNotes  int
}

// verifyCases are the table cases, with events made by mk.
func verifyCases(t testing.TB, mk func(node string, seq int) *auditv1.Event) []verifyCase {
	chainOf := func(t testing.TB, node string, n int, edit func(int, *auditv1.Event)) [][]byte {
		return chainMade(t, mk, node, n, edit)
	}
	c := chainOf(t, "n1", 6, nil)
	other := chainOf(t, "n2", 3, nil)
	rec := func(seq int, ev *auditv1.Event) {
		if seq == 2 || seq == 4 {
			ev.Annotations[AnnotationRecording] = fmt.Sprintf("/var/lib/kubegate/recordings/2026-11-23/s%d.cast", seq)
			ev.Annotations[AnnotationRecordingSHA256] = LineHash([]byte(fmt.Sprintf("cast %d", seq)))
		}
	}
	withRec := chainOf(t, "n1", 4, rec)
	recs := mapRecordings{
		"/var/lib/kubegate/recordings/2026-11-23/s2.cast": "cast 2",
		"/var/lib/kubegate/recordings/2026-11-23/s4.cast": "cast 4",
	}
	conflicting := chainOf(t, "n1", 3, func(seq int, ev *auditv1.Event) { ev.Verb = "list" })
	noPrev := func(line []byte) []byte {
		var ev auditv1.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		delete(ev.Annotations, AnnotationAuditPrev)
		b, _ := json.Marshal(&ev)
		return b
	}
	firstWithPrev := chainEvents(t, "n1", mk("n1", 1))[0]
	firstWithPrev = editByte(t, firstWithPrev, `"kubegate.dev/audit-prev":""`, `"kubegate.dev/audit-prev":"00"`)

	return []verifyCase{
		{
			name:      "clean",
			files:     one("audit.log", c...),
			wantNodes: []string{"n1 1..6 6"},
		},
		{
			name: "clean across rotated files",
			files: []verifyFile{
				{name: "audit.log.20261123T090000.000000000Z", lines: c[:2]},
				{name: "audit.log.20261123T090003.000000000Z", lines: c[2:4]},
				{name: "audit.log", lines: c[4:]},
			},
			wantNodes: []string{"n1 1..6 6"},
		},
		{
			name: "an overlapping retried batch is dropped",
			files: []verifyFile{
				{name: "events/n1/a.jsonl", lines: c[:4]},
				{name: "events/n1/b.jsonl", lines: c[2:]},
			},
			wantNodes: []string{"n1 1..6 6"},
			wantDups:  2,
		},
		{
			name:      "two nodes in one file",
			files:     one("audit.log", c[0], other[0], c[1], other[1], other[2], c[2], c[3], c[4], c[5]),
			wantNodes: []string{"n1 1..6 6", "n2 1..3 3"},
		},
		{
			name:      "no audit id",
			files:     one("f", c[0], c[1], []byte(`{"kind":"Event","verb":"get"}`), []byte(`not json`), []byte(`{"annotations":{"kubegate.dev/audit-id":"n1:0"}}`), []byte(""), c[2]),
			want:      []string{"no-audit-id  @f:3", "no-audit-id  @f:4", "no-audit-id  @f:5", "no-audit-id  @f:6"},
			wantNodes: []string{"n1 1..3 3"},
		},
		{
			name:      "same id, different bytes",
			files:     []verifyFile{{name: "a", lines: c[:3]}, {name: "b", lines: [][]byte{conflicting[2]}}, {name: "c", lines: c[3:]}},
			want:      []string{"conflict n1:3 @a:3,b:1"},
			wantNodes: []string{"n1 1..6 6"},
		},
		{
			name:      "a deleted line is a gap",
			files:     one("audit.log", without(c, 2)...),
			want:      []string{"gap n1:2,n1:4 @audit.log:2,audit.log:3 missing 3..3"},
			wantNodes: []string{"n1 1..6 5"},
		},
		{
			name:      "deleted lines are one gap",
			files:     one("audit.log", without(c, 1, 2, 3)...),
			want:      []string{"gap n1:1,n1:5 @audit.log:1,audit.log:2 missing 2..4"},
			wantNodes: []string{"n1 1..6 3"},
		},
		{
			name:      "the chain's start is missing",
			files:     one("audit.log", c[2:]...),
			want:      []string{"gap n1:3 @audit.log:1 missing 1..2"},
			wantNodes: []string{"n1 3..6 4"},
		},
		{
			name:      "one byte changed",
			files:     one("audit.log", c[0], c[1], editByte(t, c[2], "alice", "alicf"), c[3], c[4], c[5]),
			want:      []string{"modified n1:3,n1:4 @audit.log:3,audit.log:4"},
			wantNodes: []string{"n1 1..6 6"},
		},
		{
			name:      "audit-prev removed",
			files:     one("audit.log", c[0], c[1], c[2], noPrev(c[3]), c[4], c[5]),
			want:      []string{"modified n1:4 @audit.log:4", "modified n1:4,n1:5 @audit.log:4,audit.log:5"},
			wantNodes: []string{"n1 1..6 6"},
		},
		{
			name:      "the first event carries audit-prev",
			files:     one("audit.log", firstWithPrev, c[1]),
			want:      []string{"modified n1:1 @audit.log:1", "modified n1:1,n1:2 @audit.log:1,audit.log:2"},
			wantNodes: []string{"n1 1..2 2"},
		},
		{
			name:      "two lines swapped",
			files:     one("audit.log", c[0], c[1], c[3], c[2], c[4], c[5]),
			want:      []string{"reordered n1:3,n1:4 @audit.log:4,audit.log:3"},
			wantNodes: []string{"n1 1..6 6"},
		},
		{
			name:       "recordings verify",
			files:      one("audit.log", withRec...),
			recordings: recs,
			wantNodes:  []string{"n1 1..4 4"},
		},
		{
			name:  "recordings altered and missing",
			files: one("audit.log", withRec...),
			recordings: mapRecordings{
				"/var/lib/kubegate/recordings/2026-11-23/s2.cast": "cast 2, altered",
			},
			want: []string{
				"recording-altered n1:2 @audit.log:2",
				"recording-missing n1:4 @audit.log:4",
			},
			wantNodes: []string{"n1 1..4 4"},
		},
		{
			name:       "recording unreadable",
			files:      one("audit.log", withRec[:2]...),
			recordings: mapRecordings{"/var/lib/kubegate/recordings/2026-11-23/s2.cast": "\x00unreadable"},
			want:       []string{"recording-unreadable n1:2 @audit.log:2"},
			wantNodes:  []string{"n1 1..2 2"},
		},
		{
			name:      "an incomplete last line is left out",
			files:     []verifyFile{{name: "audit.log", lines: [][]byte{c[0], c[1], c[2][:40]}, incomplete: true}},
			wantNodes: []string{"n1 1..2 2"},
			wantNotes: 1,
		},
		{
			name:      "a whole last line without a newline counts",
			files:     []verifyFile{{name: "audit.log", lines: c[:3], incomplete: true}},
			wantNodes: []string{"n1 1..3 3"},
		},
	}
}

func TestVerify(t *testing.T) {
	for _, tc := range verifyCases(t, chainedEvent) {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerifier()
			lines := verifyLines(tc.files)
			for _, l := range lines {
				v.Add(l)
			}
			var recs RecordingOpener
			if tc.recordings != nil {
				recs = tc.recordings
			}
			r, err := v.Finish(context.Background(), recs)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range r.Problems {
				got = append(got, problemSummary(p))
				if p.Detail == "" {
					t.Errorf("%s: no detail", problemSummary(p))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s\nreport: %s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), dumpReport(r))
			}
			if r.OK() != (len(tc.want) == 0) {
				t.Errorf("OK() = %t with %d problems", r.OK(), len(r.Problems))
			}
			var nodes []string
			for _, n := range r.Nodes {
				nodes = append(nodes, fmt.Sprintf("%s %d..%d %d", n.Node, n.First, n.Last, n.Events))
			}
			if strings.Join(nodes, "; ") != strings.Join(tc.wantNodes, "; ") {
				t.Errorf("nodes %q, want %q", nodes, tc.wantNodes)
			}
			if r.Duplicates != tc.wantDups || len(r.Notes) != tc.wantNotes || r.Lines != len(lines) {
				t.Errorf("duplicates %d, notes %q, lines %d; want %d, %d notes, %d lines", r.Duplicates, r.Notes, r.Lines, tc.wantDups, tc.wantNotes, len(lines))
			}
		})
	}
}

func dumpReport(r *Report) string {
	b, _ := json.MarshalIndent(r, "", "  ")
	return string(b)
}

// The head is the hash of the node's last line: what its next event will
// carry.
func TestVerifyHead(t *testing.T) {
	c := chainOf(t, "n1", 3, nil)
	v := NewVerifier()
	for _, l := range verifyLines(one("audit.log", c...)) {
		v.Add(l)
	}
	r, err := v.Finish(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) != 1 || r.Nodes[0].Head != LineHash(c[2]) {
		t.Fatalf("nodes %+v, want head %s", r.Nodes, LineHash(c[2]))
	}
}

// Every byte of an event line is covered: changing any one of them in a
// line that has a successor is reported, and names that line.
func TestVerifyEveryByte(t *testing.T) {
	c := chainOf(t, "n1", 3, nil)
	line := c[1]
	for i := range line {
		edited := bytes.Clone(line)
		edited[i] ^= 0x01
		v := NewVerifier()
		for _, l := range verifyLines(one("audit.log", c[0], edited, c[2])) {
			v.Add(l)
		}
		r, err := v.Finish(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK() {
			t.Fatalf("byte %d (%q) changed: verified", i, line[i])
		}
		named := false
		for _, p := range r.Problems {
			for _, w := range p.Where {
				named = named || w == "audit.log:2"
			}
		}
		if !named {
			t.Fatalf("byte %d (%q) changed: audit.log:2 not named in %s", i, line[i], dumpReport(r))
		}
	}
}

// A cancelled context stops the recordings check.
func TestVerifyFinishCancelled(t *testing.T) {
	v := NewVerifier()
	for _, l := range verifyLines(one("audit.log", chainOf(t, "n1", 2, func(seq int, ev *auditv1.Event) {
		ev.Annotations[AnnotationRecording] = "/r/2026-11-23/s.cast"
		ev.Annotations[AnnotationRecordingSHA256] = "00"
	})...)) {
		v.Add(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Finish(ctx, mapRecordings{}); err == nil {
		t.Fatal("Finish with a cancelled context: no error")
	}
}

// FuzzVerify feeds the verifier any lines: it never panics, and what it
// reports is consistent with what it read. A line "--" starts a new file.
func FuzzVerify(f *testing.F) {
	for _, tc := range verifyCases(f, smallEvent) {
		var b bytes.Buffer
		for i, file := range tc.files {
			if i > 0 {
				b.WriteString("--\n")
			}
			for _, l := range file.lines {
				b.Write(l)
				b.WriteByte('\n')
			}
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v := NewVerifier()
		file, n, lines := 0, 0, 0
		for len(in) > 0 {
			line, rest, found := bytes.Cut(in, []byte{'\n'})
			in = rest
			if string(line) == "--" {
				file, n = file+1, 0
				continue
			}
			n++
			lines++
			v.Add(Line{File: fmt.Sprintf("f%d", file), N: n, Bytes: line, Incomplete: !found})
		}
		r, err := v.Finish(context.Background(), mapRecordings{"/var/lib/kubegate/recordings/2026-11-23/s2.cast": "cast 2"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Lines != lines {
			t.Fatalf("lines %d, read %d", r.Lines, lines)
		}
		events := 0
		for _, node := range r.Nodes {
			if node.First == 0 || node.First > node.Last || node.Events == 0 || uint64(node.Events) > node.Last-node.First+1 {
				t.Fatalf("node %+v", node)
			}
			if uint64(node.Events) < node.Last-node.First+1 || node.First > 1 {
				if !hasKind(r, ProblemGap) {
					t.Fatalf("node %+v has missing events and no gap: %s", node, dumpReport(r))
				}
			}
			events += node.Events
		}
		if events+r.Duplicates > lines {
			t.Fatalf("%d events and %d duplicates from %d lines", events, r.Duplicates, lines)
		}
		for _, p := range r.Problems {
			if p.Kind == "" || p.Detail == "" {
				t.Fatalf("problem %+v", p)
			}
		}
	})
}

func hasKind(r *Report, k ProblemKind) bool {
	for _, p := range r.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}

func BenchmarkVerify(b *testing.B) {
	lines := verifyLines(one("audit.log", chainOf(b, "n1", 10000, nil)...))
	var size int64
	for _, l := range lines {
		size += int64(len(l.Bytes)) + 1
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		v := NewVerifier()
		for _, l := range lines {
			v.Add(l)
		}
		if r, err := v.Finish(context.Background(), nil); err != nil || !r.OK() {
			b.Fatalf("%v %+v", err, r)
		}
	}
}
