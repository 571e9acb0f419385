package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/gateway"
)

// fakeLive is a session registry the test ends sessions in.
type fakeLive struct {
	mu   sync.Mutex
	live map[string]gateway.LiveSession
}

func (f *fakeLive) List(context.Context) ([]gateway.LiveSession, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []gateway.LiveSession
	for _, s := range f.live {
		out = append(out, s)
	}
	return out, nil
}

func (f *fakeLive) Kill(_ context.Context, id, _ string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.live[id]
	delete(f.live, id)
	return ok, nil
}

func newRecording(t *testing.T, dir, id string) *audit.Recording {
	rec, err := audit.NewRecording(audit.RecordingConfig{
		Dir: dir, SessionID: id, Width: 100, Height: 30, Command: []string{"sh"}, FlushInterval: time.Millisecond,
		Meta: map[string]string{"session_id": id, "user": "agent@example.com", "namespace": "dev", "pod": "toolbox", "kind": "exec", "tty": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestRecordingCastHasMarkersAtTypedLines: the player gets output and
// resizes, a marker for each line typed, and no input or exit events.
func TestRecordingCastHasMarkersAtTypedLines(t *testing.T) {
	dir := t.TempDir()
	rec := newRecording(t, dir, "s1")
	for _, step := range []func() error{
		func() error { return rec.Input([]byte("ls -l\r")) },
		func() error { return rec.Output([]byte("total 0\r\n# ")) },
		func() error { return rec.Input([]byte("echo hj\x7fi\r")) },
		func() error { return rec.Output([]byte("hi\r\n")) },
		func() error { return rec.Resize(120, 40) },
		func() error { return rec.Exit(0) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{RecordingsDir: dir})
	c := h.browser(t)
	h.signIn(t, c, "aud@example.com", "auditors")
	resp, body := get(t, c, h.srv.URL+"/ui/api/recordings/s1/cast")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	var codes, markers []string
	for _, l := range lines[1:] {
		var ev []any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		codes = append(codes, ev[1].(string))
		if ev[1] == "m" {
			markers = append(markers, ev[2].(string))
		}
	}
	if got := strings.Join(markers, "|"); got != "ls -l|echo hi" {
		t.Errorf("markers %q, want the two typed lines", got)
	}
	if got := strings.Join(codes, ""); got != "mo"+"mo"+"r" {
		t.Errorf("event codes %q, want mo mo r", got)
	}
	// Ids only: a path is refused.
	if r, _ := get(t, c, h.srv.URL+"/ui/api/recordings/..%2f..%2fetc/cast"); r.StatusCode != http.StatusNotFound {
		t.Errorf("a path as id: %s, want 404", r.Status)
	}
}

// TestFollowLiveStreamsUntilTheSessionEnds follows a recording being
// written: a reset with what was shown so far, then each new output, then
// offline once the session is gone.
func TestFollowLiveStreamsUntilTheSessionEnds(t *testing.T) {
	dir := t.TempDir()
	rec := newRecording(t, dir, "s2")
	if err := rec.Output([]byte("before\r\n")); err != nil {
		t.Fatal(err)
	}
	live := &fakeLive{live: map[string]gateway.LiveSession{"s2": {ID: "s2"}}}
	h := newHarness(t, Config{RecordingsDir: dir, Sessions: live})
	c := h.browser(t)
	h.signIn(t, c, "ann@example.com", "approvers")
	// The header and first event must be on disk before the follower opens.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if info, err := audit.ListRecordings(dir, audit.RecordingFilter{}); err == nil && len(info) == 1 && info[0].Duration >= 0 {
			if path, _ := audit.FindRecording(dir, "s2"); path != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the recording never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := c.Get(h.srv.URL + "/ui/api/live/s2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func() string {
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				return strings.TrimPrefix(l, "data: ")
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ""
	}
	var reset struct{ Cols, Rows int }
	first := next()
	if err := json.Unmarshal([]byte(first), &reset); err != nil || reset.Cols != 100 || reset.Rows != 30 {
		t.Fatalf("first message %s, want a 100x30 reset", first)
	}
	var seen strings.Builder
	if err := rec.Output([]byte("after\r\n")); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(seen.String(), "after") {
		var ev []any
		msg := next()
		if err := json.Unmarshal([]byte(msg), &ev); err != nil {
			t.Fatalf("message %s: %v", msg, err)
		}
		seen.WriteString(ev[2].(string))
	}
	if !strings.Contains(seen.String(), "before") {
		t.Errorf("what was shown before watching is missing: %q", seen.String())
	}
	// The session ends without an exit event (killed): offline follows.
	if _, err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	live.Kill(context.Background(), "s2", "")
	for {
		if msg := next(); msg == `{"state":"offline"}` {
			break
		}
	}
}
