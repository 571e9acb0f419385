package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sinkLog writes n chained test events with a real FileSink into
// dir/audit.log, rotating every few events, and returns the lines in
// the order written.
func sinkLog(t *testing.T, dir string, n int) [][]byte {
	t.Helper()
	now := chainT0
	s, err := NewFileSink(FileConfig{
		Path:         filepath.Join(dir, "audit.log"),
		MaxSizeBytes: 2048,
		Node:         "n1",
		Now: func() time.Time {
			now = now.Add(time.Second)
			return now
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for seq := 1; seq <= n; seq++ {
		if err := s.Write(context.Background(), chainedEvent("n1", seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return logLines(t, filepath.Join(dir, "audit.log"))
}

func readAll(t *testing.T, src Source) []Line {
	t.Helper()
	var out []Line
	for l, err := range src.Lines(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func TestFileSourceReadsRotatedFilesInOrder(t *testing.T) {
	dir := t.TempDir()
	want := sinkLog(t, dir, 12)
	files, err := AuditFiles(filepath.Join(dir, "audit.log"))
	if err != nil || len(files) < 3 {
		t.Fatalf("files %v, %v: want rotated files", files, err)
	}
	for _, from := range []string{dir, filepath.Join(dir, "audit.log")} {
		src, err := NewFileSource(from, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(src.Files(), files) {
			t.Errorf("from %s: files %v, want %v", from, src.Files(), files)
		}
		got := readAll(t, src)
		if len(got) != len(want) {
			t.Fatalf("from %s: %d lines, want %d", from, len(got), len(want))
		}
		for i, l := range got {
			if !bytes.Equal(l.Bytes, want[i]) || l.Incomplete {
				t.Fatalf("from %s: line %d = %s (incomplete %t), want %s", from, i, l.Bytes, l.Incomplete, want[i])
			}
		}
		if first := got[0].Where(); first != files[0]+":1" {
			t.Errorf("first line at %s, want %s:1", first, files[0])
		}
		if last := got[len(got)-1]; last.File != files[len(files)-1] {
			t.Errorf("last line in %s, want %s", last.File, files[len(files)-1])
		}
	}
	// A rotated file's own path reads that file alone.
	src, err := NewFileSource(files[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, src); len(got) == 0 || len(got) >= len(want) || got[0].File != files[0] {
		t.Errorf("rotated file alone: %d lines from %v", len(got), src.Files())
	}
}

func TestFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewFileSource(dir, ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory: %v, want not exist", err)
	}
	if _, err := NewFileSource(filepath.Join(dir, "nope.log"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want not exist", err)
	}
}

func TestFileSourceIncompleteLastLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(path, []byte("{\"a\":1}\r\n\n{\"b\""), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := NewFileSource(path, "")
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, src)
	want := []Line{
		{File: path, N: 1, Bytes: []byte(`{"a":1}`)},
		{File: path, N: 2, Bytes: []byte{}},
		{File: path, N: 3, Bytes: []byte(`{"b"`), Incomplete: true},
	}
	if len(got) != len(want) {
		t.Fatalf("lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Where() != want[i].Where() || !bytes.Equal(got[i].Bytes, want[i].Bytes) || got[i].Incomplete != want[i].Incomplete {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Stopping early, or a cancelled context, ends the read.
func TestSourceLinesStop(t *testing.T) {
	dir := t.TempDir()
	sinkLog(t, dir, 12)
	src, err := NewFileSource(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range src.Lines(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var last error
	for _, err := range src.Lines(ctx) {
		last = err
	}
	if !errors.Is(last, context.Canceled) {
		t.Errorf("cancelled read ended with %v", last)
	}
}

func TestFileSourceOpenRecording(t *testing.T) {
	dir := t.TempDir()
	node := filepath.Join(dir, "node", "2026-11-23", "s1.cast")
	copied := filepath.Join(dir, "copy", "2026-11-23", "s1.cast")
	for path, content := range map[string]string{node: "on the node", copied: "a copy"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "audit.log"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		recordings, path, want string
		missing                bool
	}{
		{"", node, "on the node", false},
		{filepath.Join(dir, "copy"), node, "a copy", false},
		{filepath.Join(dir, "copy"), "/elsewhere/2026-11-23/s1.cast", "a copy", false},
		{"", filepath.Join(dir, "node", "2026-11-23", "s2.cast"), "", true},
		{filepath.Join(dir, "copy"), "/elsewhere/2026-11-24/s1.cast", "", true},
		{filepath.Join(dir, "copy"), "s1.cast", "", true},
	} {
		src, err := NewFileSource(dir, tc.recordings)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := src.OpenRecording(context.Background(), tc.path)
		if tc.missing {
			if !errors.Is(err, ErrRecordingNotFound) {
				t.Errorf("recordings %q, %s: %v, want ErrRecordingNotFound", tc.recordings, tc.path, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("recordings %q, %s: %v", tc.recordings, tc.path, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != tc.want {
			t.Errorf("recordings %q, %s: read %q, want %q", tc.recordings, tc.path, b, tc.want)
		}
	}
}

func TestStoreSource(t *testing.T) {
	c := chainOf(t, "n1", 5, nil)
	other := chainOf(t, "n2", 2, nil)
	st := &memStore{}
	st.put("events/n1/00000000000000000003-00000000000000000005.jsonl", c[2:]...)
	st.put("events/n1/00000000000000000001-00000000000000000002.jsonl", c[:2]...)
	st.put("events/n2/00000000000000000001-00000000000000000002.jsonl", other...)
	st.put("recordings/2026-11-23/s1.cast", []byte("cast"))
	src := NewStoreSource(st)
	var got []string
	for _, l := range readAll(t, src) {
		got = append(got, l.Where())
	}
	want := []string{
		"events/n1/00000000000000000001-00000000000000000002.jsonl:1",
		"events/n1/00000000000000000001-00000000000000000002.jsonl:2",
		"events/n1/00000000000000000003-00000000000000000005.jsonl:1",
		"events/n1/00000000000000000003-00000000000000000005.jsonl:2",
		"events/n1/00000000000000000003-00000000000000000005.jsonl:3",
		"events/n2/00000000000000000001-00000000000000000002.jsonl:1",
		"events/n2/00000000000000000001-00000000000000000002.jsonl:2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lines at\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rc, err := src.OpenRecording(context.Background(), "/var/lib/kubegate/recordings/2026-11-23/s1.cast")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "cast\n" {
		t.Errorf("recording %q", b)
	}
	if _, err := src.OpenRecording(context.Background(), "/var/lib/kubegate/recordings/2026-11-23/s2.cast"); !errors.Is(err, ErrRecordingNotFound) {
		t.Errorf("missing recording: %v, want ErrRecordingNotFound", err)
	}
	r, err := VerifyChain(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Nodes) != 2 {
		t.Errorf("report %s", dumpReport(r))
	}
}

// VerifyChain reads the files a real FileSink wrote, across rotations,
// and names a line edited on disk.
func TestVerifyChainFileSink(t *testing.T) {
	dir := t.TempDir()
	lines := sinkLog(t, dir, 12)
	src, err := NewFileSource(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := VerifyChain(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Nodes) != 1 || r.Nodes[0].Events != 12 || r.Nodes[0].Head != LineHash(lines[11]) {
		t.Fatalf("report %s", dumpReport(r))
	}

	// Edit event 5 where it is stored.
	var where string
	for l, err := range src.Lines(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(l.Bytes, []byte(`"kubegate.dev/audit-id":"n1:5"`)) {
			where = l.Where()
			b, err := os.ReadFile(l.File)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, l.Bytes, bytes.Replace(l.Bytes, []byte("web-5"), []byte("web-6"), 1), 1)
			if err := os.WriteFile(l.File, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err = VerifyChain(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || r.Problems[0].Kind != ProblemModified || r.Problems[0].Events[0] != "n1:5" || r.Problems[0].Where[0] != where {
		t.Fatalf("after editing n1:5 at %s: %s", where, dumpReport(r))
	}
}

// A node restarted after a crash verifies: the sink goes on from its last
// whole event. A line cut short at the end of the newest file (a crash, or
// a write in progress) is left out with a note.
func TestVerifyChainAfterRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	seq := 0
	write := func(n int) {
		s, err := NewFileSink(FileConfig{Path: path, Node: "n1", MaxSizeBytes: 3000})
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			seq++
			if err := s.Write(context.Background(), chainedEvent("n1", seq)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tear := func() {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(`{"kind":"Event","annotations":{"kubegate.dev/audit-id":"n1:`); err != nil {
			t.Fatal(err)
		}
	}
	write(5)
	tear()
	write(5)
	tear()
	src, err := NewFileSource(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := VerifyChain(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Nodes) != 1 || r.Nodes[0].Events != 10 || len(r.Notes) != 1 {
		t.Fatalf("report %s", dumpReport(r))
	}
}
