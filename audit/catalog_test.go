package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// setClock is a clock the test sets by hand.
type setClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *setClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *setClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// step is one call on a Recording, at an offset from its start: code "o"
// (stdout), "e" (stderr), "i" (stdin) or "r" (resize, data "WxH").
type step struct {
	at   time.Duration
	code string
	data string
}

var t0 = time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)

// meta is a recording's header metadata, as the gateway writes it.
func meta(id, user, ns, pod string) map[string]string {
	return map[string]string{
		"session_id": id, "audit_id": id, "kind": "exec", "user": user,
		"namespace": ns, "pod": pod, "container": "main", "tty": "true", "stdin": "true",
	}
}

// writeRecording records steps with the real writer, NewRecording.
func writeRecording(t *testing.T, dir, id string, begin time.Time, md map[string]string, steps []step) RecordingSummary {
	t.Helper()
	clk := &setClock{t: begin}
	r, err := NewRecording(RecordingConfig{
		Dir: dir, SessionID: id, Command: []string{"sh", "-c", "echo hi"}, Meta: md,
		Now: clk.Now, FlushInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		clk.set(begin.Add(s.at))
		switch s.code {
		case "o":
			err = r.Output([]byte(s.data))
		case "e":
			err = r.ErrorOutput([]byte(s.data))
		case "i":
			err = r.Input([]byte(s.data))
		case "r":
			var w, h uint16
			if _, err := fmt.Sscanf(s.data, "%dx%d", &w, &h); err != nil {
				t.Fatal(err)
			}
			err = r.Resize(w, h)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	sum, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

var simpleSteps = []step{
	{500 * time.Millisecond, "o", "$ "},
	{1 * time.Second, "i", "ls\r"},
	{1500 * time.Millisecond, "o", "ls\r\nfile\r\n"},
	{2 * time.Second, "r", "100x30"},
	{4250 * time.Millisecond, "o", "$ "},
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestListRecordings(t *testing.T) {
	dir := t.TempDir()
	day2 := t0.Add(24 * time.Hour)
	a := writeRecording(t, dir, "sess-a", t0, meta("sess-a", "alice", "dev", "toolbox"), simpleSteps)
	b := writeRecording(t, dir, "sess-b", t0.Add(time.Hour), meta("sess-b", "bob", "prod", "web-0"), simpleSteps[:2])
	c := writeRecording(t, dir, "sess-c", day2, meta("sess-c", "alice", "prod", "web-0"), nil)
	// Things that are not recordings are passed over.
	if err := os.MkdirAll(filepath.Join(dir, "not-a-day"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "not-a-day", "x.cast"), []byte("junk"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, t0.Format(time.DateOnly), "x-80-1.pfcap"), []byte("junk"), 0o640); err != nil {
		t.Fatal(err)
	}

	all, err := ListRecordings(dir, RecordingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := RecordingInfo{
		ID: "sess-a", Path: a.Path, Start: t0, Duration: 4250 * time.Millisecond,
		User: "alice", Namespace: "dev", Pod: "toolbox", Container: "main", Kind: "exec",
		Command: "sh -c 'echo hi'", TTY: true,
	}
	if len(all) != 3 || !reflect.DeepEqual(all[0], want) {
		t.Fatalf("got %+v\nwant first %+v", all, want)
	}
	if all[1].Path != b.Path || all[1].Duration != time.Second || all[2].Path != c.Path || all[2].Duration != 0 {
		t.Errorf("order or durations: %+v", all)
	}

	for _, tc := range []struct {
		name string
		f    RecordingFilter
		want []string
	}{
		{"user", RecordingFilter{User: "alice"}, []string{"sess-a", "sess-c"}},
		{"pod", RecordingFilter{Pod: "web-0"}, []string{"sess-b", "sess-c"}},
		{"namespace and user", RecordingFilter{Namespace: "prod", User: "alice"}, []string{"sess-c"}},
		{"since, same day", RecordingFilter{Since: t0.Add(time.Minute)}, []string{"sess-b", "sess-c"}},
		{"since, next day", RecordingFilter{Since: day2}, []string{"sess-c"}},
		{"nobody", RecordingFilter{User: "mallory"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ListRecordings(dir, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			if !reflect.DeepEqual(ids, tc.want) {
				t.Errorf("ids %v, want %v", ids, tc.want)
			}
		})
	}
}

func TestListRecordingsDamage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tail      string // appended to a whole recording
		cut       int    // bytes then cut from the end
		duration  time.Duration
		truncated bool
		exit      *int
	}{
		{name: "whole", duration: 4250 * time.Millisecond},
		{name: "cut in the last line", cut: 4, duration: 2 * time.Second, truncated: true}, // the resize before
		{name: "last newline missing", cut: 1, duration: 4250 * time.Millisecond},
		{name: "zeros after a crash", tail: "\x00\x00\x00", duration: 4250 * time.Millisecond, truncated: true},
		{name: "blank lines at the end", tail: "\n\r\n\n", duration: 4250 * time.Millisecond},
		{name: "exit event", tail: `[4.5, "x", "2"]` + "\n", duration: 4500 * time.Millisecond, exit: ptr(2)},
		{name: "bad last line", tail: `[4.5, "o"]` + "\n", truncated: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := writeRecording(t, t.TempDir(), "s", t0, meta("s", "alice", "dev", "p"), simpleSteps)
			appendFile(t, sum.Path, tc.tail)
			if tc.cut > 0 {
				st, _ := os.Stat(sum.Path)
				if err := os.Truncate(sum.Path, st.Size()-int64(tc.cut)); err != nil {
					t.Fatal(err)
				}
			}
			info, err := ReadRecordingInfo(sum.Path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Duration != tc.duration || info.Truncated != tc.truncated || !reflect.DeepEqual(info.ExitCode, tc.exit) {
				t.Errorf("duration %v truncated %v exit %v; want %v %v %v", info.Duration, info.Truncated, info.ExitCode, tc.duration, tc.truncated, tc.exit)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestListRecordingsBadHeader(t *testing.T) {
	dir := t.TempDir()
	good := writeRecording(t, dir, "good", t0, meta("good", "alice", "dev", "p"), simpleSteps)
	bad := filepath.Join(filepath.Dir(good.Path), "bad.cast")
	if err := os.WriteFile(bad, []byte(`{"version":2,"wid`), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := ListRecordings(dir, RecordingFilter{})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), bad) {
		t.Errorf("error %v, want ErrMalformed naming %s", err, bad)
	}
	if len(got) != 1 || got[0].ID != "good" {
		t.Errorf("the readable recording is lost: %+v", got)
	}
	if _, err := ListRecordings(filepath.Join(dir, "missing"), RecordingFilter{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestFindRecording(t *testing.T) {
	dir := t.TempDir()
	a := writeRecording(t, dir, "4f1c-aaaa", t0, meta("4f1c-aaaa", "alice", "dev", "p"), nil)
	b := writeRecording(t, dir, "4f1c-bbbb", t0.Add(48*time.Hour), meta("4f1c-bbbb", "alice", "dev", "p"), nil)
	for _, tc := range []struct {
		id, want, err string
	}{
		{id: "4f1c-aaaa", want: a.Path},
		{id: "4f1c-b", want: b.Path},
		{id: a.Path, want: a.Path},
		{id: "4f1c", err: "ambiguous"},
		{id: "nope", err: ErrRecordingNotFound.Error()},
		{id: "../etc", err: "no such file"}, // a path
		{id: "*", err: ErrRecordingNotFound.Error()},
		{id: filepath.Join(dir, "missing.cast"), err: "no such file"},
	} {
		got, err := FindRecording(dir, tc.id)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("FindRecording(%q) = %q, %v; want %q, %q", tc.id, got, err, tc.want, tc.err)
		}
	}
}

// auditLog writes events with the real file sink, rotating after maxSize
// bytes (0: never), and returns the file's path.
func auditLog(t *testing.T, maxSize int64, events ...*auditv1.Event) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	clk := &setClock{t: t0}
	sink, err := NewFileSink(FileConfig{Path: path, MaxSizeBytes: maxSize, Now: func() time.Time {
		clk.set(clk.Now().Add(time.Second)) // a distinct name for each rotation
		return clk.Now()
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := sink.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// call is shorthand for an audit event as the gateway writes it.
func call(id string, at time.Duration, verb, uri string, ref *auditv1.ObjectReference, code int32, ann map[string]string) *auditv1.Event {
	if ann == nil {
		ann = map[string]string{}
	}
	if _, ok := ann[AnnotationDecision]; !ok {
		ann[AnnotationDecision] = "allow"
		ann[AnnotationRule] = "agents"
	}
	if _, ok := ann[AnnotationCredential]; !ok {
		ann[AnnotationCredential] = "sha256:0123456789abcdef"
	}
	return &auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:                    auditv1.LevelRequest,
		AuditID:                  types.UID(id),
		Stage:                    auditv1.StageResponseComplete,
		RequestURI:               uri,
		Verb:                     verb,
		User:                     authnv1.UserInfo{Username: "agent@kubegate.test"},
		ObjectRef:                ref,
		ResponseStatus:           &metav1.Status{Code: code},
		RequestReceivedTimestamp: metav1.NewMicroTime(t0.Add(at)),
		StageTimestamp:           metav1.NewMicroTime(t0.Add(at + 10*time.Millisecond)),
		Annotations:              ann,
	}
}

func TestSessionExitCodes(t *testing.T) {
	path := auditLog(t, 0,
		call("s-1", 0, "create", "/api/v1/namespaces/dev/pods/p/exec?command=sh", &auditv1.ObjectReference{Resource: "pods", Subresource: "exec", Namespace: "dev", Name: "p"}, 101,
			map[string]string{AnnotationSessionExitCode: "3", AnnotationEvent: "session.end"}),
		call("g-1", time.Second, "get", "/api/v1/namespaces/dev/pods/p", &auditv1.ObjectReference{Resource: "pods", Namespace: "dev", Name: "p"}, 200, nil),
	)
	codes, err := SessionExitCodes(path)
	if err != nil || !reflect.DeepEqual(codes, map[string]int{"s-1": 3}) {
		t.Errorf("SessionExitCodes = %v, %v", codes, err)
	}
}

// FuzzReadRecordingInfo checks the backward reading of a file's last
// lines against a full parse.
func FuzzReadRecordingInfo(f *testing.F) {
	for _, tc := range parseCases {
		if !tc.noCast {
			f.Add(tc.in)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCast(strings.NewReader(in))
		if c == nil || errors.Is(err, ErrMalformed) {
			return // only a full parse that ends well, or cut short, says where the end is
		}
		path := filepath.Join(dir, "f.cast")
		if err := os.WriteFile(path, []byte(in), 0o640); err != nil {
			t.Fatal(err)
		}
		info, ierr := ReadRecordingInfo(path)
		if ierr != nil {
			t.Fatalf("ReadRecordingInfo: %v", ierr)
		}
		var want time.Duration
		if n := len(c.Events); n > 0 {
			want = time.Duration(c.Events[n-1].Time * float64(time.Second))
		}
		if info.Duration != want || info.Truncated != errors.Is(err, ErrTruncated) {
			t.Fatalf("duration %v truncated %v; full parse: %v, %v", info.Duration, info.Truncated, want, err)
		}
	})
}
