package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// record makes a recording with a fake clock stepping 1ms and a fake
// flush timer.
func record(t *testing.T, cfg RecordingConfig) (*Recording, *fakeTimer) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.SessionID == "" {
		cfg.SessionID = "s1"
	}
	if cfg.Now == nil {
		cfg.Now = newFakeClock(time.Millisecond).Now
	}
	ft := &fakeTimer{}
	r, err := newRecording(cfg, createFile, ft.new)
	if err != nil {
		t.Fatal(err)
	}
	return r, ft
}

func closeRecording(t *testing.T, r *Recording) RecordingSummary {
	t.Helper()
	sum, err := r.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	return sum
}

func readCast(t *testing.T, path string) *Cast {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseCast(f)
	if err != nil {
		t.Fatalf("ParseCast(%s): %v", path, err)
	}
	return c
}

func TestRecordingHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RecordingConfig
		want CastHeader
	}{
		{
			name: "defaults",
			cfg:  RecordingConfig{},
			want: CastHeader{Version: 2, Width: 80, Height: 24, Timestamp: start.Unix()},
		},
		{
			name: "exec",
			cfg: RecordingConfig{
				Width: 120, Height: 40,
				Command: []string{"sh", "-c", "echo 'hi' && ls", ""},
				Title:   "kubectl exec dev/toolbox -- sh",
				Meta: map[string]string{
					"session_id": "s1", "user": "alice@example.com", "namespace": "dev", "pod": "toolbox",
					"container": "main", "audit_id": "a-1", "protocol": "v5.channel.k8s.io", "tty": "true", "stdin": "true",
				},
			},
			want: CastHeader{
				Version: 2, Width: 120, Height: 40, Timestamp: start.Unix(),
				Command: `sh -c 'echo '\''hi'\'' && ls' ''`,
				Title:   "kubectl exec dev/toolbox -- sh",
				Env: map[string]string{
					"session_id": "s1", "user": "alice@example.com", "namespace": "dev", "pod": "toolbox",
					"container": "main", "audit_id": "a-1", "protocol": "v5.channel.k8s.io", "tty": "true", "stdin": "true",
				},
			},
		},
		{
			name: "attach with html characters",
			cfg:  RecordingConfig{Width: 1, Title: "<a & b>", Meta: map[string]string{"user": "x<y>"}},
			want: CastHeader{Version: 2, Width: 1, Height: 24, Timestamp: start.Unix(), Title: "<a & b>", Env: map[string]string{"user": "x<y>"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.cfg.Dir = dir
			r, _ := record(t, tc.cfg)
			// The header is on disk before any event or Close.
			path := filepath.Join(dir, "2026-03-04", "s1.cast")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Count(raw, []byte("\n")) != 1 || raw[len(raw)-1] != '\n' {
				t.Fatalf("file before any event = %q, want the header line", raw)
			}
			if bytes.Contains(raw, []byte(`\u003c`)) {
				t.Errorf("header escapes HTML characters: %s", raw)
			}
			sum := closeRecording(t, r)
			if sum.Path != path {
				t.Errorf("Path = %q, want %q", sum.Path, path)
			}
			c := readCast(t, path)
			if !reflect.DeepEqual(c.Header, tc.want) {
				t.Errorf("header = %+v\nwant %+v", c.Header, tc.want)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := st.Mode().Perm(); perm&^0o640 != 0 {
				t.Errorf("file mode %v, want at most 0640", perm)
			}
			st, err = os.Stat(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			if perm := st.Mode().Perm(); perm&^0o750 != 0 {
				t.Errorf("dir mode %v, want at most 0750", perm)
			}
		})
	}
}

func TestNewRecordingRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  RecordingConfig
	}{
		{"no dir", RecordingConfig{SessionID: "s"}},
		{"no session id", RecordingConfig{Dir: dir}},
		{"slash", RecordingConfig{Dir: dir, SessionID: "a/b"}},
		{"parent", RecordingConfig{Dir: dir, SessionID: "../x"}},
		{"dot first", RecordingConfig{Dir: dir, SessionID: ".hidden"}},
		{"space", RecordingConfig{Dir: dir, SessionID: "a b"}},
		{"non-ascii", RecordingConfig{Dir: dir, SessionID: "sé"}},
		{"too long", RecordingConfig{Dir: dir, SessionID: strings.Repeat("a", 201)}},
		{"negative flush interval", RecordingConfig{Dir: dir, SessionID: "s", FlushInterval: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := NewRecording(tc.cfg); err == nil {
				r.Close()
				t.Fatal("NewRecording succeeded")
			}
		})
	}
	t.Run("existing recording", func(t *testing.T) {
		cfg := RecordingConfig{Dir: dir, SessionID: "dup", Now: func() time.Time { return start }}
		r, err := NewRecording(cfg)
		if err != nil {
			t.Fatal(err)
		}
		closeRecording(t, r)
		if _, err := NewRecording(cfg); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("second recording with the same id: %v, want fs.ErrExist", err)
		}
	})
}

