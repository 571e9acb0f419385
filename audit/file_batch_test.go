package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// referenceLine is how FileSink encoded an event before events were
// batched: json.Marshal of a copy carrying the chain annotations, and a
// newline. The batched writer must produce the same bytes.
func referenceLine(t *testing.T, ev *auditv1.Event, node string, seq uint64, prev string) []byte {
	t.Helper()
	chained := *ev
	chained.Annotations = make(map[string]string, len(ev.Annotations)+2)
	maps.Copy(chained.Annotations, ev.Annotations)
	chained.Annotations[AnnotationAuditID] = FormatAuditID(node, seq)
	chained.Annotations[AnnotationAuditPrev] = prev
	line, err := json.Marshal(&chained)
	if err != nil {
		t.Fatal(err)
	}
	return append(line, '\n')
}

// referenceEvents are events whose encoding has corners: escaped HTML and
// control characters, non-ASCII, embedded bodies that json compacts, no
// annotations at all.
func referenceEvents() []*auditv1.Event {
	at := metav1.NewMicroTime(time.Date(2026, 11, 23, 11, 0, 0, 999999000, time.UTC))
	evs := []*auditv1.Event{
		benchEvent(),
		{AuditID: "bare"},
		{AuditID: "html", UserAgent: "<script>&\u2028\x01\"\\ é 日本", Verb: "create", RequestReceivedTimestamp: at,
			Annotations: map[string]string{"z": "last", "a": "first", AnnotationAuditID: "forged:1"}},
		{AuditID: "bodies", Level: auditv1.LevelRequestResponse,
			RequestObject:  &runtime.Unknown{Raw: []byte(`{ "kind" : "Pod",  "metadata":{"name":"<x>"} }`), ContentType: runtime.ContentTypeJSON},
			ResponseObject: &runtime.Unknown{Raw: []byte("{\n\t\"items\": [1, 2.50, null]\n}"), ContentType: runtime.ContentTypeJSON}},
	}
	for i := range 20 {
		ev := benchEvent()
		ev.AuditID = types.UID("ev-" + strconv.Itoa(i))
		ev.ResponseStatus = &metav1.Status{Code: int32(200 + i)}
		evs = append(evs, ev)
	}
	return evs
}

func TestFileSinkLinesMatchReference(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := NewFileSink(FileConfig{Path: path, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	prev := ""
	for i, ev := range referenceEvents() {
		before := ev.DeepCopy()
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if !equalEvents(t, ev, before) {
			t.Fatalf("Write changed event %d", i)
		}
		line := referenceLine(t, ev, "n1", uint64(i+1), prev)
		want.Write(line)
		prev = LineHash(line)
	}
	if seq, head := s.Head(); seq != uint64(len(referenceEvents())) || head != prev {
		t.Errorf("Head() = %d, %s; want %d, %s", seq, head, len(referenceEvents()), prev)
	}
	s.Close()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("file differs from the reference encoding:\n got %q\nwant %q", got, want.Bytes())
	}
}

func equalEvents(t *testing.T, a, b *auditv1.Event) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestFileSinkConcurrentLinesMatchReference writes from many goroutines, so
// that events are batched, and checks each line against the reference
// encoding of its event at its place in the chain.
func TestFileSinkConcurrentLinesMatchReference(t *testing.T) {
	for _, cfg := range []FileConfig{{}, {Fsync: true}, {MaxSizeBytes: 4096}} {
		t.Run("fsync="+strconv.FormatBool(cfg.Fsync)+",max="+strconv.FormatInt(cfg.MaxSizeBytes, 10), func(t *testing.T) {
			dir := t.TempDir()
			cfg.Path, cfg.Node = filepath.Join(dir, "audit.log"), "n1"
			s, err := NewFileSink(cfg)
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]*auditv1.Event{}
			var wg sync.WaitGroup
			for g := range 8 {
				evs := referenceEvents()
				for _, ev := range evs {
					ev.AuditID = types.UID(strconv.Itoa(g) + "/" + string(ev.AuditID))
					byID[string(ev.AuditID)] = ev
				}
				wg.Go(func() {
					for _, ev := range evs {
						if err := s.Write(context.Background(), ev); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			s.Close()
			src, err := NewFileSource(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			rep, err := VerifyChain(context.Background(), src)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("chain does not verify: %v", rep.Problems)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "audit.log*"))
			if cfg.MaxSizeBytes > 0 && len(files) < 2 {
				t.Fatalf("no rotation: %v", files)
			}
			n := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if cfg.MaxSizeBytes > 0 && int64(len(data)) > cfg.MaxSizeBytes {
					t.Errorf("%s is %d bytes, over %d", f, len(data), cfg.MaxSizeBytes)
				}
				for line := range bytes.Lines(data) {
					var ev auditv1.Event
					if err := json.Unmarshal(line, &ev); err != nil {
						t.Fatal(err)
					}
					_, seq, err := ParseAuditID(ev.Annotations[AnnotationAuditID])
					if err != nil {
						t.Fatal(err)
					}
					orig := byID[string(ev.AuditID)]
					delete(byID, string(ev.AuditID))
					if orig == nil {
						t.Fatalf("line for unknown or repeated event %q", ev.AuditID)
					}
					if want := referenceLine(t, orig, "n1", seq, ev.Annotations[AnnotationAuditPrev]); !bytes.Equal(line, want) {
						t.Fatalf("line %d:\n got %q\nwant %q", seq, line, want)
					}
					n++
				}
			}
			if len(byID) != 0 || n != 8*len(referenceEvents()) {
				t.Fatalf("%d lines; %d events missing", n, len(byID))
			}
		})
	}
}

// An event that cannot be encoded fails alone: it takes no place in the
// chain, and the events around it are written.
func TestFileSinkUnencodableEventFailsAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := NewFileSink(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bad := &auditv1.Event{AuditID: "bad", RequestObject: &runtime.Unknown{Raw: []byte("{not json")}}
	ctx := context.Background()
	if err := s.Write(ctx, &auditv1.Event{AuditID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, bad); err == nil || !strings.Contains(err.Error(), "encoding event") {
		t.Fatalf("Write(bad) = %v, want an encoding error", err)
	}
	if err := s.Write(ctx, &auditv1.Event{AuditID: "b"}); err != nil {
		t.Fatal(err)
	}
	evs := readEvents(t, path)
	if len(evs) != 2 || evs[1].Annotations[AnnotationAuditID] != "kubegate:2" {
		t.Fatalf("got %d events, second %v", len(evs), evs[len(evs)-1].Annotations)
	}
}

// Writers queued behind a write that fails get its error; none is left
// waiting, and the sink reports itself unhealthy.
func TestFileSinkConcurrentFailure(t *testing.T) {
	s, err := NewFileSink(FileConfig{Path: filepath.Join(t.TempDir(), "events.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := s.Write(context.Background(), benchEvent()); err == nil {
				t.Error("write to a closed sink succeeded")
			}
		})
	}
	wg.Wait()
	if s.Healthy() == nil {
		t.Fatal("Healthy is nil after failed writes")
	}
	if seq, _ := s.Head(); seq != 0 {
		t.Fatalf("head moved to %d without a line written", seq)
	}
}
