package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func readEvents(t *testing.T, path string) []auditv1.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []auditv1.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestFileSinkWritesOneLinePerEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "events.jsonl")
	s, err := NewFileSink(FileConfig{Path: path, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := &auditv1.Event{AuditID: types.UID(string(rune('a'+i%26)) + "-id"), Verb: "get", Level: auditv1.LevelMetadata}
			if err := s.Write(context.Background(), ev); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := len(readEvents(t, path)); got != 50 {
		t.Fatalf("file holds %d events, want 50", got)
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy after good writes: %v", err)
	}
}

func TestFileSinkRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := NewFileSink(FileConfig{Path: path, MaxSizeBytes: 300, Now: func() time.Time { now = now.Add(time.Second); return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 10 {
		if err := s.Write(context.Background(), &auditv1.Event{AuditID: "0123456789", Verb: "list", RequestURI: "/api/v1/pods"}); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events.jsonl*"))
	if len(files) < 3 {
		t.Fatalf("expected rotation into several files, got %v", files)
	}
	total := 0
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 300 {
			t.Errorf("%s is %d bytes, over the 300-byte limit", f, st.Size())
		}
		total += len(readEvents(t, f))
	}
	if total != 10 {
		t.Errorf("%d events across rotated files, want 10", total)
	}
}

func TestFileSinkReportsFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := NewFileSink(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Write(context.Background(), &auditv1.Event{}); err == nil {
		t.Fatal("write to a closed sink succeeded")
	}
	if s.Healthy() == nil {
		t.Fatal("Healthy is nil after a failed write")
	}
}