func TestRecordingEvents(t *testing.T) {
	type call struct {
		method string // in, out, err, resize
		data   string
		w, h   uint16
	}
	for _, tc := range []struct {
		name  string
		calls []call
		want  []CastEvent // times are filled in: 1ms per call, from 1ms
	}{
		{
			name:  "codes",
			calls: []call{{method: "out", data: "$ "}, {method: "in", data: "ls\r"}, {method: "out", data: "ls\r\n"}, {method: "err", data: "oops\n"}},
			want:  []CastEvent{{Code: "o", Data: "$ "}, {Code: "i", Data: "ls\r"}, {Code: "o", Data: "ls\r\n"}, {Code: "o", Data: "oops\n"}},
		},
		{
			name:  "resize",
			calls: []call{{method: "resize", w: 120, h: 40}, {method: "resize", w: 65535, h: 0}},
			want:  []CastEvent{{Code: "r", Data: "120x40"}, {Code: "r", Data: "65535x0"}},
		},
		{
			name:  "exit status",
			calls: []call{{method: "out", data: "bye\n"}, {method: "exit", w: 7}},
			want:  []CastEvent{{Code: "o", Data: "bye\n"}, {Code: "x", Data: "7"}},
		},
		{
			name:  "empty chunks make no event",
			calls: []call{{method: "out"}, {method: "in"}, {method: "err"}, {method: "out", data: "x"}},
			want:  []CastEvent{{Code: "o", Data: "x"}},
		},
		{
			name:  "control bytes and escapes",
			calls: []call{{method: "out", data: "\x1b[1;31mred\x1b[0m \"q\" \\ \t\b\f\x00\x7f\u2028"}},
			want:  []CastEvent{{Code: "o", Data: "\x1b[1;31mred\x1b[0m \"q\" \\ \t\b\f\x00\x7f\u2028"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock(time.Millisecond)
			r, _ := record(t, RecordingConfig{Now: clock.Now})
			for _, c := range tc.calls {
				var err error
				switch c.method {
				case "in":
					err = r.Input([]byte(c.data))
				case "out":
					err = r.Output([]byte(c.data))
				case "err":
					err = r.ErrorOutput([]byte(c.data))
				case "resize":
					err = r.Resize(c.w, c.h)
				case "exit":
					err = r.Exit(int(c.w))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			sum := closeRecording(t, r)
			got := readCast(t, sum.Path).Events
			var want []CastEvent
			for i, ev := range tc.want {
				ev.Time = float64(i+1) / 1000
				want = append(want, ev)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("events = %+v\nwant %+v", got, want)
			}
			if sum.Events != len(want) {
				t.Errorf("summary Events = %d, want %d", sum.Events, len(want))
			}
		})
	}
}

func TestRecordingTimestamps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		times []time.Duration // clock readings after the start
		want  []float64
	}{
		{"steady", []time.Duration{1500 * time.Microsecond, 3 * time.Millisecond, 2 * time.Second}, []float64{0.0015, 0.003, 2}},
		{"rounded to microseconds", []time.Duration{1499, 1500, 2*time.Hour + 1}, []float64{0.000001, 0.000002, 7200}},
		{"never back", []time.Duration{5 * time.Second, time.Second, -time.Hour, 6 * time.Second}, []float64{5, 5, 5, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readings := append([]time.Duration{0}, tc.times...)
			readings = append(readings, tc.times[len(tc.times)-1]) // Close
			var mu sync.Mutex
			now := func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				d := readings[0]
				readings = readings[1:]
				return start.Add(d)
			}
			r, _ := record(t, RecordingConfig{Now: now})
			for range tc.times {
				if err := r.Output([]byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			sum := closeRecording(t, r)
			var got []float64
			for _, ev := range readCast(t, sum.Path).Events {
				got = append(got, ev.Time)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("times = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRecordingConcurrentOrder checks that the file holds events in the
// order of the calls, from callers on many goroutines: the callers take
// turns under their own lock and log what they wrote, and the file must
// match the log. Without that lock each caller's own events stay in order.
func TestRecordingConcurrentOrder(t *testing.T) {
	const writers, each = 8, 100
	for _, serialised := range []bool{true, false} {
		t.Run(fmt.Sprintf("serialised=%v", serialised), func(t *testing.T) {
			r, _ := record(t, RecordingConfig{})
			var (
				mu  sync.Mutex
				log []CastEvent
				wg  sync.WaitGroup
			)
			for g := range writers {
				wg.Go(func() {
					for i := range each {
						data := fmt.Sprintf("g%d:%d;", g, i)
						ev := CastEvent{Code: "o", Data: data}
						call := r.Output
						switch i % 3 {
						case 1:
							ev.Code, call = "i", r.Input
						case 2:
							call = r.ErrorOutput
						}
						if serialised {
							mu.Lock()
						}
						if err := call([]byte(data)); err != nil {
							t.Error(err)
						}
						if serialised {
							log = append(log, ev)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			sum := closeRecording(t, r)
			events := readCast(t, sum.Path).Events
			if len(events) != writers*each {
				t.Fatalf("%d events, want %d", len(events), writers*each)
			}
			next := make([]int, writers)
			prev := -1.0
			for i, ev := range events {
				if ev.Time < prev {
					t.Fatalf("event %d at %v before the previous one at %v", i, ev.Time, prev)
				}
				prev = ev.Time
				if serialised && (ev.Code != log[i].Code || ev.Data != log[i].Data) {
					t.Fatalf("event %d = %s %q, call %d was %s %q", i, ev.Code, ev.Data, i, log[i].Code, log[i].Data)
				}
				var g, n int
				if _, err := fmt.Sscanf(ev.Data, "g%d:%d;", &g, &n); err != nil {
					t.Fatalf("event %d data %q: %v", i, ev.Data, err)
				}
				if n != next[g] {
					t.Fatalf("writer %d: event %d is its call %d, want %d", g, i, n, next[g])
				}
				next[g]++
			}
		})
	}
}

func TestRecordingStderrSidecar(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		r, _ := record(t, RecordingConfig{})
		r.Output([]byte("hi"))
		sum := closeRecording(t, r)
		if sum.StderrPath != "" || sum.RawPath != "" {
			t.Errorf("StderrPath = %q, RawPath = %q, want none", sum.StderrPath, sum.RawPath)
		}
		files, _ := filepath.Glob(filepath.Join(filepath.Dir(sum.Path), "*"))
		if len(files) != 1 {
			t.Errorf("files %v, want the .cast only", files)
		}
	})
	t.Run("chunks", func(t *testing.T) {
		r, _ := record(t, RecordingConfig{})
		chunks := [][]byte{[]byte("err: boom\n"), []byte("\xff\xfe bin"), []byte("tail \xe2\x82")}
		r.Output([]byte("out\n"))
		for _, ch := range chunks {
			if err := r.ErrorOutput(ch); err != nil {
				t.Fatal(err)
			}
		}
		sum := closeRecording(t, r)
		if want := filepath.Join(filepath.Dir(sum.Path), "s1.stderr.jsonl"); sum.StderrPath != want {
			t.Fatalf("StderrPath = %q, want %q", sum.StderrPath, want)
		}
		if sum.BytesErr != 10+6+7 || sum.BytesOut != 4 {
			t.Errorf("BytesErr = %d, BytesOut = %d", sum.BytesErr, sum.BytesOut)
		}
		f, err := os.Open(sum.StderrPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := ParseStderr(f)
		if err != nil {
			t.Fatal(err)
		}
		c := readCast(t, sum.Path)
		if len(got) != len(chunks) {
			t.Fatalf("sidecar has %d chunks, want %d", len(got), len(chunks))
		}
		for i, ch := range got {
			if !bytes.Equal(ch.Data, chunks[i]) {
				t.Errorf("chunk %d = %q, want %q", i, ch.Data, chunks[i])
			}
			// Event 0 is stdout; stderr chunk i is event i+1.
			if ev := c.Events[i+1]; ev.Time != ch.Time || ev.Code != "o" {
				t.Errorf("chunk %d at %v, its event is %s at %v", i, ch.Time, ev.Code, ev.Time)
			}
		}
		if want := "out\nerr: boom\n\ufffd\ufffd bintail \ufffd\ufffd"; c.Output() != want {
			t.Errorf("Output = %q, want %q", c.Output(), want)
		}
	})
}

func TestRecordingSummary(t *testing.T) {
	clock := newFakeClock(250 * time.Millisecond)
	r, _ := record(t, RecordingConfig{Now: clock.Now})
	r.Input([]byte("abc"))
	r.Output([]byte("hello"))
	r.Resize(10, 10)
	sum := closeRecording(t, r)
	content, err := os.ReadFile(sum.Path)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(content)
	want := RecordingSummary{
		Path: sum.Path, SHA256: hex.EncodeToString(digest[:]),
		BytesIn: 3, BytesOut: 5, Events: 3, Duration: time.Second,
	}
	if sum != want {
		t.Errorf("summary = %+v\nwant %+v", sum, want)
	}

	again, err := r.Close()
	if err != nil || again != sum {
		t.Errorf("second Close = %+v, %v; want the same summary", again, err)
	}
	for name, call := range map[string]func() error{
		"Input":       func() error { return r.Input([]byte("x")) },
		"Output":      func() error { return r.Output([]byte("x")) },
		"ErrorOutput": func() error { return r.ErrorOutput([]byte("x")) },
		"Resize":      func() error { return r.Resize(1, 1) },
	} {
		if err := call(); !errors.Is(err, ErrRecordingClosed) {
			t.Errorf("%s after Close: %v, want ErrRecordingClosed", name, err)
		}
	}
	after, _ := os.ReadFile(sum.Path)
	if !bytes.Equal(after, content) {
		t.Error("file changed after Close")
	}
}

func TestRecordingStickyErrors(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2*bufferSize)
	for _, tc := range []struct {
		name       string
		budget     int    // bytes of the .cast that reach the disk
		failSuffix string // files that cannot be created
		act        func(r *Recording, ft *fakeTimer) error
	}{
		{
			name:   "large output",
			budget: 1000,
			act:    func(r *Recording, _ *fakeTimer) error { return r.Output(big) },
		},
		{
			name:   "timed flush, reported by the next call",
			budget: 1000,
			act: func(r *Recording, ft *fakeTimer) error {
				if err := r.Output(bytes.Repeat([]byte("y"), 2000)); err != nil {
					return fmt.Errorf("buffered write failed early: %w", err)
				}
				ft.fire()
				return r.Input([]byte("z"))
			},
		},
		{
			name:       "stderr sidecar",
			budget:     1 << 20,
			failSuffix: ".stderr.jsonl",
			act:        func(r *Recording, _ *fakeTimer) error { return r.ErrorOutput([]byte("e")) },
		},
		{
			name:       "raw sidecar",
			budget:     1 << 20,
			failSuffix: ".raw.jsonl",
			act:        func(r *Recording, _ *fakeTimer) error { return r.Output([]byte("\xff")) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTimer{}
			r, err := newRecording(RecordingConfig{Dir: t.TempDir(), SessionID: "s1"}, createFailing(tc.budget, tc.failSuffix), ft.new)
			if err != nil {
				t.Fatal(err)
			}
			first := tc.act(r, ft)
			if !errors.Is(first, errDiskFull) {
				t.Fatalf("the failing call returned %v, want the write error", first)
			}
			for name, call := range map[string]func() error{
				"Input":       func() error { return r.Input([]byte("x")) },
				"Output":      func() error { return r.Output([]byte("x")) },
				"ErrorOutput": func() error { return r.ErrorOutput([]byte("x")) },
				"Resize":      func() error { return r.Resize(1, 1) },
			} {
				if err := call(); err != first {
					t.Errorf("%s after the failure: %v, want the same error", name, err)
				}
			}
			if _, err := r.Close(); err != first {
				t.Errorf("Close: %v, want %v", err, first)
			}
			if _, err := r.Close(); err != first {
				t.Errorf("second Close: %v, want %v", err, first)
			}
		})
	}
	t.Run("close", func(t *testing.T) {
		r, err := newRecording(RecordingConfig{Dir: t.TempDir(), SessionID: "s1"}, createFailing(200, ""), (&fakeTimer{}).new)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Output(bytes.Repeat([]byte("y"), 500)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Close(); !errors.Is(err, errDiskFull) {
			t.Fatalf("Close: %v, want the write error", err)
		}
	})
	t.Run("header", func(t *testing.T) {
		_, err := newRecording(RecordingConfig{Dir: t.TempDir(), SessionID: "s1"}, createFailing(10, ""), (&fakeTimer{}).new)
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("NewRecording: %v, want the write error", err)
		}
	})
}

// TestRecordingLargeChunk checks that a chunk far larger than the buffer
// goes through in pieces, without memory growing with it, and reads back.
func TestRecordingLargeChunk(t *testing.T) {
	r, _ := record(t, RecordingConfig{})
	chunk := bytes.Repeat([]byte("0123456789abcdef\n\x1b[0mé"), 1<<20/20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 8 {
		if err := r.Output(chunk); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("writing 8 MiB allocated %d bytes", grew)
	}
	sum := closeRecording(t, r)
	c := readCast(t, sum.Path)
	if want := strings.Repeat(string(chunk), 8); c.Output() != want {
		t.Errorf("Output has %d bytes, want %d", len(c.Output()), len(want))
	}
}

// TestRecordingNoGoroutineLeak runs recordings with real timers and checks
// that no goroutine outlives Close.
func TestRecordingNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	dir := t.TempDir()
	var recs []*Recording
	for i := range 20 {
		r, err := NewRecording(RecordingConfig{Dir: dir, SessionID: fmt.Sprintf("s%d", i), FlushInterval: time.Duration(i%3) * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		for range 10 {
			r.Output([]byte("data"))
			r.Input([]byte("in"))
		}
	}
	for _, r := range recs {
		closeRecording(t, r)
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}
