package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// logLines reads every line of a file sink's files, in the order written.
func logLines(t *testing.T, path string) [][]byte {
	t.Helper()
	files, err := AuditFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for l := range bytes.SplitSeq(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			if len(l) > 0 {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// checkChain checks lines are node's events from seq first on, each
// carrying the hash of the one before.
func checkChain(t *testing.T, lines [][]byte, node string, first uint64) {
	t.Helper()
	prev := ""
	for i, l := range lines {
		var ev auditv1.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if want := FormatAuditID(node, first+uint64(i)); ev.Annotations[AnnotationAuditID] != want {
			t.Errorf("line %d: audit id %q, want %q", i+1, ev.Annotations[AnnotationAuditID], want)
		}
		if i > 0 && ev.Annotations[AnnotationAuditPrev] != prev {
			t.Errorf("line %d: audit-prev %q, want the hash of line %d, %q", i+1, ev.Annotations[AnnotationAuditPrev], i, prev)
		}
		prev = LineHash(l)
	}
}

func writeN(t *testing.T, s *FileSink, n int, tag string) {
	t.Helper()
	for i := range n {
		ev := &auditv1.Event{AuditID: types.UID(fmt.Sprintf("%s-%d", tag, i)), Verb: "get", Level: auditv1.LevelMetadata,
			Annotations: map[string]string{"k": "v"}}
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if len(ev.Annotations) != 1 {
			t.Fatalf("Write changed the caller's event: %v", ev.Annotations)
		}
	}
}

func TestFileSinkChainsEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := NewFileSink(FileConfig{Path: path, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, s, 5, "a")
	if seq, hash := s.Head(); seq != 5 || hash == "" {
		t.Errorf("Head() = %d, %q", seq, hash)
	}
	s.Close()
	lines := logLines(t, path)
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	checkChain(t, lines, "n1", 1)
	if !bytes.Contains(lines[0], []byte(`"kubegate.dev/audit-prev":""`)) {
		t.Errorf("the first event does not carry an empty audit-prev: %s", lines[0])
	}
}

// TestFileSinkChainSurvivesRestartAndRotation: a reopened sink goes on
// from the last event, across rotated files.
func TestFileSinkChainSurvivesRestartAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := range 3 {
		s, err := NewFileSink(FileConfig{Path: path, Node: "n1", MaxSizeBytes: 1500})
		if err != nil {
			t.Fatal(err)
		}
		writeN(t, s, 7, fmt.Sprint(round))
		s.Close()
	}
	files, _ := AuditFiles(path)
	if len(files) < 3 {
		t.Fatalf("%d files, want rotations", len(files))
	}
	lines := logLines(t, path)
	if len(lines) != 21 {
		t.Fatalf("%d lines, want 21", len(lines))
	}
	checkChain(t, lines, "n1", 1)
}

// TestFileSinkDropsIncompleteLine: a line cut short by a crash is removed
// when the sink reopens, and the chain goes on from the last whole event.
func TestFileSinkDropsIncompleteLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := NewFileSink(FileConfig{Path: path, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, s, 2, "a")
	s.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"kind":"Event","annotations":{"kubegate.dev/audit-id":"n1:3"`)
	f.Close()
	s, err = NewFileSink(FileConfig{Path: path, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, s, 2, "b")
	s.Close()
	lines := logLines(t, path)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4: %q", len(lines), lines)
	}
	checkChain(t, lines, "n1", 1)
}
