package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/internal/s3test"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// auditNode is a node's audit log and recordings, written by the real
// file sink and recorder.
type auditNode struct {
	dir        string // holds audit.log and its rotated files
	recordings string // the recordings directory
	recording  string // the exec session's .cast file
	lines      []auditLine
}

// auditLine is an event line as stored, and where.
type auditLine struct {
	file  string
	n     int
	bytes []byte
}

// writeAuditNode writes 8 events through a FileSink that rotates every
// few events; event 4 is an exec session's session.end event naming a
// real recording and its sha256.
func writeAuditNode(t *testing.T) *auditNode {
	t.Helper()
	base := t.TempDir()
	a := &auditNode{dir: filepath.Join(base, "log"), recordings: filepath.Join(base, "recordings")}
	a.recording = recordSession(t, a.recordings, "sess-1", "alice", "web", day, "$ ls\r\n", "audit.log\r\n")
	b, err := os.ReadFile(a.recording)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)

	now := day
	sink, err := audit.NewFileSink(audit.FileConfig{
		Path: filepath.Join(a.dir, "audit.log"), MaxSizeBytes: 2500, Node: "n1",
		Now: func() time.Time { now = now.Add(time.Second); return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	events := []*auditv1.Event{
		auditEvent("e1", 0, "get", "/api/v1/namespaces/dev/pods/web", &auditv1.ObjectReference{Resource: "pods", Namespace: "dev", Name: "web"}, 200, ""),
		auditEvent("e2", time.Second, "list", "/api/v1/namespaces/dev/pods", &auditv1.ObjectReference{Resource: "pods", Namespace: "dev"}, 200, ""),
		auditEvent("e3", 2*time.Second, "delete", "/apis/apps/v1/namespaces/prod/deployments/api", &auditv1.ObjectReference{Resource: "deployments", APIGroup: "apps", Namespace: "prod", Name: "api"}, 403, "",
			audit.AnnotationDecision, "deny"),
		auditEvent("e4", 3*time.Second, "create", "/api/v1/namespaces/dev/pods/web/exec?command=sh", &auditv1.ObjectReference{Resource: "pods", Subresource: "exec", Namespace: "dev", Name: "web"}, 101, "",
			audit.AnnotationEvent, "session.end", audit.AnnotationRecording, a.recording, audit.AnnotationRecordingSHA256, hex.EncodeToString(sum[:])),
		auditEvent("e5", 4*time.Second, "get", "/version", nil, 200, ""),
		auditEvent("e6", 5*time.Second, "get", "/api/v1/nodes/n1", &auditv1.ObjectReference{Resource: "nodes", Name: "n1"}, 200, ""),
		auditEvent("e7", 6*time.Second, "patch", "/apis/apps/v1/namespaces/prod/deployments/api/scale", &auditv1.ObjectReference{Resource: "deployments", Subresource: "scale", APIGroup: "apps", Namespace: "prod", Name: "api"}, 200, ""),
		auditEvent("e8", 7*time.Second, "get", "/api/v1/namespaces/dev/configmaps/cfg", &auditv1.ObjectReference{Resource: "configmaps", Namespace: "dev", Name: "cfg"}, 404, ""),
	}
	for i, ev := range events {
		ev.StageTimestamp = ev.RequestReceivedTimestamp
		if i >= 5 {
			ev.User.Username = "bob@kubegate.test"
		}
		if err := sink.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := audit.AuditFiles(filepath.Join(a.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("files %v: want the log rotated", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			a.lines = append(a.lines, auditLine{file: f, n: i + 1, bytes: l})
		}
	}
	if len(a.lines) != len(events) {
		t.Fatalf("%d lines stored, want %d", len(a.lines), len(events))
	}
	return a
}

// where is where event seq (from 1) is stored.
func (a *auditNode) where(seq int) string {
	l := a.lines[seq-1]
	return fmt.Sprintf("%s:%d", l.file, l.n)
}

// rewrite replaces event seq's line in its file; nil deletes it.
func (a *auditNode) rewrite(t *testing.T, seq int, line []byte) {
	t.Helper()
	l := a.lines[seq-1]
	b, err := os.ReadFile(l.file)
	if err != nil {
		t.Fatal(err)
	}
	old := append(bytes.Clone(l.bytes), '\n')
	repl := []byte{}
	if line != nil {
		repl = append(bytes.Clone(line), '\n')
	}
	if !bytes.Contains(b, old) {
		t.Fatalf("event %d is not in %s", seq, l.file)
	}
	if err := os.WriteFile(l.file, bytes.Replace(b, old, repl, 1), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runAuditCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = auditCommand(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestAuditVerifyClean(t *testing.T) {
	a := writeAuditNode(t)
	for name, args := range map[string][]string{
		"directory":   {"verify", "--from", a.dir},
		"file":        {"verify", "--from", filepath.Join(a.dir, "audit.log")},
		"from config": {"verify", "--config", writeConfig(t, filepath.Join(a.dir, "audit.log"), a.recordings)},
		"recordings":  {"verify", "--from", a.dir, "--recordings", a.recordings},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, err := runAuditCmd(t, args...)
			if err != nil {
				t.Fatalf("verify: %v\n%s%s", err, out, errOut)
			}
			if !strings.Contains(out, "verified: 8 events of 1 node, 1 recording checked, 0 duplicates dropped") ||
				!strings.Contains(out, audit.LineHash(a.lines[7].bytes)) {
				t.Errorf("output:\n%s", out)
			}
		})
	}

	out, _, err := runAuditCmd(t, "verify", "--from", a.dir, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r audit.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if !r.OK() || len(r.Nodes) != 1 || r.Nodes[0].Last != 8 || r.Recordings != 1 {
		t.Errorf("report %+v", r)
	}
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, a *auditNode)
		want   func(a *auditNode) []string
	}{
		{
			name: "one byte of one line edited",
			tamper: func(t *testing.T, a *auditNode) {
				line := bytes.Clone(a.lines[2].bytes)
				i := bytes.Index(line, []byte(`"verb":"delete"`))
				line[i+8] = 'D'
				a.rewrite(t, 3, line)
			},
			want: func(a *auditNode) []string {
				return []string{"1 problem:", "modified: n1:3 at " + a.where(3) + ": its hash"}
			},
		},
		{
			name:   "a line deleted",
			tamper: func(t *testing.T, a *auditNode) { a.rewrite(t, 6, nil) },
			want: func(a *auditNode) []string {
				return []string{"1 problem:", "gap: event n1:6 missing, between n1:5 at " + a.where(5) + " and n1:7"}
			},
		},
		{
			name: "the recording changed",
			tamper: func(t *testing.T, a *auditNode) {
				b, err := os.ReadFile(a.recording)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(a.recording, bytes.Replace(b, []byte("ls"), []byte("rm"), 1), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: func(a *auditNode) []string {
				return []string{"1 problem:", "recording-altered: recording " + a.recording + " of n1:4 at " + a.where(4) + " has sha256"}
			},
		},
		{
			name:   "the recording removed",
			tamper: func(t *testing.T, a *auditNode) { os.Remove(a.recording) },
			want: func(a *auditNode) []string {
				return []string{"1 problem:", "recording-missing: recording " + a.recording + " of n1:4 at " + a.where(4) + " does not exist"}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := writeAuditNode(t)
			tc.tamper(t, a)
			out, _, err := runAuditCmd(t, "verify", "--from", a.dir)
			if !errors.Is(err, errVerifyFailed) {
				t.Fatalf("verify: %v, want errVerifyFailed\n%s", err, out)
			}
			for _, w := range tc.want(a) {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if !strings.Contains(out, "NOT VERIFIED") {
				t.Errorf("output:\n%s", out)
			}
		})
	}
}

// With --recordings, a copy of the recordings directory is checked, not
// the path the event names.
func TestAuditVerifyRecordingsCopy(t *testing.T) {
	a := writeAuditNode(t)
	rel, err := filepath.Rel(a.recordings, a.recording)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), rel)
	if err := os.MkdirAll(filepath.Dir(cp), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, []byte("not the recording\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runAuditCmd(t, "verify", "--from", a.dir, "--recordings", filepath.Dir(filepath.Dir(cp)))
	if !errors.Is(err, errVerifyFailed) || !strings.Contains(out, "recording-altered: recording "+a.recording) {
		t.Fatalf("verify with an altered copy: %v\n%s", err, out)
	}
}

func TestAuditUsage(t *testing.T) {
	t.Setenv("KUBEGATE_CONFIG", "")
	t.Setenv("KUBEGATE_AUDIT_FILE", "")
	for _, args := range [][]string{
		{},
		{"check"},
		{"verify"},
		{"verify", "extra"},
		{"verify", "--from", t.TempDir()},
		{"search", "--from", t.TempDir(), "--since", "yesterday"},
		{"search", "--from", t.TempDir(), "--resource", "pods/"},
		{"verify", "-o", "yaml", "--from", t.TempDir()},
		{"verify", "--from", "s3://b/p", "--recordings", t.TempDir()},
	} {
		if _, _, err := runAuditCmd(t, args...); err == nil || errors.Is(err, errVerifyFailed) {
			t.Errorf("audit %q: %v, want a usage error", args, err)
		}
	}
}

func TestAuditSearch(t *testing.T) {
	a := writeAuditNode(t)
	ids := func(out string) []string {
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev auditv1.Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("-o json line %q: %v", l, err)
			}
			got = append(got, string(ev.AuditID))
		}
		return got
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--user", "bob@kubegate.test"}, "e6 e7 e8"},
		{[]string{"--verb", "get"}, "e1 e5 e6 e8"},
		{[]string{"--resource", "pods"}, "e1 e2"},
		{[]string{"--resource", "pods/exec"}, "e4"},
		{[]string{"--resource", "deployments.apps/*"}, "e7"},
		{[]string{"--namespace", "prod"}, "e3 e7"},
		{[]string{"-n", "dev", "--verb", "get"}, "e1 e8"},
		{[]string{"--since", day.Add(5 * time.Second).Format(time.RFC3339)}, "e6 e7 e8"},
		{[]string{"--until", day.Add(2 * time.Second).Format(time.RFC3339)}, "e1 e2"},
		{[]string{"--since", "876000h"}, "e1 e2 e3 e4 e5 e6 e7 e8"},
	} {
		args := append([]string{"search", "--from", a.dir, "-o", "json"}, tc.args...)
		out, _, err := runAuditCmd(t, args...)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := strings.Join(ids(out), " "); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.args, got, tc.want)
		}
	}

	// -o json prints the lines exactly as stored.
	out, _, err := runAuditCmd(t, "search", "--from", a.dir, "-o", "json", "--resource", "pods/exec")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(a.lines[3].bytes)+"\n" {
		t.Errorf("-o json printed\n%s\nwant the stored line\n%s", out, a.lines[3].bytes)
	}

	out, _, err = runAuditCmd(t, "search", "--from", a.dir, "--namespace", "prod")
	if err != nil {
		t.Fatal(err)
	}
	want := "TIME                  USER                 VERB    RESOURCE                NAMESPACE/NAME  CODE  DECISION\n" +
		"2026-05-01T09:30:02Z  agent@kubegate.test  delete  deployments.apps        prod/api        403   deny\n" +
		"2026-05-01T09:30:06Z  bob@kubegate.test    patch   deployments.apps/scale  prod/api        200   allow\n"
	if out != want {
		t.Errorf("table:\n%s\nwant:\n%s", out, want)
	}
}

// An S3 sink's store verifies and is searched through s3://, overlapping
// retried batches included; an edited object is named; the secret never
// shows.
func TestAuditS3(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv := s3test.StartT(t, ctx)
	const bucket = "kubegate-audit"
	if err := srv.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	store, err := audit.NewS3Store(ctx, audit.S3Config{
		Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "prod/", PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := writeAuditNode(t)
	var lines [][]byte
	for _, l := range a.lines {
		lines = append(lines, l.bytes)
	}
	sink := audit.NewS3Sink("s3", store)
	for _, b := range []audit.Batch{
		{Node: "n1", First: 1, Last: 5, Lines: lines[0:5]},
		{Node: "n1", First: 4, Last: 8, Lines: lines[3:8]}, // retried after a crash
	} {
		if err := sink.Send(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	s3args := []string{"--from", "s3://" + bucket + "/prod", "--s3-endpoint", srv.Endpoint, "--s3-path-style"}
	noSecret := func(s string) {
		t.Helper()
		if strings.Contains(s, srv.SecretKey) {
			t.Errorf("the secret is in the output:\n%s", s)
		}
	}

	out, errOut, err := runAuditCmd(t, append([]string{"verify"}, s3args...)...)
	noSecret(out + errOut)
	if err != nil || !strings.Contains(out, "verified: 8 events of 1 node, 1 recording checked, 2 duplicates dropped") {
		t.Fatalf("verify: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = runAuditCmd(t, append([]string{"search", "--user", "bob@kubegate.test", "-o", "json"}, s3args...)...)
	noSecret(out + errOut)
	if err != nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("search: %v\n%s%s", err, out, errOut)
	}

	// Edit one byte of event 2 in its stored batch.
	key := audit.EventBatchKey("n1", 1, 5)
	edited := bytes.Replace(bytes.Join(lines[0:5], []byte("\n")), []byte(`"verb":"list"`), []byte(`"verb":"lisT"`), 1)
	edited = append(edited, '\n')
	if err := store.Put(ctx, key, bytes.NewReader(edited), int64(len(edited))); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runAuditCmd(t, append([]string{"verify"}, s3args...)...)
	noSecret(out + errOut)
	if !errors.Is(err, errVerifyFailed) || !strings.Contains(out, "modified: n1:2 at "+key+":2") {
		t.Fatalf("verify after an edit: %v\n%s%s", err, out, errOut)
	}

	// A wrong secret fails without showing either secret.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-"+srv.SecretKey)
	out, errOut, err = runAuditCmd(t, append([]string{"verify"}, s3args...)...)
	if err == nil || errors.Is(err, errVerifyFailed) {
		t.Fatalf("verify with a wrong secret: %v\n%s", err, out)
	}
	noSecret(out + errOut + err.Error())
}

// TestAuditVerifyTwoCopies: read as one, two copies of a log verify with
// every event once; a change to the last event, which no later event's
// hash covers, shows as a conflict between the copies.
func TestAuditVerifyTwoCopies(t *testing.T) {
	a := writeAuditNode(t)
	copyDir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(a.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	// The fixture may rotate; copy every file.
	files, err := audit.AuditFiles(filepath.Join(a.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b, err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copyDir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, err := runAuditCmd(t, "verify", "--from", a.dir, "--from", copyDir)
	if err != nil || !strings.Contains(out, "verified: 8 events of 1 node") || !strings.Contains(out, "8 duplicates dropped") {
		t.Fatalf("two clean copies: %v\n%s%s", err, out, errOut)
	}
	last := a.lines[7]
	copied := filepath.Join(copyDir, filepath.Base(last.file))
	b, err = os.ReadFile(copied)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(last.bytes, []byte(`"stage":"ResponseComplete"`), []byte(`"stage":"ResponseStarted"`), 1)
	if bytes.Equal(changed, last.bytes) {
		t.Fatalf("the last event has no stage to change: %s", last.bytes)
	}
	if err := os.WriteFile(copied, bytes.Replace(b, last.bytes, changed, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runAuditCmd(t, "verify", "--from", copyDir); err != nil {
		t.Fatalf("the copy alone should verify (nothing covers the last event): %v\n%s", err, out)
	}
	out, _, err = runAuditCmd(t, "verify", "--from", a.dir, "--from", copyDir)
	if err == nil || !strings.Contains(out, "n1:8") || !strings.Contains(out, "conflict") {
		t.Errorf("a changed last event in one copy: %v\n%s", err, out)
	}
}
