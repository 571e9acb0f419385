package audit

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func TestFileSinkRotatesByAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	s, err := NewFileSink(FileConfig{Path: path, MaxAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeN(t, s, 2, "a")
	now = now.Add(59 * time.Minute)
	writeN(t, s, 1, "b")
	if files, _ := AuditFiles(path); len(files) != 1 {
		t.Fatalf("%d files before an hour, want 1", len(files))
	}
	now = now.Add(2 * time.Minute)
	writeN(t, s, 1, "c")
	files, _ := AuditFiles(path)
	if len(files) != 2 {
		t.Fatalf("%d files after an hour, want 2", len(files))
	}
	checkChain(t, logLines(t, path), "kubegate", 1)
}

// TestSpoolPrune: old rotated files go once every sink has stored them,
// and not before.
func TestSpoolPrune(t *testing.T) {
	sink := &memSink{name: "mem", fail: errors.New("down")}
	s, path := testSpool(t, SpoolConfig{File: FileConfig{MaxSizeBytes: 1500}, Sinks: []BatchSink{sink}, Retention: time.Hour})
	writeN(t, s.File(), 30, "a")
	files, _ := AuditFiles(path)
	if len(files) < 4 {
		t.Fatalf("%d files; the test wants rotations", len(files))
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, f := range files[:len(files)-1] {
		os.Chtimes(f, old, old)
	}
	if err := s.Prune(time.Now()); err != nil {
		t.Fatal(err)
	}
	if after, _ := AuditFiles(path); len(after) != len(files) {
		t.Fatalf("pruned to %d files while the sink had stored nothing", len(after))
	}
	sink.setFail(nil)
	waitFor(t, "the sink to store everything", func() bool { return s.Status()[0].Cursor == 30 })
	if err := s.Prune(time.Now()); err != nil {
		t.Fatal(err)
	}
	after, _ := AuditFiles(path)
	if len(after) != 1 || after[0] != path {
		t.Fatalf("after pruning: %v, want only the active file", after)
	}
	// The chain goes on.
	writeN(t, s.File(), 1, "b")
	waitFor(t, "the next event stored", func() bool { return s.Status()[0].Cursor == 31 })
}

// smallDisk mounts a tmpfs of size bytes for the test, or skips it where
// mounting is not allowed.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

func fill(t *testing.T, s *Spool, max int) error {
	t.Helper()
	big := strings.Repeat("x", 2000)
	for i := range max {
		ev := &auditv1.Event{AuditID: types.UID(big), Verb: "get", Level: auditv1.LevelMetadata, Annotations: map[string]string{"i": string(rune('a' + i%26))}}
		if err := s.Write(context.Background(), ev); err != nil {
			return err
		}
	}
	return nil
}

// TestSpoolFullDiskFailsClosed: a full disk is a clear error, and Healthy
// reports it, so the gateway refuses new requests: nothing is lost
// silently.
func TestSpoolFullDiskFailsClosed(t *testing.T) {
	dir := smallDisk(t, "64k")
	s, err := NewSpool(SpoolConfig{File: FileConfig{Path: filepath.Join(dir, "audit.log"), MaxSizeBytes: 16 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = fill(t, s, 1000)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v, want ENOSPC", err)
	}
	if herr := s.Healthy(); herr == nil || !strings.Contains(herr.Error(), "no space left on device") {
		t.Errorf("Healthy on a full disk: %v", herr)
	}
}

// TestSpoolFullDiskDropsOldest: with drop-oldest, a full disk costs the
// oldest local file, loudly (an audit.spool.dropped event for "local"),
// and writes go on.
func TestSpoolFullDiskDropsOldest(t *testing.T) {
	dir := smallDisk(t, "64k")
	dropped := 0
	s, err := NewSpool(SpoolConfig{File: FileConfig{Path: filepath.Join(dir, "audit.log"), MaxSizeBytes: 16 << 10},
		DropOldest: true, OnDrop: func(sink string, n int) {
			if sink == "local" {
				dropped += n
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := fill(t, s, 200); err != nil {
		t.Fatalf("writing with drop-oldest on a small disk: %v", err)
	}
	if dropped == 0 {
		t.Error("no events were reported dropped")
	}
	// Every line left is whole, and the chain links where files remain.
	for _, l := range logLines(t, filepath.Join(dir, "audit.log")) {
		var ev auditv1.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("a torn line after the disk filled: %q", l)
		}
	}
	found := false
	for _, l := range logLines(t, filepath.Join(dir, "audit.log")) {
		if strings.Contains(string(l), `"kubegate.dev/dropped-sink":"local"`) {
			found = true
		}
	}
	if !found {
		t.Error("no audit.spool.dropped event for the local log")
	}
}
